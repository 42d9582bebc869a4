// The metrics store: the latest values per VPS, kept live by Server-Sent Events
// (one stream per watched VPS, shared by every component that watches it) and
// by the VPS list, which the overview polls.

import {
	stream as openStream,
	type LatestMetrics,
	type StreamOptions,
	type StreamState,
	type VpsSummary
} from '$lib/api';

/** No value for longer than this (seconds) and a VPS is shown as offline / stale. */
export const STALE_AFTER_SECONDS = 30;

export type Liveness = 'live' | 'stale' | 'reconnecting' | 'connecting' | 'no-data';

/** True if `next` is a newer snapshot than `current` (or there is none yet). */
export function isNewer(current: LatestMetrics | undefined | null, next: LatestMetrics): boolean {
	if (!current) return true;
	return Date.parse(next.time) > Date.parse(current.time);
}

/** Values a stream delivered since it (re)connected, and when the last one came (browser clock). */
export interface Arrivals {
	count: number;
	lastAt: number;
}

/**
 * How current the shown value is: 'live' only when the stream is connected and
 * a value arrived within `staleAfter` seconds. The stream starts with the newest
 * stored value, however old: until a second one arrives, the value's own time
 * decides (`now` on the server's clock). After that, arrival times on the
 * browser's clock decide, so a browser clock that is off cannot fake staleness.
 */
export function liveness(
	value: LatestMetrics | undefined | null,
	state: StreamState | undefined,
	now: number,
	staleAfter = STALE_AFTER_SECONDS,
	arrivals?: Arrivals,
	browserNow = Date.now()
): Liveness {
	if (state === 'reconnecting') return 'reconnecting';
	if (!value) return state === 'connecting' ? 'connecting' : 'no-data';
	if (state === 'live' && arrivals && arrivals.count >= 2) {
		return browserNow - arrivals.lastAt <= staleAfter * 1000 ? 'live' : 'stale';
	}
	const age = (now - Date.parse(value.time)) / 1000;
	if (!(age <= staleAfter)) return 'stale';
	if (state === 'connecting') return 'connecting';
	return 'live';
}

interface Watch {
	refs: number;
	close: () => void;
}

export class MetricsStore {
	/** The newest snapshot per VPS id. */
	latest = $state<Record<number, LatestMetrics>>({});
	/** The state of each watched VPS's stream. */
	streams = $state<Record<number, StreamState>>({});
	/** What each watched VPS's stream delivered since it (re)connected. */
	arrivals = $state<Record<number, Arrivals>>({});

	#watches = new Map<number, Watch>();
	#options: StreamOptions;

	constructor(options: StreamOptions = {}) {
		this.#options = options;
	}

	/** Keeps `value` if it is newer than what the store has. */
	put(value: LatestMetrics): void {
		if (isNewer(this.latest[value.vps_id], value)) this.latest[value.vps_id] = value;
	}

	/** Takes the latest values from a VPS list answer. */
	seed(list: readonly VpsSummary[]): void {
		for (const vps of list) if (vps.latest) this.put(vps.latest);
	}

	/** Streams a VPS's values until every watcher has called the returned function. */
	watch(vpsId: number): () => void {
		let watch = this.#watches.get(vpsId);
		if (!watch) {
			const close = openStream(
				vpsId,
				(value) => {
					const seen = this.arrivals[vpsId];
					this.arrivals[vpsId] = { count: (seen?.count ?? 0) + 1, lastAt: Date.now() };
					this.put(value);
				},
				(state) => {
					this.streams[vpsId] = state;
					if (state !== 'live') this.arrivals[vpsId] = { count: 0, lastAt: 0 };
				},
				this.#options
			);
			watch = { refs: 0, close };
			this.#watches.set(vpsId, watch);
		}
		watch.refs += 1;
		let released = false;
		return () => {
			if (released) return;
			released = true;
			const current = this.#watches.get(vpsId);
			if (!current) return;
			current.refs -= 1;
			if (current.refs <= 0) {
				this.#watches.delete(vpsId);
				current.close();
				delete this.streams[vpsId];
				delete this.arrivals[vpsId];
			}
		};
	}

	/** How many streams are open (for tests and diagnostics). */
	get openStreams(): number {
		return this.#watches.size;
	}
}

export const metrics = new MetricsStore();
