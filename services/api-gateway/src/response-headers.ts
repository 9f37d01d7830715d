/** Adding headers to a response a handler already produced, which may be a pass-through with immutable headers. */
import type { Context } from 'hono';

/**
 * Sets `headers` on `c.res` (only those it lacks when `onlyIfAbsent`), copying the response first when
 * its headers are immutable (a fetch() response passed through as is).
 */
export function setHeaders(c: Context, headers: Record<string, string>, onlyIfAbsent = false): void {
  // A plain loop: this runs several times on every response, so no intermediate arrays.
  let target = c.res.headers;
  let copied = false;
  for (const name in headers) {
    const value = headers[name]!;
    if (onlyIfAbsent && target.has(name)) continue;
    if (copied) {
      target.set(name, value);
      continue;
    }
    try {
      target.set(name, value);
    } catch {
      target = new Headers(target);
      target.set(name, value);
      copied = true;
    }
  }
  if (copied) c.res = new Response(c.res.body, { status: c.res.status, statusText: c.res.statusText, headers: target });
}

/** Appends `value` to a comma-separated header such as `Vary`, unless it is already listed. */
export function appendToken(c: Context, name: string, value: string): void {
  const current = c.res.headers.get(name);
  const tokens = (current ?? '').split(',').map((t) => t.trim().toLowerCase()).filter(Boolean);
  if (tokens.includes(value.toLowerCase()) || tokens.includes('*')) return;
  setHeaders(c, { [name]: current ? `${current}, ${value}` : value });
}
