// The API service (the seed plan's metricsService): typed calls to the query
// side's HTTP contract, on the same origin, authenticated by the session cookie.

import { METRICS } from './generated/constants';

/** The measured values, in the API's field order (from the server's own list). */
export { METRICS };

export type Metric = (typeof METRICS)[number];

/** GET /api/vps/{id}/metrics/latest, and the data of each stream event. */
export interface LatestMetrics {
	vps_id: number;
	/** RFC 3339 UTC */
	time: string;
	cpu_usage_percent: number;
	memory_usage_bytes: number;
	memory_total_bytes: number;
	disk_io_read_bps: number;
	disk_io_write_bps: number;
	network_rx_bps: number;
	network_tx_bps: number;
}

/** One entry of GET /api/vps. */
export interface VpsSummary {
	id: number;
	name: string;
	created_at: string;
	online: boolean;
	last_seen: string | null;
	latest: LatestMetrics | null;
}

export type TimeseriesPoint = { time: string; samples: number } & {
	[K in `${Metric}_${'avg' | 'min' | 'max'}`]: number;
};

/** GET /api/vps/{id}/metrics/timeseries */
export interface Timeseries {
	vps_id: number;
	/** The bucket width the server chose, e.g. "1m", "5m", "1h", "1d". */
	interval: string;
	/** The rollup view it read, e.g. "performance_metrics_1m". */
	source: string;
	start_time: string;
	end_time: string;
	points: TimeseriesPoint[];
}

export interface LoginResponse {
	username: string;
	is_admin: boolean;
}

export interface TimeseriesQuery {
	/** Date, Unix milliseconds or an RFC 3339 string; default: end - 1 hour. */
	start?: Date | number | string;
	/** default: now */
	end?: Date | number | string;
	/** "auto" (default), "1m", "5m", "1h", "15m", ... */
	interval?: string;
}

/** An error answer of the API ({"error": {"code", "message"}}) or a network failure. */
export class ApiError extends Error {
	readonly status: number;
	readonly code: string;
	readonly retryAfter: number | null;

	constructor(status: number, code: string, message: string, retryAfter: number | null = null) {
		super(message);
		this.name = 'ApiError';
		this.status = status;
		this.code = code;
		this.retryAfter = retryAfter;
	}

	get notFound(): boolean {
		return this.status === 404;
	}
}

type UnauthorizedHandler = () => void;

let onUnauthorized: UnauthorizedHandler = () => {};

/** Called whenever an authenticated call answers 401 (the layout sends the user to /login). */
export function setUnauthorizedHandler(handler: UnauthorizedHandler): void {
	onUnauthorized = handler;
}

let fetchImpl: typeof fetch = (...args) => fetch(...args);

/** For tests: replace fetch. */
export function setFetch(impl: typeof fetch): void {
	fetchImpl = impl;
}

// Server clock minus browser clock, from the Date header of API answers, so that
// "last seen 12 s ago" and the stale check survive a browser clock that is off.
// The header has whole seconds: differences under 2 s are noise and ignored.
let clockOffsetMs = 0;

export function serverNow(): number {
	return Date.now() + clockOffsetMs;
}

export function noteServerDate(header: string | null, receivedAt = Date.now()): void {
	if (!header) return;
	const server = Date.parse(header);
	if (!Number.isFinite(server)) return;
	const offset = server + 500 - receivedAt; // the header truncates to the second
	clockOffsetMs = Math.abs(offset) < 2000 ? 0 : offset;
}

export function clockOffset(): number {
	return clockOffsetMs;
}

async function errorFrom(response: Response): Promise<ApiError> {
	let code = `http_${response.status}`;
	let message = response.statusText || `HTTP ${response.status}`;
	try {
		const body = await response.json();
		if (body && typeof body === 'object' && body.error) {
			code = String(body.error.code ?? code);
			message = String(body.error.message ?? message);
		}
	} catch {
		// Not JSON (a proxy's error page): keep the status text.
	}
	const retry = Number(response.headers.get('retry-after'));
	return new ApiError(response.status, code, message, Number.isFinite(retry) && retry > 0 ? retry : null);
}

interface RequestOptions {
	method?: 'GET' | 'POST';
	body?: unknown;
	signal?: AbortSignal;
	/** false for the login call itself: its 401 means "wrong password". */
	redirectOn401?: boolean;
}

async function request<T>(path: string, options: RequestOptions = {}): Promise<T> {
	const { method = 'GET', body, signal, redirectOn401 = true } = options;
	let response: Response;
	try {
		response = await fetchImpl(path, {
			method,
			signal,
			credentials: 'same-origin',
			headers: {
				Accept: 'application/json',
				...(body === undefined ? {} : { 'Content-Type': 'application/json' })
			},
			body: body === undefined ? undefined : JSON.stringify(body)
		});
	} catch (error) {
		if (error instanceof DOMException && error.name === 'AbortError') throw error;
		throw new ApiError(0, 'network_error', 'the server cannot be reached');
	}
	noteServerDate(response.headers.get('date'));
	if (!response.ok) {
		const error = await errorFrom(response);
		if (response.status === 401 && redirectOn401) onUnauthorized();
		throw error;
	}
	if (response.status === 204) return undefined as T;
	return (await response.json()) as T;
}

function timeParam(value: Date | number | string): string {
	if (value instanceof Date) return value.toISOString();
	if (typeof value === 'number') return new Date(value).toISOString();
	return value;
}

export function timeseriesUrl(vpsId: number, query: TimeseriesQuery = {}): string {
	const params = new URLSearchParams();
	if (query.start !== undefined) params.set('start_time', timeParam(query.start));
	if (query.end !== undefined) params.set('end_time', timeParam(query.end));
	params.set('interval', query.interval ?? 'auto');
	return `/api/vps/${encodeURIComponent(vpsId)}/metrics/timeseries?${params}`;
}

export function login(username: string, password: string): Promise<LoginResponse> {
	return request<LoginResponse>('/api/auth/login', {
		method: 'POST',
		body: { username, password },
		redirectOn401: false
	});
}

export async function logout(): Promise<void> {
	try {
		await request<void>('/api/auth/logout', { method: 'POST', redirectOn401: false });
	} catch (error) {
		// Already logged out is fine.
		if (!(error instanceof ApiError && error.status === 401)) throw error;
	}
}

export function listVps(signal?: AbortSignal): Promise<VpsSummary[]> {
	return request<VpsSummary[]>('/api/vps', { signal });
}

/** The newest snapshot; an ApiError with status 404 for an unknown VPS or one with no data yet. */
export function latest(vpsId: number, signal?: AbortSignal): Promise<LatestMetrics> {
	return request<LatestMetrics>(`/api/vps/${encodeURIComponent(vpsId)}/metrics/latest`, {
		signal
	});
}

export function timeseries(
	vpsId: number,
	query: TimeseriesQuery = {},
	signal?: AbortSignal
): Promise<Timeseries> {
	return request<Timeseries>(timeseriesUrl(vpsId, query), { signal });
}

export type StreamState = 'connecting' | 'live' | 'reconnecting' | 'closed';

export interface StreamOptions {
	/** For tests: the EventSource constructor. */
	EventSource?: typeof EventSource;
	/** Delays (ms) before re-opening a stream the browser gave up on. */
	backoffMs?: number[];
}

const DEFAULT_BACKOFF = [1000, 2000, 5000, 10000, 30000];

/**
 * Live values of one VPS by Server-Sent Events. The browser reconnects by itself
 * after a dropped connection (state 'reconnecting' meanwhile); when it gives up
 * (an HTTP error answer, e.g. while the server restarts), this re-opens the stream
 * with backoff, and checks the session so that an expired one leads to /login.
 * Returns a function that closes the stream for good.
 */
export function stream(
	vpsId: number,
	onValue: (value: LatestMetrics) => void,
	onStateChange: (state: StreamState) => void = () => {},
	options: StreamOptions = {}
): () => void {
	const Source = options.EventSource ?? globalThis.EventSource;
	const backoff = options.backoffMs ?? DEFAULT_BACKOFF;
	const url = `/api/vps/${encodeURIComponent(vpsId)}/metrics/stream`;
	let source: EventSource | null = null;
	let timer: ReturnType<typeof setTimeout> | null = null;
	let failures = 0;
	let closed = false;
	let state: StreamState | null = null;

	const setState = (next: StreamState) => {
		if (next !== state) {
			state = next;
			onStateChange(next);
		}
	};

	const open = () => {
		timer = null;
		if (closed) return;
		const es = new Source(url, { withCredentials: true });
		source = es;
		es.onopen = () => {
			failures = 0;
			setState('live');
		};
		es.onmessage = (event: MessageEvent) => {
			let value: LatestMetrics;
			try {
				value = JSON.parse(event.data);
			} catch {
				return; // not a snapshot
			}
			if (value && typeof value === 'object' && typeof value.time === 'string') {
				setState('live');
				onValue(value);
			}
		};
		es.onerror = () => {
			if (closed) return;
			setState('reconnecting');
			if (es.readyState !== 2 /* CLOSED */) return; // the browser retries by itself
			es.close();
			source = null;
			const delay = backoff[Math.min(failures, backoff.length - 1)];
			failures += 1;
			// A refused stream may be an expired session: a plain call finds out
			// (and a 401 there sends the user to /login).
			latest(vpsId).catch(() => {});
			timer = setTimeout(open, delay);
		};
	};

	setState('connecting');
	open();

	return () => {
		closed = true;
		if (timer !== null) clearTimeout(timer);
		source?.close();
		source = null;
		setState('closed');
	};
}
