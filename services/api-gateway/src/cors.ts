/**
 * CORS from an allow-list (`CORS_ORIGINS`): preflights are answered by the gateway itself (204 for a
 * listed origin, 403 problem otherwise) and never reach a backend; actual responses to a listed
 * origin carry `Access-Control-Allow-Origin` with that exact origin. `*` allows any origin but then
 * without credentials, as browsers require; an empty list allows no cross-origin use at all.
 */
import type { AppEnv } from '@shared/app.ts';
import { HttpProblem } from '@shared/errors.ts';
import type { MiddlewareHandler } from 'hono';
import { appendToken, setHeaders } from './response-headers.ts';

export interface CorsOptions {
  /** Exact origins (`https://app.example.org`), or `*`. */
  origins: readonly string[];
  /** How long a browser may cache a preflight, in seconds. */
  maxAgeSeconds?: number;
}

const ALLOWED_METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE';
const ALLOWED_HEADERS = 'authorization, content-type, accept, accept-language, content-language, range, if-match, if-none-match, idempotency-key, last-event-id, x-request-id';
/** Response headers a browser script needs to see: rate limits, pagination of downloads, ids. */
const EXPOSED_HEADERS = 'ratelimit-limit, ratelimit-remaining, ratelimit-reset, ratelimit-policy, retry-after, x-request-id, location, etag, content-disposition, content-range, accept-ranges';

/** Normalises `CORS_ORIGINS` entries: trims, drops a trailing slash, lower-cases scheme and host. */
export function parseOrigins(text: string | undefined): string[] {
  return (text ?? '')
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean)
    .map((o) => (o === '*' ? o : new URL(o).origin));
}

export function cors(options: CorsOptions): MiddlewareHandler<AppEnv> {
  const anyOrigin = options.origins.includes('*');
  const allowed = new Set(options.origins);
  const maxAge = String(options.maxAgeSeconds ?? 600);
  const enabled = allowed.size > 0;

  const originHeaders = (origin: string): Record<string, string> =>
    anyOrigin ? { 'access-control-allow-origin': '*' } : { 'access-control-allow-origin': origin, 'access-control-allow-credentials': 'true' };

  return async (c, next) => {
    const origin = c.req.header('origin');
    const isPreflight = c.req.method === 'OPTIONS' && origin !== undefined && c.req.header('access-control-request-method') !== undefined;
    const permitted = origin !== undefined && enabled && (anyOrigin || allowed.has(origin));

    if (isPreflight) {
      if (!permitted) throw new HttpProblem(403, 'cors_origin_denied', `Origin ${origin} may not call this API from a browser.`);
      return c.body(null, 204, {
        ...originHeaders(origin),
        'access-control-allow-methods': ALLOWED_METHODS,
        'access-control-allow-headers': ALLOWED_HEADERS,
        'access-control-max-age': maxAge,
        vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
      });
    }

    await next();
    if (!enabled) return;
    // The answer depends on Origin whenever a list is configured, so shared caches must key on it.
    if (!anyOrigin) appendToken(c, 'vary', 'Origin');
    if (permitted) setHeaders(c, { ...originHeaders(origin), 'access-control-expose-headers': EXPOSED_HEADERS });
  };
}
