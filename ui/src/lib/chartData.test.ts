import { describe, expect, it } from 'vitest';
import { intervalSeconds, metricFields, sparklinePath, toColumns } from './chartData';

const t = (iso: string) => Date.parse(iso) / 1000;

function point(time: string, cpu: number) {
	return {
		time,
		samples: 60,
		cpu_usage_percent_avg: cpu,
		cpu_usage_percent_min: cpu - 1,
		cpu_usage_percent_max: cpu + 1
	};
}

const CPU = metricFields('cpu_usage_percent');

describe('intervalSeconds', () => {
	it('parses the API interval labels', () => {
		expect(intervalSeconds('1m')).toBe(60);
		expect(intervalSeconds('5m')).toBe(300);
		expect(intervalSeconds('15m')).toBe(900);
		expect(intervalSeconds('1h')).toBe(3600);
		expect(intervalSeconds('6h')).toBe(21600);
		expect(intervalSeconds('1d')).toBe(86400);
		expect(intervalSeconds('1w')).toBe(604800);
	});

	it('rejects what is not a width', () => {
		expect(intervalSeconds('auto')).toBeNaN();
		expect(intervalSeconds('0m')).toBeNaN();
		expect(intervalSeconds('5x')).toBeNaN();
	});
});

describe('toColumns', () => {
	it('makes uPlot columns: x in Unix seconds, then avg, min, max', () => {
		const data = toColumns(
			[point('2026-01-31T12:00:00Z', 10), point('2026-01-31T12:01:00Z', 20)],
			60,
			CPU
		);
		expect(data).toEqual([
			[t('2026-01-31T12:00:00Z'), t('2026-01-31T12:01:00Z')],
			[10, 20],
			[9, 19],
			[11, 21]
		]);
	});

	it('inserts one null row where buckets are missing', () => {
		const data = toColumns(
			[
				point('2026-01-31T12:00:00Z', 10),
				point('2026-01-31T12:01:00Z', 20),
				// 12:02 .. 12:04 missing
				point('2026-01-31T12:05:00Z', 30)
			],
			60,
			CPU
		);
		expect(data[0]).toEqual([
			t('2026-01-31T12:00:00Z'),
			t('2026-01-31T12:01:00Z'),
			t('2026-01-31T12:02:00Z'),
			t('2026-01-31T12:05:00Z')
		]);
		expect(data[1]).toEqual([10, 20, null, 30]);
		expect(data[2]).toEqual([9, 19, null, 29]);
		expect(data[3]).toEqual([11, 21, null, 31]);
	});

	it('inserts no null between neighbouring buckets of the chosen interval', () => {
		const data = toColumns(
			[point('2026-01-31T12:00:00Z', 1), point('2026-01-31T12:05:00Z', 2), point('2026-01-31T12:10:00Z', 3)],
			300,
			CPU
		);
		expect(data[1]).toEqual([1, 2, 3]);
		// ...but the same points at a 1-minute interval are gaps.
		expect(toColumns(data[0].map((x, i) => point(new Date(x * 1000).toISOString(), i)), 60, CPU)[1]).toEqual(
			[0, null, 1, null, 2]
		);
	});

	it('sorts unordered points and keeps the last of duplicate times', () => {
		const data = toColumns(
			[
				point('2026-01-31T12:02:00Z', 3),
				point('2026-01-31T12:00:00Z', 1),
				point('2026-01-31T12:01:00Z', 2),
				point('2026-01-31T12:01:00Z', 22)
			],
			60,
			CPU
		);
		expect(data[0]).toEqual([t('2026-01-31T12:00:00Z'), t('2026-01-31T12:01:00Z'), t('2026-01-31T12:02:00Z')]);
		expect(data[1]).toEqual([1, 22, 3]);
	});

	it('accepts offsets and fractional seconds in times', () => {
		const data = toColumns(
			[point('2026-01-31T13:00:00+01:00', 1), point('2026-01-31T12:01:00.000000Z', 2)],
			60,
			CPU
		);
		expect(data[0]).toEqual([t('2026-01-31T12:00:00Z'), t('2026-01-31T12:01:00Z')]);
		expect(data[1]).toEqual([1, 2]);
	});

	it('drops unparseable times and nulls missing or non-finite fields', () => {
		const data = toColumns(
			[
				{ time: 'nonsense', cpu_usage_percent_avg: 5 },
				{ time: '2026-01-31T12:00:00Z', cpu_usage_percent_avg: Number.NaN },
				{ time: '2026-01-31T12:01:00Z' }
			],
			60,
			['cpu_usage_percent_avg']
		);
		expect(data).toEqual([[t('2026-01-31T12:00:00Z'), t('2026-01-31T12:01:00Z')], [null, null]]);
	});

	it('without a usable interval inserts no gaps', () => {
		const data = toColumns([point('2026-01-31T12:00:00Z', 1), point('2026-01-31T18:00:00Z', 2)], Number.NaN, CPU);
		expect(data[1]).toEqual([1, 2]);
	});

	it('gives empty columns for no points', () => {
		expect(toColumns([], 60, CPU)).toEqual([[], [], [], []]);
	});
});

describe('sparklinePath', () => {
	const domain = { xMin: 0, xMax: 10, yMin: 0, yMax: 100 };

	it('scales into the box with y growing downwards', () => {
		expect(sparklinePath([0, 10], [0, 100], 100, 20, domain)).toBe('M 0 20 L 100 0');
	});

	it('starts a new subpath after a null', () => {
		const path = sparklinePath([0, 2, 4, 6, 8], [50, 50, null, 0, 0], 100, 20, domain);
		expect(path).toBe('M 0 10 L 20 10 M 60 20 L 80 20');
	});

	it('turns a lone value into a visible tick', () => {
		expect(sparklinePath([0, 5, 10], [null, 50, null], 100, 20, domain)).toBe('M 50 10 L 51.5 10');
	});

	it('clamps values outside the domain and is empty without values', () => {
		expect(sparklinePath([0], [150], 100, 20, domain)).toBe('M 0 0 L 1.5 0');
		expect(sparklinePath([0, 1], [null, null], 100, 20, domain)).toBe('');
	});
});
