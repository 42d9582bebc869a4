// The detail page's time ranges: presets relative to now, or a custom start/end.
// Kept in the URL (?range=24h or ?start=…&end=…, Unix seconds) so a view can be
// bookmarked, shared and reloaded.

export const PRESETS = [
	{ key: '1h', label: '1 h', seconds: 3600 },
	{ key: '6h', label: '6 h', seconds: 6 * 3600 },
	{ key: '24h', label: '24 h', seconds: 24 * 3600 },
	{ key: '7d', label: '7 d', seconds: 7 * 86400 },
	{ key: '30d', label: '30 d', seconds: 30 * 86400 }
] as const;

export type PresetKey = (typeof PRESETS)[number]['key'];

export type RangeSpec =
	| { kind: 'preset'; key: PresetKey }
	| { kind: 'custom'; start: number; end: number }; // Unix milliseconds

export const DEFAULT_RANGE: RangeSpec = { kind: 'preset', key: '1h' };

export function isPresetKey(key: string | null): key is PresetKey {
	return PRESETS.some((p) => p.key === key);
}

/** The absolute window of a range, in Unix milliseconds. */
export function resolveRange(spec: RangeSpec, now: number): { start: number; end: number } {
	if (spec.kind === 'custom') return { start: spec.start, end: spec.end };
	const preset = PRESETS.find((p) => p.key === spec.key) ?? PRESETS[0];
	return { start: now - preset.seconds * 1000, end: now };
}

/** Reads ?range= or ?start=&end= (Unix seconds); anything unusable gives the default. */
export function rangeFromParams(params: URLSearchParams): RangeSpec {
	const range = params.get('range');
	if (isPresetKey(range)) return { kind: 'preset', key: range };
	const start = Number(params.get('start'));
	const end = Number(params.get('end'));
	if (params.has('start') && params.has('end') && Number.isFinite(start) && Number.isFinite(end) && start < end) {
		return { kind: 'custom', start: start * 1000, end: end * 1000 };
	}
	return DEFAULT_RANGE;
}

/** The query string for a range ("" for the default one). */
export function rangeToParams(spec: RangeSpec): string {
	if (spec.kind === 'preset') return spec.key === '1h' ? '' : `range=${spec.key}`;
	return `start=${Math.floor(spec.start / 1000)}&end=${Math.ceil(spec.end / 1000)}`;
}

export function sameRange(a: RangeSpec, b: RangeSpec): boolean {
	if (a.kind === 'preset' && b.kind === 'preset') return a.key === b.key;
	if (a.kind === 'custom' && b.kind === 'custom') return a.start === b.start && a.end === b.end;
	return false;
}
