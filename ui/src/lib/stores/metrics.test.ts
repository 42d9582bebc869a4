import { describe, expect, it } from 'vitest';
import type { LatestMetrics, StreamState } from '$lib/api';
import { isNewer, liveness, MetricsStore } from './metrics.svelte';

function snap(vps_id: number, time: string, cpu = 1): LatestMetrics {
	return {
		vps_id,
		time,
		cpu_usage_percent: cpu,
		memory_usage_bytes: 1,
		memory_total_bytes: 2,
		disk_io_read_bps: 0,
		disk_io_write_bps: 0,
		network_rx_bps: 0,
		network_tx_bps: 0
	};
}

describe('isNewer / liveness', () => {
	const now = Date.parse('2026-01-31T12:00:40Z');

	it('compares snapshot times, not strings', () => {
		expect(isNewer(undefined, snap(1, '2026-01-31T12:00:00Z'))).toBe(true);
		expect(isNewer(snap(1, '2026-01-31T12:00:00.5Z'), snap(1, '2026-01-31T12:00:00Z'))).toBe(false);
		expect(isNewer(snap(1, '2026-01-31T13:00:00+01:00'), snap(1, '2026-01-31T12:00:01Z'))).toBe(true);
	});

	it('is live only with an open stream and a fresh value', () => {
		expect(liveness(snap(1, '2026-01-31T12:00:30Z'), 'live', now)).toBe('live');
		expect(liveness(snap(1, '2026-01-31T12:00:05Z'), 'live', now)).toBe('stale');
		expect(liveness(snap(1, '2026-01-31T12:00:30Z'), 'reconnecting', now)).toBe('reconnecting');
		expect(liveness(undefined, 'live', now)).toBe('no-data');
		expect(liveness(undefined, 'connecting', now)).toBe('connecting');
		expect(liveness(snap(1, 'garbage'), 'live', now)).toBe('stale');
	});

	it('trusts arrival times once the stream has delivered a new value', () => {
		const old = snap(1, '2026-01-31T11:00:00Z'); // browser clock far ahead of the agent's
		const browserNow = 1_000_000;
		expect(liveness(old, 'live', now, 30, { count: 1, lastAt: browserNow })).toBe('stale');
		expect(liveness(old, 'live', now, 30, { count: 2, lastAt: browserNow - 5_000 }, browserNow)).toBe('live');
		expect(liveness(old, 'live', now, 30, { count: 9, lastAt: browserNow - 31_000 }, browserNow)).toBe('stale');
		const fresh = snap(1, '2026-01-31T12:00:39Z');
		expect(liveness(fresh, 'live', now, 30, { count: 5, lastAt: browserNow - 31_000 }, browserNow)).toBe('stale');
		expect(liveness(fresh, 'reconnecting', now, 30, { count: 5, lastAt: browserNow }, browserNow)).toBe('reconnecting');
	});
});

class FakeEventSource {
	static instances: FakeEventSource[] = [];
	readyState = 0;
	onopen: (() => void) | null = null;
	onmessage: ((e: { data: string }) => void) | null = null;
	onerror: (() => void) | null = null;
	closed = false;
	constructor(public url: string) {
		FakeEventSource.instances.push(this);
	}
	close() {
		this.closed = true;
	}
}

describe('MetricsStore', () => {
	it('keeps the newest value per VPS from lists and streams', () => {
		const store = new MetricsStore();
		store.seed([
			{ id: 1, name: 'a', created_at: '', online: true, last_seen: null, latest: snap(1, '2026-01-31T12:00:10Z', 10) },
			{ id: 2, name: 'b', created_at: '', online: false, last_seen: null, latest: null }
		]);
		store.put(snap(1, '2026-01-31T12:00:05Z', 5)); // older: ignored
		expect(store.latest[1].cpu_usage_percent).toBe(10);
		store.put(snap(1, '2026-01-31T12:00:11Z', 11));
		expect(store.latest[1].cpu_usage_percent).toBe(11);
		expect(store.latest[2]).toBeUndefined();
	});

	it('shares one stream per VPS between watchers and closes it after the last', () => {
		FakeEventSource.instances = [];
		const store = new MetricsStore({ EventSource: FakeEventSource as unknown as typeof EventSource });
		const a = store.watch(7);
		const b = store.watch(7);
		expect(FakeEventSource.instances).toHaveLength(1);
		expect(store.streams[7] as StreamState).toBe('connecting');
		const es = FakeEventSource.instances[0];
		es.readyState = 1;
		es.onopen?.();
		es.onmessage?.({ data: JSON.stringify(snap(7, '2026-01-31T12:00:00Z', 42)) });
		expect(store.latest[7].cpu_usage_percent).toBe(42);
		expect(store.streams[7]).toBe('live');
		a();
		a(); // releasing twice counts once
		expect(es.closed).toBe(false);
		b();
		expect(es.closed).toBe(true);
		expect(store.openStreams).toBe(0);
		expect(store.streams[7]).toBeUndefined();
		// the value stays for the next viewer
		expect(store.latest[7].cpu_usage_percent).toBe(42);
	});
});
