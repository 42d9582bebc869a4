// @vitest-environment happy-dom
import { describe, expect, it } from 'vitest';
import { flushSync, mount, unmount } from 'svelte';
import Sparkline from './Sparkline.svelte';

describe('Sparkline', () => {
	it('draws the values as an SVG path with a gap at null', () => {
		const target = document.createElement('div');
		const component = mount(Sparkline, {
			target,
			props: { xs: [0, 5, 10], ys: [0, null, 100], xMin: 0, xMax: 10, width: 100, height: 22, label: 'cpu' }
		});
		flushSync();
		const svg = target.querySelector('svg')!;
		expect(svg.getAttribute('aria-label')).toBe('cpu');
		expect(target.querySelector('path')!.getAttribute('d')).toBe('M 0 20 L 1.5 20 M 100 0 L 101.5 0');
		unmount(component);
	});
});
