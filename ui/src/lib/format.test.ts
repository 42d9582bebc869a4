import { describe, expect, it } from 'vitest';
import {
	formatAgo,
	formatBytes,
	formatDateTime,
	formatDuration,
	formatLastSeen,
	formatMemory,
	formatPercent,
	formatRate,
	fromDateTimeLocal,
	MISSING,
	toDateTimeLocal
} from './format';

describe('formatBytes', () => {
	it('keeps small values in bytes, whole', () => {
		expect(formatBytes(0)).toBe('0 B');
		expect(formatBytes(1)).toBe('1 B');
		expect(formatBytes(1023)).toBe('1023 B');
	});

	it('uses binary units with three significant digits', () => {
		expect(formatBytes(1024)).toBe('1.00 KiB');
		expect(formatBytes(1536)).toBe('1.50 KiB');
		expect(formatBytes(15.3 * 1024 ** 2)).toBe('15.3 MiB');
		expect(formatBytes(512 * 1024 ** 2)).toBe('512 MiB');
		expect(formatBytes(8 * 1024 ** 3)).toBe('8.00 GiB');
		expect(formatBytes(3 * 1024 ** 4)).toBe('3.00 TiB');
	});

	it('stops at TiB', () => {
		expect(formatBytes(2048 * 1024 ** 4)).toBe('2048 TiB');
	});

	it('carries a value that rounds up to 1024 into the next unit', () => {
		expect(formatBytes(1024 * 1024 - 1)).toBe('1.00 MiB');
	});

	it('shows a dash for missing or non-finite values', () => {
		expect(formatBytes(null)).toBe(MISSING);
		expect(formatBytes(undefined)).toBe(MISSING);
		expect(formatBytes(Number.NaN)).toBe(MISSING);
		expect(formatBytes(Number.POSITIVE_INFINITY)).toBe(MISSING);
	});
});

describe('formatRate', () => {
	it('appends /s to every unit', () => {
		expect(formatRate(0)).toBe('0 B/s');
		expect(formatRate(900)).toBe('900 B/s');
		expect(formatRate(2048)).toBe('2.00 KiB/s');
		expect(formatRate(12 * 1024 ** 2)).toBe('12.0 MiB/s');
		expect(formatRate(1.25 * 1024 ** 3)).toBe('1.25 GiB/s');
	});

	it('shows a dash without a value', () => {
		expect(formatRate(null)).toBe(MISSING);
	});
});

describe('formatPercent', () => {
	it('always has one decimal', () => {
		expect(formatPercent(0)).toBe('0.0%');
		expect(formatPercent(12.345)).toBe('12.3%');
		expect(formatPercent(99.96)).toBe('100.0%');
		expect(formatPercent(100)).toBe('100.0%');
	});

	it('shows a dash without a value', () => {
		expect(formatPercent(undefined)).toBe(MISSING);
	});
});

describe('formatMemory', () => {
	it('shows used, total and the share', () => {
		expect(formatMemory(2 * 1024 ** 3, 8 * 1024 ** 3)).toBe('2.00 GiB / 8.00 GiB (25.0%)');
	});

	it('shows only used when the total is unknown', () => {
		expect(formatMemory(1024, 0)).toBe('1.00 KiB');
	});
});

describe('relative times', () => {
	const now = Date.parse('2026-01-31T12:00:00Z');

	it('formats durations in the largest fitting unit', () => {
		expect(formatDuration(0)).toBe('0 s');
		expect(formatDuration(59.9)).toBe('59 s');
		expect(formatDuration(60)).toBe('1 min');
		expect(formatDuration(3599)).toBe('59 min');
		expect(formatDuration(3600)).toBe('1 h');
		expect(formatDuration(47 * 3600)).toBe('47 h');
		expect(formatDuration(3 * 86400)).toBe('3 d');
	});

	it('says how long ago, from RFC 3339 strings, Dates and milliseconds', () => {
		expect(formatAgo('2026-01-31T11:59:48Z', now)).toBe('12 s ago');
		expect(formatAgo(new Date(now - 5 * 60_000), now)).toBe('5 min ago');
		expect(formatAgo(now - 2 * 3600_000, now)).toBe('2 h ago');
		expect(formatLastSeen('2026-01-31T11:59:48.250Z', now)).toBe('last seen 11 s ago');
	});

	it('treats the future (clock skew) and the last second as just now', () => {
		expect(formatAgo(now + 3000, now)).toBe('just now');
		expect(formatAgo(now - 400, now)).toBe('just now');
	});

	it('handles never-seen and garbage', () => {
		expect(formatLastSeen(null, now)).toBe('never seen');
		expect(formatAgo('not a time', now)).toBe(MISSING);
	});
});

describe('absolute times', () => {
	const moment = '2026-01-31T23:30:05Z';

	it('renders in the given time zone', () => {
		const utc = formatDateTime(moment, { timeZone: 'UTC', locale: 'en-GB' });
		expect(utc).toContain('23:30:05');
		expect(utc).toContain('31 Jan 2026');
		expect(utc).toContain('UTC');
		// Tokyo is UTC+9: the next day.
		const tokyo = formatDateTime(moment, { timeZone: 'Asia/Tokyo', locale: 'en-GB' });
		expect(tokyo).toContain('08:30:05');
		expect(tokyo).toContain('1 Feb 2026');
	});

	it('defaults to the runtime time zone', () => {
		const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
		expect(formatDateTime(moment, { locale: 'en-GB' })).toBe(
			formatDateTime(moment, { locale: 'en-GB', timeZone: zone })
		);
	});

	it('shows a dash for missing times', () => {
		expect(formatDateTime(null)).toBe(MISSING);
		expect(formatDateTime('garbage')).toBe(MISSING);
	});

	it('round-trips datetime-local values in local time', () => {
		const local = new Date(2026, 0, 31, 14, 5).getTime();
		expect(toDateTimeLocal(local)).toBe('2026-01-31T14:05');
		expect(fromDateTimeLocal('2026-01-31T14:05')).toBe(local);
		expect(fromDateTimeLocal('2026-02-31T14:05')).toBeNaN();
		expect(fromDateTimeLocal('')).toBeNaN();
	});
});
