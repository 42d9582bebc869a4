// happy-dom has no canvas rendering: give uPlot a 2D context that draws nothing,
// so that chart code runs (scales, legend, cursor) exactly as in a browser.
function fakeContext(canvas: HTMLCanvasElement): CanvasRenderingContext2D {
	const state: Record<PropertyKey, unknown> = {
		canvas,
		measureText: (text: string) => ({
			width: text.length * 6,
			actualBoundingBoxAscent: 8,
			actualBoundingBoxDescent: 2
		}),
		getLineDash: () => [],
		isPointInPath: () => false
	};
	return new Proxy(state, {
		get: (target, key) => (key in target ? target[key] : () => {}),
		set: (target, key, value) => {
			target[key] = value;
			return true;
		}
	}) as unknown as CanvasRenderingContext2D;
}

HTMLCanvasElement.prototype.getContext = function (this: HTMLCanvasElement) {
	return fakeContext(this);
} as unknown as typeof HTMLCanvasElement.prototype.getContext;

if (typeof globalThis.Path2D === 'undefined') {
	class FakePath2D {
		addPath() {}
		closePath() {}
		moveTo() {}
		lineTo() {}
		bezierCurveTo() {}
		quadraticCurveTo() {}
		arc() {}
		arcTo() {}
		ellipse() {}
		rect() {}
		roundRect() {}
	}
	(globalThis as unknown as { Path2D: unknown }).Path2D = FakePath2D;
}
