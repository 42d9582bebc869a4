// Who is logged in, as far as the UI knows (the cookie itself is HttpOnly).
const KEY = 'vpsmon.username';

export function rememberUser(username: string): void {
	try {
		sessionStorage.setItem(KEY, username);
	} catch {
		// storage disabled: only the "signed in as" label is lost
	}
}

export function knownUser(): string | null {
	try {
		return sessionStorage.getItem(KEY);
	} catch {
		return null;
	}
}

export function forgetUser(): void {
	try {
		sessionStorage.removeItem(KEY);
	} catch {
		// ignore
	}
}

/** A safe in-app path to return to after login ("/" for anything else). */
export function safeNext(next: string | null): string {
	if (!next || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return '/';
	if (next.startsWith('/login')) return '/';
	return next;
}
