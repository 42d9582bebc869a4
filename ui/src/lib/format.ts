// Human units for every value the dashboard shows.
// Sizes are binary (KiB = 1024 B), as `free -h` and htop show them.

export const MISSING = '—';

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

function finite(value: number | null | undefined): value is number {
	return typeof value === 'number' && Number.isFinite(value);
}

/** Three significant digits at most: 1.50, 15.3, 153. */
function scaled(value: number): string {
	const abs = Math.abs(value);
	if (abs < 10) return value.toFixed(2);
	if (abs < 100) return value.toFixed(1);
	return value.toFixed(0);
}

/** 512 B, 1.50 KiB, 15.3 MiB, 512 GiB, 2.00 TiB (TiB is the largest unit). */
export function formatBytes(bytes: number | null | undefined): string {
	if (!finite(bytes)) return MISSING;
	const sign = bytes < 0 ? '-' : '';
	let value = Math.abs(bytes);
	if (value < 1024) return `${sign}${Math.round(value)} B`;
	let unit = 0;
	while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
		value /= 1024;
		unit += 1;
	}
	// 1023.996 KiB would print as "1024 KiB": carry it to the next unit.
	if (Number(scaled(value)) >= 1024 && unit < BYTE_UNITS.length - 1) {
		value /= 1024;
		unit += 1;
	}
	return `${sign}${scaled(value)} ${BYTE_UNITS[unit]}`;
}

/** A transfer rate: 0 B/s, 1.50 KiB/s, 12.0 MiB/s, 1.00 GiB/s. */
export function formatRate(bytesPerSecond: number | null | undefined): string {
	if (!finite(bytesPerSecond)) return MISSING;
	return `${formatBytes(bytesPerSecond)}/s`;
}

/** 12.3% — always one decimal. */
export function formatPercent(percent: number | null | undefined): string {
	if (!finite(percent)) return MISSING;
	return `${percent.toFixed(1)}%`;
}

/** "3.20 GiB / 7.75 GiB (41.3%)" */
export function formatMemory(
	used: number | null | undefined,
	total: number | null | undefined
): string {
	if (!finite(used)) return MISSING;
	if (!finite(total) || total <= 0) return formatBytes(used);
	return `${formatBytes(used)} / ${formatBytes(total)} (${formatPercent((used / total) * 100)})`;
}

/** A duration in the largest unit that fits: 12 s, 5 min, 3 h, 2 d. */
export function formatDuration(seconds: number): string {
	if (!Number.isFinite(seconds)) return MISSING;
	const s = Math.max(0, Math.floor(seconds));
	if (s < 60) return `${s} s`;
	const minutes = Math.floor(s / 60);
	if (minutes < 60) return `${minutes} min`;
	const hours = Math.floor(minutes / 60);
	if (hours < 48) return `${hours} h`;
	return `${Math.floor(hours / 24)} d`;
}

function toMillis(moment: string | number | Date): number {
	if (moment instanceof Date) return moment.getTime();
	if (typeof moment === 'number') return moment;
	return Date.parse(moment);
}

/** "12 s ago", "5 min ago", "just now"; a time ahead of `now` (clock skew) is "just now". */
export function formatAgo(moment: string | number | Date | null | undefined, now: number): string {
	if (moment === null || moment === undefined) return 'never';
	const then = toMillis(moment);
	if (!Number.isFinite(then)) return MISSING;
	const seconds = (now - then) / 1000;
	if (seconds < 1) return 'just now';
	return `${formatDuration(seconds)} ago`;
}

/** "last seen 12 s ago" / "never seen". */
export function formatLastSeen(
	moment: string | number | Date | null | undefined,
	now: number
): string {
	if (moment === null || moment === undefined) return 'never seen';
	return `last seen ${formatAgo(moment, now)}`;
}

/** The browser's IANA time zone, e.g. "Europe/Berlin". */
export function browserTimeZone(): string {
	try {
		return Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';
	} catch {
		return 'local time';
	}
}

export interface DateFormatOptions {
	/** IANA zone; default: the browser's. */
	timeZone?: string;
	/** BCP 47 locale; default: the browser's. */
	locale?: string;
}

/** An absolute local time with seconds and zone, e.g. "26 Nov 2026, 14:03:07 CET". */
export function formatDateTime(
	moment: string | number | Date | null | undefined,
	options: DateFormatOptions = {}
): string {
	if (moment === null || moment === undefined) return MISSING;
	const millis = toMillis(moment);
	if (!Number.isFinite(millis)) return MISSING;
	return new Intl.DateTimeFormat(options.locale, {
		year: 'numeric',
		month: 'short',
		day: 'numeric',
		hour: '2-digit',
		minute: '2-digit',
		second: '2-digit',
		hourCycle: 'h23',
		timeZoneName: 'short',
		timeZone: options.timeZone
	}).format(new Date(millis));
}

/** A value for <input type="datetime-local"> in the browser's zone: "2026-11-26T14:03". */
export function toDateTimeLocal(millis: number): string {
	const d = new Date(millis);
	const pad = (n: number) => String(n).padStart(2, '0');
	return (
		`${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}` +
		`T${pad(d.getHours())}:${pad(d.getMinutes())}`
	);
}

/** Parses an <input type="datetime-local"> value as browser-local time; NaN if invalid. */
export function fromDateTimeLocal(value: string): number {
	const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(value.trim());
	if (!match) return Number.NaN;
	const [, y, mo, d, h, mi, s] = match.map(Number);
	const date = new Date(y, mo - 1, d, h, mi, Number.isNaN(s) ? 0 : s);
	// Reject dates the Date constructor silently rolled over (e.g. Feb 31).
	if (date.getMonth() !== mo - 1 || date.getDate() !== d) return Number.NaN;
	return date.getTime();
}
