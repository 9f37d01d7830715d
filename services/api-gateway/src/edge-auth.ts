/**
 * Authentication at the edge: every `/api/*` request needs a verified access token or API token
 * before the gateway forwards a byte of it, except the few routes that are anonymous by design
 * (login, register, refresh, logout, JWKS) and file-manager's signed download links, which carry
 * their own proof that file-manager checks. The verified `Authorization` is forwarded unchanged:
 * backends verify it again (defense in depth) and never read identity from headers.
 */
import type { AppEnv } from '@shared/app.ts';
import { authUnavailable, type Authenticator, type Identity } from '@shared/auth.ts';
import { HttpProblem } from '@shared/errors.ts';
import type { Logger } from '@shared/log.ts';
import type { Context, MiddlewareHandler } from 'hono';
import { resolveRoute } from './route-table.ts';
import { errorName } from './log-safe.ts';

/** Public `/api/*` routes as `METHOD path` (exact, after trailing-slash trimming). */
export const PUBLIC_API_ROUTES: ReadonlySet<string> = new Set([
  'POST /api/auth/login',
  'POST /api/auth/register',
  'POST /api/auth/refresh',
  'POST /api/auth/logout',
  'GET /api/auth/jwks',
  'HEAD /api/auth/jwks',
]);

/** The one public route a signed download link opens (file-manager verifies `expires` and `sig`). */
const SIGNED_CONTENT_PATH = /^\/api\/files\/[^/]+\/content$/;

export type EdgeAccess =
  /** Anonymous by design; forwarded without a token check. */
  | 'public'
  /** Anonymous at the edge because the request carries a signed link the backend checks. */
  | 'signed-link'
  /** Needs a verified token. */
  | 'protected';

function trimmed(pathname: string): string {
  return pathname.length > 1 && pathname.endsWith('/') ? pathname.replace(/\/+$/, '') : pathname;
}

/**
 * Which kind of access a request to `pathname` needs. `hasSignature` says whether the query carries a
 * `sig` parameter (asked only for the download route); without one that route is protected like any other.
 */
export function edgeAccessFor(method: string, pathname: string, hasSignature: boolean | (() => boolean)): EdgeAccess {
  const path = trimmed(pathname);
  if (PUBLIC_API_ROUTES.has(`${method} ${path}`)) return 'public';
  if ((method === 'GET' || method === 'HEAD') && SIGNED_CONTENT_PATH.test(path)) {
    if (typeof hasSignature === 'function' ? hasSignature() : hasSignature) return 'signed-link';
  }
  return 'protected';
}

/** Whether the route is a credential-guessing surface (its own, stricter rate-limit bucket). */
export function isCredentialRoute(method: string, pathname: string): boolean {
  const path = trimmed(pathname);
  return method === 'POST' && (path === '/api/auth/login' || path === '/api/auth/register');
}

export interface EdgeAuthOptions {
  authenticator: Authenticator;
  logger: Logger;
  /**
   * Called when a token is refused, with the request's context: the rate limiter charges the
   * client's address for it, so guessing tokens is throttled like guessing passwords. May throw a
   * 429 problem to answer instead of the 401.
   */
  onRejected?: (c: Context<AppEnv>) => Promise<void>;
}

/**
 * Middleware for `/api/*`: sets `identity` for protected routes, answers 401 (missing, forged,
 * expired, `alg:none`, revoked) or 403 (a service token, which belongs inside the platform) as
 * problems, and 503 when verification itself cannot run (the KV holding revocation marks is down).
 * Unrouted paths pass untouched so the proxy can answer its 404.
 */
export function edgeAuth(options: EdgeAuthOptions): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const path = c.req.path;
    if (!resolveRoute(path)) return next();
    if (edgeAccessFor(c.req.method, path, () => c.req.query('sig') !== undefined) !== 'protected') return next();

    let identity: Identity;
    try {
      identity = await options.authenticator.authenticate(c.req.header('authorization'));
    } catch (err) {
      if (err instanceof HttpProblem) {
        if (err.status === 401) await options.onRejected?.(c);
        throw err;
      }
      // Not a verdict on the token: the revocation store or key fetch failed. Retrying soon may work.
      options.logger.warn('token verification unavailable', { requestId: c.get('requestId'), error: errorName(err) });
      throw authUnavailable();
    }
    if (identity.kind === 'service') {
      throw new HttpProblem(403, 'service_token_not_accepted', 'Service tokens are for calls between the platform’s services, not through the public API.');
    }
    c.set('identity', identity);
    return next();
  };
}
