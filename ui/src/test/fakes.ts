// Fake API server and EventSource for component tests.
import { setFetch } from '$lib/api';

export type Handler = (url: URL, init: RequestInit) => Response | Promise<Response>;

export function json(status: number, body: unknown): Response {
	return new Response(JSON.stringify(body), {
		status,
		headers: { 'content-type': 'application/json' }
	});
}

/** Routes fetch calls to `handler`; returns the list of requested URLs. */
export function fakeApi(handler: Handler): URL[] {
	const seen: URL[] = [];
	setFetch(async (input, init) => {
		const url = new URL(String(input), 'http://localhost');
		seen.push(url);
		return handler(url, init ?? {});
	});
	return seen;
}

export class FakeEventSource {
	static instances: FakeEventSource[] = [];
	readyState = 0;
	onopen: ((e: Event) => void) | null = null;
	onmessage: ((e: MessageEvent) => void) | null = null;
	onerror: ((e: Event) => void) | null = null;
	closed = false;
	constructor(public url: string) {
		FakeEventSource.instances.push(this);
	}
	open(): void {
		this.readyState = 1;
		this.onopen?.(new Event('open'));
	}
	send(value: unknown): void {
		this.onmessage?.(new MessageEvent('message', { data: JSON.stringify(value) }));
	}
	drop(): void {
		this.readyState = 0;
		this.onerror?.(new Event('error'));
	}
	close(): void {
		this.closed = true;
		this.readyState = 2;
	}
	static reset(): void {
		FakeEventSource.instances = [];
	}
}

/** Lets pending promises and Svelte effects settle. */
export async function settle(rounds = 5): Promise<void> {
	const { flushSync, tick } = await import('svelte');
	for (let i = 0; i < rounds; i++) {
		await new Promise((r) => setTimeout(r, 0));
		flushSync();
		await tick();
	}
}
