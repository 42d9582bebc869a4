// A reactive "now" (server-corrected) that ticks once a second while something reads it.
import { createSubscriber } from 'svelte/reactivity';
import { serverNow } from '$lib/api';

class Clock {
	#subscribe = createSubscriber((update) => {
		const id = setInterval(update, 1000);
		return () => clearInterval(id);
	});

	/** Unix milliseconds on the server's clock. */
	get now(): number {
		this.#subscribe();
		return serverNow();
	}
}

export const clock = new Clock();
