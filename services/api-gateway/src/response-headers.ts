/** Adding headers to a response a handler already produced, which may be a pass-through with immutable headers. */
import type { Context } from 'hono';

/**
 * Sets `headers` on `c.res` (only those it lacks when `onlyIfAbsent`), copying the response first when
 * its headers are immutable (a fetch() response passed through as is).
 */
export function setHeaders(c: Context, headers: Record<string, string>, onlyIfAbsent = false): void {
  const entries = Object.entries(headers).filter(([name]) => !onlyIfAbsent || !c.res.headers.has(name));
  if (entries.length === 0) return;
  try {
    for (const [name, value] of entries) c.res.headers.set(name, value);
  } catch {
    const copy = new Headers(c.res.headers);
    for (const [name, value] of entries) copy.set(name, value);
    c.res = new Response(c.res.body, { status: c.res.status, statusText: c.res.statusText, headers: copy });
  }
}

/** Appends `value` to a comma-separated header such as `Vary`, unless it is already listed. */
export function appendToken(c: Context, name: string, value: string): void {
  const current = c.res.headers.get(name);
  const tokens = (current ?? '').split(',').map((t) => t.trim().toLowerCase()).filter(Boolean);
  if (tokens.includes(value.toLowerCase()) || tokens.includes('*')) return;
  setHeaders(c, { [name]: current ? `${current}, ${value}` : value });
}
