import { describe, expect, it } from 'vitest';
import { DEFAULT_RANGE, rangeFromParams, rangeToParams, resolveRange, sameRange } from './ranges';

describe('ranges', () => {
	const now = Date.parse('2026-01-31T12:00:00Z');

	it('resolves presets relative to now', () => {
		expect(resolveRange({ kind: 'preset', key: '1h' }, now)).toEqual({ start: now - 3600_000, end: now });
		expect(resolveRange({ kind: 'preset', key: '30d' }, now).start).toBe(now - 30 * 86400_000);
	});

	it('keeps custom windows as they are', () => {
		expect(resolveRange({ kind: 'custom', start: 1, end: 2 }, now)).toEqual({ start: 1, end: 2 });
	});

	it('round-trips through the query string', () => {
		for (const spec of [
			{ kind: 'preset', key: '24h' } as const,
			{ kind: 'custom', start: 1_700_000_000_000, end: 1_700_003_600_000 } as const
		]) {
			const back = rangeFromParams(new URLSearchParams(rangeToParams(spec)));
			expect(sameRange(back, spec)).toBe(true);
		}
		expect(rangeToParams(DEFAULT_RANGE)).toBe('');
	});

	it('falls back to the last hour for unusable parameters', () => {
		expect(rangeFromParams(new URLSearchParams('range=2y'))).toEqual(DEFAULT_RANGE);
		expect(rangeFromParams(new URLSearchParams('start=20&end=10'))).toEqual(DEFAULT_RANGE);
		expect(rangeFromParams(new URLSearchParams('start=x&end=10'))).toEqual(DEFAULT_RANGE);
		expect(rangeFromParams(new URLSearchParams(''))).toEqual(DEFAULT_RANGE);
	});
});
