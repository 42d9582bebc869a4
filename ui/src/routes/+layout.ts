// A client-side app: the query side serves build/ with index.html as the fallback.
export const ssr = false;
export const prerender = false;
export const trailingSlash = 'never';
