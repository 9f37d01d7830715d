/**
 * The gateway's route table: which backend owns which public `/api/*` prefix, and what path the
 * backend sees. Kept as data so the table can be read, tested and documented in one place.
 */

/** The six backends the gateway fronts. */
export const UPSTREAM_NAMES = [
  'user-service',
  'service-registry',
  'job-processor',
  'file-manager',
  'notification',
  'monitoring',
] as const;

export type UpstreamName = (typeof UPSTREAM_NAMES)[number];

export interface RouteRule {
  /** Public prefix, matched on whole path segments. */
  prefix: string;
  service: UpstreamName;
  /**
   * How the upstream path is built from what follows the prefix (`rest` is '' or starts with '/').
   * Absent means "the request path without `/api`".
   */
  rewrite?: (rest: string) => string;
}

export interface ResolvedRoute {
  service: UpstreamName;
  /** Path on the upstream, always starting with '/', without a trailing slash (except '/'). */
  path: string;
}

export const ROUTES: readonly RouteRule[] = [
  { prefix: '/api/auth', service: 'user-service' },
  { prefix: '/api/users', service: 'user-service' },
  { prefix: '/api/admin', service: 'user-service' },
  { prefix: '/api/services', service: 'service-registry' },
  { prefix: '/api/panels', service: 'service-registry' },
  { prefix: '/api/ga4gh', service: 'service-registry' },
  { prefix: '/api/jobs', service: 'job-processor' },
  { prefix: '/api/files', service: 'file-manager' },
  { prefix: '/api/notifications', service: 'notification' },
  { prefix: '/api/webhooks', service: 'notification' },
  // Monitoring's own API is rooted at '/', so the public prefix is removed entirely.
  { prefix: '/api/monitoring', service: 'monitoring', rewrite: (rest) => rest || '/' },
  { prefix: '/api/dashboard', service: 'monitoring' },
];

const API_PREFIX = '/api';

/**
 * Maps a request pathname to its backend and upstream path, or null when no rule owns it
 * (there is deliberately no default route: unknown paths are the gateway's 404, not a backend's).
 * Matching is on segment boundaries, so `/api/jobsx` matches nothing, and a trailing slash is
 * ignored so `/api/jobs` and `/api/jobs/` are the same route.
 */
export function resolveRoute(pathname: string): ResolvedRoute | null {
  const trimmed = pathname.length > 1 && pathname.endsWith('/') ? pathname.replace(/\/+$/, '') : pathname;
  for (const rule of ROUTES) {
    if (trimmed !== rule.prefix && !trimmed.startsWith(rule.prefix + '/')) continue;
    const rest = trimmed.slice(rule.prefix.length);
    const path = rule.rewrite ? rule.rewrite(rest) : trimmed.slice(API_PREFIX.length);
    return { service: rule.service, path: path || '/' };
  }
  return null;
}

/**
 * The inverse of `resolveRoute`: the public path under which `upstreamPath` of `service` is reached,
 * or null when no rule exposes it (e.g. user-service's `/.well-known/jwks.json`). Plain `/api`-removal
 * rules are preferred to rewriting ones, so monitoring's `/dashboard/stats` is `/api/dashboard/stats`
 * and its `/health/overall` is `/api/monitoring/health/overall`. Every candidate is checked by
 * resolving it forward, so the answer always routes back to the same place.
 */
export function publicPathFor(service: UpstreamName, upstreamPath: string): string | null {
  const rules = ROUTES.filter((rule) => rule.service === service).sort((a, b) => Number(!!a.rewrite) - Number(!!b.rewrite));
  for (const rule of rules) {
    const candidate = rule.rewrite ? rule.prefix + (upstreamPath === '/' ? '' : upstreamPath) : API_PREFIX + upstreamPath;
    const resolved = resolveRoute(candidate);
    if (resolved && resolved.service === service && resolved.path === upstreamPath) return candidate;
  }
  return null;
}
