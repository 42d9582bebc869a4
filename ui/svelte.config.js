import adapter from '@sveltejs/adapter-static';
import { vitePreprocess } from '@sveltejs/vite-plugin-svelte';

/** @type {import('@sveltejs/kit').Config} */
const config = {
	preprocess: vitePreprocess(),
	compilerOptions: {
		runes: true
	},
	kit: {
		// A single-page app: the query side serves build/ and answers every
		// non-API, non-file path with index.html (SPA fallback).
		adapter: adapter({
			pages: 'build',
			assets: 'build',
			fallback: 'index.html',
			precompress: false,
			strict: true
		}),
		// Absolute asset URLs: index.html is served for deep links such as /vps/3.
		paths: { relative: false }
	}
};

export default config;
