import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
	ApiError,
	clockOffset,
	latest,
	listVps,
	login,
	noteServerDate,
	serverNow,
	setFetch,
	setUnauthorizedHandler,
	stream,
	timeseries,
	timeseriesUrl,
	type StreamState
} from './api';

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
	return new Response(body === undefined ? null : JSON.stringify(body), {
		status,
		headers: { 'content-type': 'application/json', ...headers }
	});
}

const SNAPSHOT = {
	vps_id: 3,
	time: '2026-01-31T12:00:00Z',
	cpu_usage_percent: 12.5,
	memory_usage_bytes: 1024,
	memory_total_bytes: 4096,
	disk_io_read_bps: 1,
	disk_io_write_bps: 2,
	network_rx_bps: 3,
	network_tx_bps: 4
};

describe('request handling', () => {
	let calls: { url: string; init: RequestInit }[];
	let unauthorized: ReturnType<typeof vi.fn<() => void>>;

	function answer(response: Response | (() => Response)) {
		setFetch(async (input, init) => {
			calls.push({ url: String(input), init: init ?? {} });
			return typeof response === 'function' ? response() : response;
		});
	}

	beforeEach(() => {
		calls = [];
		unauthorized = vi.fn<() => void>();
		setUnauthorizedHandler(unauthorized);
	});

	it('lists VPSes with the session cookie on the same origin', async () => {
		answer(json(200, [{ id: 1, name: 'web-1', online: true, last_seen: null, latest: null }]));
		const list = await listVps();
		expect(list[0].name).toBe('web-1');
		expect(calls[0].url).toBe('/api/vps');
		expect(calls[0].init.credentials).toBe('same-origin');
	});

	it('turns the error body into an ApiError with code and message', async () => {
		answer(json(404, { error: { code: 'not_found', message: 'VPS 9 not found' } }));
		const error = await latest(9).catch((e) => e);
		expect(error).toBeInstanceOf(ApiError);
		expect(error.status).toBe(404);
		expect(error.code).toBe('not_found');
		expect(error.message).toBe('VPS 9 not found');
		expect(error.notFound).toBe(true);
		expect(unauthorized).not.toHaveBeenCalled();
	});

	it('calls the unauthorized handler on a 401', async () => {
		answer(json(401, { error: { code: 'unauthorized', message: 'log in' } }));
		await expect(listVps()).rejects.toMatchObject({ status: 401 });
		expect(unauthorized).toHaveBeenCalledTimes(1);
	});

	it('does not redirect on a failed login, and posts JSON', async () => {
		answer(json(401, { error: { code: 'invalid_credentials', message: 'no' } }));
		await expect(login('admin', 'wrong')).rejects.toMatchObject({ status: 401, code: 'invalid_credentials' });
		expect(unauthorized).not.toHaveBeenCalled();
		expect(calls[0].url).toBe('/api/auth/login');
		expect(calls[0].init.method).toBe('POST');
		expect(JSON.parse(String(calls[0].init.body))).toEqual({ username: 'admin', password: 'wrong' });
	});

	it('reports Retry-After of a refused login', async () => {
		answer(json(429, { error: { code: 'too_many_attempts', message: 'wait' } }, { 'retry-after': '900' }));
		await expect(login('admin', 'x')).rejects.toMatchObject({ status: 429, retryAfter: 900 });
	});

	it('survives a non-JSON error page', async () => {
		answer(new Response('<html>Bad Gateway</html>', { status: 502, statusText: 'Bad Gateway' }));
		await expect(listVps()).rejects.toMatchObject({ status: 502, code: 'http_502', message: 'Bad Gateway' });
	});

	it('reports an unreachable server as status 0', async () => {
		setFetch(async () => {
			throw new TypeError('Failed to fetch');
		});
		await expect(listVps()).rejects.toMatchObject({ status: 0, code: 'network_error' });
	});

	it('asks for a timeseries with RFC 3339 times and interval=auto by default', async () => {
		answer(json(200, { vps_id: 3, interval: '5m', source: 'performance_metrics_5m', points: [] }));
		const ts = await timeseries(3, { start: Date.parse('2026-01-31T00:00:00Z'), end: new Date('2026-01-31T06:00:00Z') });
		expect(ts.interval).toBe('5m');
		const url = new URL(calls[0].url, 'http://x');
		expect(url.pathname).toBe('/api/vps/3/metrics/timeseries');
		expect(url.searchParams.get('start_time')).toBe('2026-01-31T00:00:00.000Z');
		expect(url.searchParams.get('end_time')).toBe('2026-01-31T06:00:00.000Z');
		expect(url.searchParams.get('interval')).toBe('auto');
	});

	it('passes an explicit interval through', () => {
		expect(timeseriesUrl(1, { interval: '1m' })).toBe('/api/vps/1/metrics/timeseries?interval=1m');
	});
});

describe('server clock offset', () => {
	it('ignores small differences and follows large ones', () => {
		const now = Date.parse('2026-01-31T12:00:00.000Z');
		noteServerDate('Sat, 31 Jan 2026 12:00:01 GMT', now);
		expect(clockOffset()).toBe(0);
		noteServerDate('Sat, 31 Jan 2026 12:05:00 GMT', now);
		expect(clockOffset()).toBe(300_500);
		expect(serverNow() - Date.now()).toBeGreaterThan(299_000);
		noteServerDate('Sat, 31 Jan 2026 12:00:00 GMT', now);
		expect(clockOffset()).toBe(0);
		noteServerDate('garbage', now);
		expect(clockOffset()).toBe(0);
	});
});

/** A scriptable stand-in for the browser's EventSource. */
class FakeEventSource {
	static instances: FakeEventSource[] = [];
	readyState = 0;
	onopen: ((e: Event) => void) | null = null;
	onmessage: ((e: MessageEvent) => void) | null = null;
	onerror: ((e: Event) => void) | null = null;
	closed = false;
	constructor(
		public url: string,
		public init?: EventSourceInit
	) {
		FakeEventSource.instances.push(this);
	}
	open() {
		this.readyState = 1;
		this.onopen?.(new Event('open'));
	}
	send(data: string) {
		this.onmessage?.(new MessageEvent('message', { data }));
	}
	drop(browserGivesUp: boolean) {
		this.readyState = browserGivesUp ? 2 : 0;
		this.onerror?.(new Event('error'));
	}
	close() {
		this.closed = true;
		this.readyState = 2;
	}
}

describe('stream', () => {
	beforeEach(() => {
		FakeEventSource.instances = [];
		vi.useFakeTimers();
		setFetch(async () => json(200, SNAPSHOT));
	});
	afterEach(() => vi.useRealTimers());

	function open(values: unknown[], states: StreamState[]) {
		return stream(3, (v) => values.push(v), (s) => states.push(s), {
			EventSource: FakeEventSource as unknown as typeof EventSource,
			backoffMs: [100, 1000]
		});
	}

	it('connects, goes live and delivers parsed snapshots', () => {
		const values: unknown[] = [];
		const states: StreamState[] = [];
		open(values, states);
		const es = FakeEventSource.instances[0];
		expect(es.url).toBe('/api/vps/3/metrics/stream');
		expect(states).toEqual(['connecting']);
		es.open();
		es.send(JSON.stringify(SNAPSHOT));
		es.send('not json');
		expect(values).toEqual([SNAPSHOT]);
		expect(states).toEqual(['connecting', 'live']);
	});

	it('is reconnecting while the browser retries, and live again after', () => {
		const states: StreamState[] = [];
		open([], states);
		const es = FakeEventSource.instances[0];
		es.open();
		es.drop(false);
		expect(states.at(-1)).toBe('reconnecting');
		expect(FakeEventSource.instances).toHaveLength(1); // the browser's own retry
		es.open();
		expect(states.at(-1)).toBe('live');
	});

	it('re-opens with backoff when the browser gives up', () => {
		const states: StreamState[] = [];
		open([], states);
		FakeEventSource.instances[0].drop(true);
		expect(FakeEventSource.instances[0].closed).toBe(true);
		expect(states.at(-1)).toBe('reconnecting');
		vi.advanceTimersByTime(99);
		expect(FakeEventSource.instances).toHaveLength(1);
		vi.advanceTimersByTime(1);
		expect(FakeEventSource.instances).toHaveLength(2);
		FakeEventSource.instances[1].drop(true);
		vi.advanceTimersByTime(999);
		expect(FakeEventSource.instances).toHaveLength(2);
		vi.advanceTimersByTime(1);
		expect(FakeEventSource.instances).toHaveLength(3);
		FakeEventSource.instances[2].open();
		expect(states.at(-1)).toBe('live');
	});

	it('stops for good when closed', () => {
		const states: StreamState[] = [];
		const close = open([], states);
		FakeEventSource.instances[0].drop(true);
		close();
		vi.advanceTimersByTime(10_000);
		expect(FakeEventSource.instances).toHaveLength(1);
		expect(states.at(-1)).toBe('closed');
	});
});
