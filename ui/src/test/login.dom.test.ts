// @vitest-environment happy-dom
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createRawSnippet, mount, unmount } from 'svelte';
import { listVps } from '$lib/api';
import { fakeApi, json, settle } from './fakes';
import { navigations, page, setLocation } from './fakeApp.svelte';

vi.mock('$app/state', async () => await import('./fakeApp.svelte'));
vi.mock('$app/navigation', async () => await import('./fakeApp.svelte'));

const { default: Login } = await import('../routes/login/+page.svelte');
const { default: Layout } = await import('../routes/+layout.svelte');

let component: ReturnType<typeof mount> | null = null;
let target: HTMLElement;

function renderLogin() {
	target = document.createElement('div');
	document.body.append(target);
	component = mount(Login, { target });
}

function fill(testid: string, value: string) {
	const input = target.querySelector(`[data-testid="${testid}"]`) as HTMLInputElement;
	input.value = value;
	input.dispatchEvent(new Event('input'));
}

afterEach(() => {
	if (component) unmount(component);
	component = null;
	target?.remove();
});

describe('login', () => {
	it('has labelled fields, focuses the username and shows a wrong password', async () => {
		const bodies: unknown[] = [];
		fakeApi((url, init) => {
			bodies.push(JSON.parse(String(init.body)));
			return json(401, { error: { code: 'invalid_credentials', message: 'invalid username or password' } });
		});
		setLocation('/login');
		renderLogin();
		await settle(1);
		const username = target.querySelector('[data-testid="username"]') as HTMLInputElement;
		expect(document.activeElement).toBe(username);
		expect(target.querySelector('label[for="username"]')).not.toBeNull();
		expect(target.querySelector('label[for="password"]')).not.toBeNull();
		expect((target.querySelector('[data-testid="password"]') as HTMLInputElement).type).toBe('password');

		fill('username', 'admin');
		fill('password', 'wrong');
		(target.querySelector('[data-testid="login-submit"]') as HTMLButtonElement).click();
		await settle();
		expect(bodies).toEqual([{ username: 'admin', password: 'wrong' }]);
		const error = target.querySelector('[data-testid="login-error"]')!;
		expect(error.getAttribute('role')).toBe('alert');
		expect(error.textContent).toContain('Wrong username or password');
		expect(navigations).toEqual([]);
	});

	it('refuses a username the server could never accept, without asking it', async () => {
		const seen = fakeApi(() => json(500, {}));
		setLocation('/login');
		renderLogin();
		const username = target.querySelector('[data-testid="username"]') as HTMLInputElement;
		expect(username.maxLength).toBe(64);
		fill('username', 'no spaces allowed');
		fill('password', 'pw-12345678');
		(target.querySelector('form') as HTMLFormElement).requestSubmit();
		await settle();
		expect(seen).toEqual([]);
		const error = target.querySelector('[data-testid="login-error"]')!.textContent;
		expect(error).toContain("1 to 64 characters: letters, digits, '_', '.', '@' or '-'");
	});

	it('explains a lockout', async () => {
		fakeApi(() =>
			new Response(JSON.stringify({ error: { code: 'too_many_attempts', message: 'later' } }), {
				status: 429,
				headers: { 'retry-after': '600' }
			})
		);
		setLocation('/login');
		renderLogin();
		fill('username', 'admin');
		fill('password', 'x');
		(target.querySelector('form') as HTMLFormElement).requestSubmit();
		await settle();
		expect(target.querySelector('[data-testid="login-error"]')!.textContent).toContain('Try again in 10 min');
	});

	it('goes back to where the user came from after logging in', async () => {
		fakeApi(() => json(200, { username: 'admin', is_admin: true }));
		setLocation('/login?next=%2Fvps%2F3%3Frange%3D24h');
		renderLogin();
		fill('username', 'admin');
		fill('password', 'pw-12345678');
		(target.querySelector('form') as HTMLFormElement).requestSubmit();
		await settle();
		expect(navigations).toEqual(['/vps/3?range=24h']);
	});

	it('never follows a next= to another site', async () => {
		fakeApi(() => json(200, { username: 'admin', is_admin: true }));
		setLocation('/login?next=%2F%2Fevil.example');
		renderLogin();
		fill('username', 'admin');
		fill('password', 'pw-12345678');
		(target.querySelector('form') as HTMLFormElement).requestSubmit();
		await settle();
		expect(navigations).toEqual(['/']);
	});
});

describe('layout', () => {
	it('sends the user to /login, remembering the page, when the API answers 401', async () => {
		setLocation('/vps/3?range=6h', { id: '3' });
		target = document.createElement('div');
		document.body.append(target);
		const children = createRawSnippet(() => ({ render: () => '<p>child</p>' }));
		component = mount(Layout, { target, props: { children } });
		await settle(1);
		expect(target.querySelector('[data-testid="logout"]')).not.toBeNull();
		fakeApi(() => json(401, { error: { code: 'unauthorized', message: 'session expired' } }));
		await listVps().catch(() => {});
		expect(navigations).toEqual(['/login?next=%2Fvps%2F3%3Frange%3D6h']);
		expect(page.url.pathname).toBe('/login');
	});
});
