// @vitest-environment happy-dom
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { mount, unmount } from 'svelte';
import type { VpsSummary } from '$lib/api';
import { fakeApi, FakeEventSource, json, settle } from './fakes';
import { setLocation } from './fakeApp.svelte';

vi.mock('$app/state', async () => await import('./fakeApp.svelte'));
vi.mock('$app/navigation', async () => await import('./fakeApp.svelte'));

const { default: Overview } = await import('../routes/+page.svelte');

const GiB = 1024 ** 3;
const now = new Date().toISOString();
// The metrics store is app-wide and keeps the newest value per VPS: every
// snapshot made here is a little newer than the previous one.
let tick = 0;
const fresh = () => new Date(Date.now() + ++tick).toISOString();

function vps(id: number, name: string, cpu: number | null, memUsed = GiB, memTotal = 4 * GiB): VpsSummary {
	return {
		id,
		name,
		created_at: now,
		online: cpu !== null,
		last_seen: cpu !== null ? now : null,
		latest:
			cpu === null
				? null
				: {
						vps_id: id,
						time: fresh(),
						cpu_usage_percent: cpu,
						memory_usage_bytes: memUsed,
						memory_total_bytes: memTotal,
						disk_io_read_bps: 2048,
						disk_io_write_bps: 0,
						network_rx_bps: 1536,
						network_tx_bps: 10 * 1024 ** 2
					}
	};
}

let component: ReturnType<typeof mount> | null = null;
let target: HTMLElement;

async function render(list: VpsSummary[]) {
	fakeApi((url) => {
		if (url.pathname === '/api/vps') return json(200, list);
		if (url.pathname.endsWith('/metrics/timeseries'))
			return json(200, { vps_id: 1, interval: '1m', source: 'x', start_time: now, end_time: now, points: [] });
		return json(404, { error: { code: 'not_found', message: 'nope' } });
	});
	target = document.createElement('div');
	document.body.append(target);
	component = mount(Overview, { target });
	await settle();
}

function rowNames(): string[] {
	return [...target.querySelectorAll('[data-testid="vps-row"]')].map(
		(row) => row.querySelector('th a')!.textContent!.trim()
	);
}

beforeEach(() => {
	FakeEventSource.reset();
	vi.stubGlobal('EventSource', FakeEventSource);
	setLocation('/');
});

afterEach(() => {
	if (component) unmount(component);
	component = null;
	target?.remove();
	vi.unstubAllGlobals();
});

describe('overview', () => {
	it('shows each VPS with its values in human units', async () => {
		await render([vps(1, 'web-1', 12.34), vps(2, 'db-1', null)]);
		const row = target.querySelector('[data-testid="vps-row"][data-vps-id="1"]')!;
		expect(row.querySelector('[data-testid="cpu"]')!.textContent!.trim()).toBe('12.3%');
		expect(row.querySelector('[data-testid="memory"]')!.textContent!.trim()).toBe('1.00 GiB / 4.00 GiB');
		expect(row.querySelector('[data-testid="disk"]')!.textContent!.replace(/\s+/g, ' ').trim()).toBe(
			'2.00 KiB/s / 0 B/s'
		);
		expect(row.querySelector('[data-testid="network"]')!.textContent!.replace(/\s+/g, ' ').trim()).toBe(
			'1.50 KiB/s / 10.0 MiB/s'
		);
		const status = row.querySelector('[data-testid="status"]')!.textContent!;
		expect(status).toContain('online');
		expect(status).toMatch(/last seen (just now|\d+ s ago)/);
		expect(row.querySelector('a')!.getAttribute('href')).toBe('/vps/1');

		const silent = target.querySelector('[data-vps-id="2"]')!;
		expect(silent.querySelector('[data-testid="status"]')!.textContent).toContain('offline');
		expect(silent.querySelector('[data-testid="status"]')!.textContent).toContain('never seen');
		expect(silent.querySelector('[data-testid="cpu"]')!.textContent!.trim()).toBe('—');
	});

	it('sorts by name, CPU and memory, and filters by name', async () => {
		await render([
			vps(1, 'web-10', 5, 3 * GiB, 4 * GiB), // 75 %
			vps(2, 'web-2', 90, 1 * GiB, 64 * GiB), // 1.6 %
			vps(3, 'db-1', 40, 2 * GiB, 4 * GiB) // 50 %
		]);
		expect(rowNames()).toEqual(['db-1', 'web-2', 'web-10']); // natural order
		const click = async (id: string) => {
			(target.querySelector(`[data-testid="${id}"]`) as HTMLButtonElement).click();
			await settle(1);
		};
		await click('sort-cpu');
		expect(rowNames()).toEqual(['web-2', 'db-1', 'web-10']); // busiest first
		await click('sort-cpu');
		expect(rowNames()).toEqual(['web-10', 'db-1', 'web-2']);
		await click('sort-memory');
		expect(rowNames()).toEqual(['web-10', 'db-1', 'web-2']); // highest share first
		await click('sort-name');
		expect(rowNames()).toEqual(['db-1', 'web-2', 'web-10']);

		const filter = target.querySelector('[data-testid="filter"]') as HTMLInputElement;
		filter.value = 'WEB';
		filter.dispatchEvent(new Event('input'));
		await settle(1);
		expect(rowNames()).toEqual(['web-2', 'web-10']);
		filter.value = 'nothing';
		filter.dispatchEvent(new Event('input'));
		await settle(1);
		expect(rowNames()).toEqual([]);
		expect(target.querySelector('[data-testid="no-match"]')).not.toBeNull();
	});

	it('explains how to add a VPS when there is none', async () => {
		await render([]);
		const empty = target.querySelector('[data-testid="empty-state"]')!;
		expect(empty.textContent).toContain('vpsmon vps add NAME --owner USER');
		expect(empty.textContent).toContain('vpsmon agent');
		expect(target.querySelector('[data-testid="vps-row"]')).toBeNull();
	});

	it('updates values live from the stream', async () => {
		await render([vps(7, 'live-1', 10)]);
		expect(FakeEventSource.instances.map((es) => es.url)).toEqual(['/api/vps/7/metrics/stream']);
		const es = FakeEventSource.instances[0];
		es.open();
		es.send({ ...vps(7, 'live-1', 10).latest, time: new Date(Date.now() + 1000).toISOString(), cpu_usage_percent: 77.7 });
		await settle(1);
		expect(target.querySelector('[data-vps-id="7"] [data-testid="cpu"]')!.textContent!.trim()).toBe('77.7%');
	});
});
