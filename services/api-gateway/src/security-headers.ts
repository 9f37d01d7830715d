/**
 * Security headers on every gateway response, proxied or its own. API responses get a CSP that allows
 * nothing (they are data, never documents); `/docs` gets one that allows only the gateway's own
 * assets, so the reference works offline and nothing from elsewhere can run in it. A header an
 * upstream set on purpose (say, a download's own CSP) is kept.
 */
import type { AppEnv } from '@shared/app.ts';
import type { MiddlewareHandler } from 'hono';
import { setHeaders } from './response-headers.ts';

export interface SecurityHeaderOptions {
  /** `Strict-Transport-Security` max-age; 0 leaves it out (set it when clients reach the gateway over TLS). */
  hstsMaxAgeSeconds: number;
}

/** For JSON, problems and downloads: nothing may load, nothing may frame it. */
export const API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/**
 * For the docs UI: scripts, styles, fonts and images from the gateway itself only; requests the page
 * sends go to the same origin. Inline styles are allowed because API reference UIs set them from script.
 */
export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

const isDocsPath = (path: string) => path === '/docs' || path.startsWith('/docs/');

/** Middleware adding the headers after the response is made (error responses included). */
export function securityHeaders(options: SecurityHeaderOptions): MiddlewareHandler<AppEnv> {
  const fixed: Record<string, string> = {
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
    'cross-origin-opener-policy': 'same-origin',
  };
  if (options.hstsMaxAgeSeconds > 0) fixed['strict-transport-security'] = `max-age=${options.hstsMaxAgeSeconds}`;
  return async (c, next) => {
    await next();
    setHeaders(c, { ...fixed, 'content-security-policy': isDocsPath(c.req.path) ? DOCS_CSP : API_CSP }, true);
  };
}
