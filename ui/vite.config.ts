import { sveltekit } from '@sveltejs/kit/vite';
import { defineConfig } from 'vitest/config';

declare const process: { env: Record<string, string | undefined> };

// `npm run dev` proxies the API to a local query side (vpsmon query-side).
const apiTarget = process.env.VPSMON_API_URL ?? 'http://127.0.0.1:8000';

export default defineConfig({
	plugins: [sveltekit()],
	server: {
		proxy: {
			'/api': { target: apiTarget, changeOrigin: false }
		}
	},
	preview: {
		proxy: {
			'/api': { target: apiTarget, changeOrigin: false }
		}
	},
	build: {
		// uPlot is ~50 KB minified; keep the warning for anything bigger.
		chunkSizeWarningLimit: 200
	},
	test: {
		projects: [
			{
				extends: true,
				test: {
					name: 'unit',
					environment: 'node',
					include: ['src/**/*.test.ts'],
					exclude: ['src/**/*.dom.test.ts']
				}
			},
			{
				// Components and pages, mounted in happy-dom (no browser needed).
				extends: true,
				resolve: { conditions: ['browser'] },
				test: {
					name: 'dom',
					environment: 'happy-dom',
					include: ['src/**/*.dom.test.ts'],
					setupFiles: ['src/test/setup-dom.ts']
				}
			}
		]
	}
});
