// Timeseries points → uPlot's column arrays, with a null wherever a bucket is
// missing so that a chart draws a gap instead of a line across the outage.

import type { TimeseriesPoint } from './api';
import { DURATION_UNIT_SECONDS } from './generated/constants';

const UNIT_SECONDS: Readonly<Record<string, number>> = DURATION_UNIT_SECONDS;
const DURATION = new RegExp(`^\\s*(\\d+)\\s*([${Object.keys(UNIT_SECONDS).join('')}])\\s*$`, 'i');

/** "5m" → 300, "1h" → 3600, "1d" → 86400; NaN for anything else (e.g. "auto"). */
export function intervalSeconds(interval: string): number {
	const match = DURATION.exec(interval);
	if (!match) return Number.NaN;
	const count = Number(match[1]);
	return count > 0 ? count * UNIT_SECONDS[match[2].toLowerCase()] : Number.NaN;
}

/** uPlot's AlignedData: x values (Unix seconds) first, then one column per series. */
export type Columns = [number[], ...(number | null)[][]];

type Row = Record<string, unknown> & { time: string };

/**
 * One column per field, x in Unix seconds, ascending, one row per distinct time.
 * Where two neighbouring points are further apart than `interval` seconds, a row
 * of nulls is inserted one interval after the earlier point: uPlot (spanGaps off)
 * breaks the line and the band there. Points with an unparseable time are
 * dropped; a later duplicate of a time replaces the earlier one; a field that is
 * absent or not a finite number becomes null.
 */
export function toColumns(
	points: readonly (TimeseriesPoint | Row)[],
	interval: number,
	fields: readonly string[]
): Columns {
	const rows = new Map<number, Row>();
	for (const point of points) {
		const t = Date.parse(point.time) / 1000;
		if (Number.isFinite(t)) rows.set(t, point as Row);
	}
	const times = [...rows.keys()].sort((a, b) => a - b);
	const xs: number[] = [];
	const columns: (number | null)[][] = fields.map(() => []);
	const gapAfter = Number.isFinite(interval) && interval > 0 ? interval : Number.POSITIVE_INFINITY;
	let previous: number | null = null;
	for (const t of times) {
		// Half a second of slack: buckets are whole multiples of the interval.
		if (previous !== null && t - previous > gapAfter + 0.5) {
			xs.push(previous + gapAfter);
			for (const column of columns) column.push(null);
		}
		const row = rows.get(t)!;
		xs.push(t);
		fields.forEach((field, i) => {
			const value = row[field];
			columns[i].push(typeof value === 'number' && Number.isFinite(value) ? value : null);
		});
		previous = t;
	}
	return [xs, ...columns];
}

/** The three columns of one metric, in uPlot series order: avg, min, max. */
export function metricFields(metric: string): [string, string, string] {
	return [`${metric}_avg`, `${metric}_min`, `${metric}_max`];
}

/**
 * An SVG path ("M x y L x y ...") through the values, scaled into width × height
 * (y grows downwards), starting a new subpath after every null. A lone value
 * between nulls becomes a short horizontal tick so that it stays visible.
 */
export function sparklinePath(
	xs: readonly number[],
	ys: readonly (number | null)[],
	width: number,
	height: number,
	domain: { xMin: number; xMax: number; yMin: number; yMax: number }
): string {
	const { xMin, xMax, yMin, yMax } = domain;
	const xSpan = xMax - xMin || 1;
	const ySpan = yMax - yMin || 1;
	const sx = (x: number) => ((x - xMin) / xSpan) * width;
	const sy = (y: number) => height - ((Math.min(Math.max(y, yMin), yMax) - yMin) / ySpan) * height;
	const r = (n: number) => Math.round(n * 10) / 10;
	const parts: string[] = [];
	let run: string[] = [];
	const flush = () => {
		if (run.length === 1) {
			// "M x y" alone draws nothing: widen it to a tick.
			const [, x, y] = run[0].split(' ');
			run.push(`L ${r(Number(x) + 1.5)} ${y}`);
		}
		parts.push(...run);
		run = [];
	};
	for (let i = 0; i < xs.length; i++) {
		const y = ys[i];
		if (y === null || y === undefined || !Number.isFinite(y)) {
			flush();
			continue;
		}
		run.push(`${run.length === 0 ? 'M' : 'L'} ${r(sx(xs[i]))} ${r(sy(y))}`);
	}
	flush();
	return parts.join(' ');
}
