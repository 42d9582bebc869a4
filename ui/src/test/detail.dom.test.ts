// @vitest-environment happy-dom
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { mount, unmount } from 'svelte';
import type { LatestMetrics, Timeseries } from '$lib/api';
import { fakeApi, FakeEventSource, json, settle } from './fakes';
import { navigations, page, setLocation } from './fakeApp.svelte';

vi.mock('$app/state', async () => await import('./fakeApp.svelte'));
vi.mock('$app/navigation', async () => await import('./fakeApp.svelte'));

const { default: Detail } = await import('../routes/vps/[id]/+page.svelte');

const GiB = 1024 ** 3;

function snapshot(vpsId: number, ageSeconds: number, cpu: number): LatestMetrics {
	return {
		vps_id: vpsId,
		time: new Date(Date.now() - ageSeconds * 1000).toISOString(),
		cpu_usage_percent: cpu,
		memory_usage_bytes: 3 * GiB,
		memory_total_bytes: 8 * GiB,
		disk_io_read_bps: 1024,
		disk_io_write_bps: 4096,
		network_rx_bps: 100,
		network_tx_bps: 2 * 1024 ** 2
	};
}

function series(interval: string, count: number): Timeseries {
	const step = interval === '1m' ? 60_000 : 3600_000;
	const start = Math.floor(Date.now() / step) * step - count * step;
	const points = Array.from({ length: count }, (_, i) => {
		const point: Record<string, unknown> = { time: new Date(start + i * step).toISOString(), samples: 60 };
		for (const m of ['cpu_usage_percent', 'memory_usage_bytes', 'memory_total_bytes', 'disk_io_read_bps', 'disk_io_write_bps', 'network_rx_bps', 'network_tx_bps']) {
			point[`${m}_avg`] = 10 + i;
			point[`${m}_min`] = 5 + i;
			point[`${m}_max`] = 15 + i;
		}
		return point;
	});
	return {
		vps_id: 5,
		interval,
		source: `performance_metrics_${interval}`,
		start_time: new Date(start).toISOString(),
		end_time: new Date().toISOString(),
		points: points as Timeseries['points']
	};
}

let component: ReturnType<typeof mount> | null = null;
let target: HTMLElement;
let requests: URL[];

async function render(id: string, options: { visible?: boolean; points?: number; latest?: LatestMetrics | null; query?: string } = {}) {
	const { visible = true, points = 30, latest = snapshot(Number(id), 2, 12.5), query = '' } = options;
	requests = fakeApi((url) => {
		if (url.pathname === '/api/vps')
			return json(
				200,
				visible ? [{ id: Number(id), name: 'web-5', created_at: '', online: true, last_seen: latest?.time ?? null, latest }] : []
			);
		if (url.pathname.endsWith('/metrics/timeseries')) {
			if (!visible) return json(404, { error: { code: 'not_found', message: 'VPS not found' } });
			const start = Number(new Date(url.searchParams.get('start_time')!));
			const end = Number(new Date(url.searchParams.get('end_time')!));
			const interval = end - start > 2 * 86400_000 ? '1h' : '1m';
			return json(200, series(interval, points));
		}
		return json(404, { error: { code: 'not_found', message: 'nope' } });
	});
	setLocation(`/vps/${id}${query}`, { id });
	target = document.createElement('div');
	document.body.append(target);
	component = mount(Detail, { target });
	await settle();
}

const text = (testid: string) =>
	target.querySelector(`[data-testid="${testid}"]`)?.textContent?.replace(/\s+/g, ' ').trim();

beforeEach(() => {
	FakeEventSource.reset();
	vi.stubGlobal('EventSource', FakeEventSource);
});

afterEach(() => {
	if (component) unmount(component);
	component = null;
	target?.remove();
	vi.unstubAllGlobals();
});

describe('VPS detail', () => {
	it('shows live values and updates them from the stream', async () => {
		await render('5');
		expect(text('live-cpu')).toBe('12.5%');
		expect(text('live-memory')).toBe('3.00 GiB of 8.00 GiB');
		expect(text('live-disk')).toBe('read 1.00 KiB/s write 4.00 KiB/s');
		expect(text('live-network')).toBe('rx 100 B/s tx 2.00 MiB/s');
		const es = FakeEventSource.instances.find((e) => e.url === '/api/vps/5/metrics/stream')!;
		expect(es).toBeDefined();
		es.open();
		await settle(1);
		expect(target.querySelector('[data-testid="live-status"]')!.getAttribute('data-state')).toBe('live');
		es.send(snapshot(5, 0, 55.55));
		await settle(1);
		expect(text('live-cpu')).toBe('55.5%');
	});

	it('says offline / stale when the newest value is old, and reconnecting when the stream drops', async () => {
		await render('6', { latest: snapshot(6, 120, 1) });
		const es = FakeEventSource.instances.find((e) => e.url === '/api/vps/6/metrics/stream')!;
		es.open();
		await settle(1);
		const status = target.querySelector('[data-testid="live-status"]')!;
		expect(status.getAttribute('data-state')).toBe('stale');
		expect(status.textContent).toContain('offline / stale');
		es.send(snapshot(6, 0, 2));
		await settle(1);
		expect(status.getAttribute('data-state')).toBe('live');
		es.drop();
		await settle(1);
		expect(status.getAttribute('data-state')).toBe('reconnecting');
	});

	it('draws the four charts for the last hour and shows the chosen interval', async () => {
		await render('5');
		const ts = requests.filter((u) => u.pathname.endsWith('/timeseries'));
		expect(ts).toHaveLength(1);
		expect(ts[0].searchParams.get('interval')).toBe('auto');
		const span = Number(new Date(ts[0].searchParams.get('end_time')!)) - Number(new Date(ts[0].searchParams.get('start_time')!));
		expect(span).toBe(3600_000);
		expect(text('interval')).toBe('1m');
		for (const name of ['cpu', 'memory', 'disk', 'network']) {
			const chart = target.querySelector(`[data-testid="chart-${name}"]`)!;
			expect(chart, name).not.toBeNull();
			expect(chart.querySelector('.uplot'), name).not.toBeNull();
			expect(chart.querySelector('canvas'), name).not.toBeNull();
		}
		// The legend shows the newest point with units.
		expect(target.querySelector('[data-testid="chart-cpu"] figcaption')!.textContent).toContain('39.0%');
	});

	it('asks for another range with interval=auto and shows the interval the API chose', async () => {
		await render('5');
		(target.querySelector('[data-testid="range-7d"]') as HTMLButtonElement).click();
		await settle();
		expect(navigations.at(-1)).toBe('/vps/5?range=7d');
		expect(page.url.search).toBe('?range=7d');
		const last = requests.filter((u) => u.pathname.endsWith('/timeseries')).at(-1)!;
		const span = Number(new Date(last.searchParams.get('end_time')!)) - Number(new Date(last.searchParams.get('start_time')!));
		expect(span).toBe(7 * 86400_000);
		expect(last.searchParams.get('interval')).toBe('auto');
		expect(text('interval')).toBe('1h');
		expect(target.querySelector('[data-testid="range-7d"]')!.getAttribute('aria-pressed')).toBe('true');
	});

	it('accepts a custom range and rejects an inverted one', async () => {
		await render('5');
		(target.querySelector('[data-testid="range-custom"]') as HTMLButtonElement).click();
		await settle(1);
		const start = target.querySelector('[data-testid="custom-start"]') as HTMLInputElement;
		const end = target.querySelector('[data-testid="custom-end"]') as HTMLInputElement;
		start.value = '2026-01-02T00:00';
		start.dispatchEvent(new Event('input'));
		end.value = '2026-01-01T00:00';
		end.dispatchEvent(new Event('input'));
		await settle(1);
		(target.querySelector('[data-testid="custom-apply"]') as HTMLButtonElement).click();
		await settle(1);
		expect(text('custom-error')).toContain('before the end');
		end.value = '2026-01-03T12:00';
		end.dispatchEvent(new Event('input'));
		await settle(1);
		(target.querySelector('[data-testid="custom-apply"]') as HTMLButtonElement).click();
		await settle();
		const last = requests.filter((u) => u.pathname.endsWith('/timeseries')).at(-1)!;
		expect(new Date(last.searchParams.get('start_time')!).getTime()).toBe(new Date(2026, 0, 2).getTime());
		expect(new Date(last.searchParams.get('end_time')!).getTime()).toBe(new Date(2026, 0, 3, 12).getTime());
	});

	it('reads the range from the URL', async () => {
		await render('5', { query: '?range=24h' });
		const ts = requests.filter((u) => u.pathname.endsWith('/timeseries'));
		const span = Number(new Date(ts[0].searchParams.get('end_time')!)) - Number(new Date(ts[0].searchParams.get('start_time')!));
		expect(span).toBe(86400_000);
	});

	it('says "no data yet" when the range has no points', async () => {
		await render('5', { points: 0, latest: null });
		expect(target.querySelector('[data-testid="no-data"]')!.textContent).toMatch(/no data yet/i);
		expect(target.querySelector('[data-testid="chart-cpu"]')).toBeNull();
		expect(target.querySelector('[data-testid="live-status"]')!.getAttribute('data-state')).not.toBe('live');
	});

	it('shows not found for a VPS the user cannot see, or a bad id', async () => {
		await render('9', { visible: false });
		expect(target.querySelector('[data-testid="not-found"]')).not.toBeNull();
		expect(target.querySelector('[data-testid="chart-cpu"]')).toBeNull();
		unmount(component!);
		component = null;
		await render('abc');
		expect(target.querySelector('[data-testid="not-found"]')).not.toBeNull();
	});

	it('links back to the overview', async () => {
		await render('5');
		expect(target.querySelector('[data-testid="back"]')!.getAttribute('href')).toBe('/');
	});
});
