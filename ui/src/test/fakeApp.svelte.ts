// Stand-ins for $app/state and $app/navigation in component tests: a reactive
// `page` whose URL follows `goto`, as SvelteKit's router would.

class FakePage {
	url = $state(new URL('http://localhost/'));
	params = $state<Record<string, string>>({});
	status = $state(200);
	error = $state<{ message: string } | null>(null);
}

export const page = new FakePage();

export const navigations: string[] = [];

export function setLocation(path: string, params: Record<string, string> = {}): void {
	page.url = new URL(path, 'http://localhost');
	page.params = params;
	navigations.length = 0;
}

export async function goto(to: string): Promise<void> {
	navigations.push(to);
	const next = new URL(to, page.url);
	page.url = next;
}
