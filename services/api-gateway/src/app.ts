/**
 * api-gateway HTTP app: the platform's only public entry. Every response gets security headers and
 * CORS from the allow-list; `/api/*` requests are authenticated (except the public routes), rate
 * limited, size limited and streamed to their service through the proxy and its circuit breakers;
 * `/health` answers with every service's readiness, `/openapi.json` with the merged public API and
 * `/docs` with an API reference over it.
 */
import { PLATFORM_VERSION } from '@shared/version.ts';
import { createRoute } from '@hono/zod-openapi';
import { createServiceApp, type KitDeps, type ServiceApp } from '@shared/app.ts';
import type { Authenticator } from '@shared/auth.ts';
import type { CircuitBreaker } from '@shared/circuit-breaker.ts';
import { clientIp } from '@shared/client-ip.ts';
import { pingCheck } from '@shared/health.ts';
import type { Kv } from '@shared/kv.ts';
import { createMetrics } from '@shared/metrics.ts';
import { PlatformHealthSchema } from '@shared/schemas/health.ts';
import type { Context } from 'hono';
import { bodyLimitFor, type BodyLimits } from './body-limits.ts';
import { cors } from './cors.ts';
import { mountDocsUi, type DocsUi } from './docs-ui.ts';
import { edgeAccessFor, edgeAuth } from './edge-auth.ts';
import type { HealthReport } from './health-fanout.ts';
import { createOpenApiAggregator, type OpenApiAggregator } from './openapi-aggregate.ts';
import type { OpenApiDocument, SecurityRequirement } from './openapi-merge.ts';
import type { Proxy } from './proxy.ts';
import { chargeRefusedToken, rateLimits, BUCKETS, type RateLimiter, type RateLimits } from './rate-limits.ts';
import { UPSTREAM_NAMES, type UpstreamName } from './route-table.ts';
import { securityHeaders } from './security-headers.ts';

export const GATEWAY_VERSION = PLATFORM_VERSION;

export interface GatewayDeps extends KitDeps {
  kv: Kv;
  proxy: Proxy;
  health: () => Promise<HealthReport>;
  /** Verifies tokens at the edge (access tokens against the JWKS, API tokens by introspection). */
  authenticator: Authenticator;
  rateLimiter: RateLimiter;
  limits: RateLimits;
  bodyLimits: BodyLimits;
  /** Allowed browser origins (`*` for any, without credentials); empty for none. */
  corsOrigins: readonly string[];
  hstsMaxAgeSeconds: number;
  /** Take the client address from the last `X-Forwarded-For` hop (only behind a trusted proxy). */
  trustForwardedFor: boolean;
  /** The merged document's sources and refresh policy. */
  openapi: { upstreams: Record<UpstreamName, string>; timeoutMs: number; refreshMs: number; fetch?: typeof fetch };
  /** The proxy's breaker, for the circuit-state gauge. */
  breaker?: CircuitBreaker;
  /** The API reference served at `/docs` (from `loadDocsUi`); without it `/docs` is a 404. */
  docs?: DocsUi;
}

const healthRoute = createRoute({
  method: 'get',
  path: '/health',
  tags: ['Operations'],
  summary: 'Platform health: the readiness of every service behind the gateway',
  description: '200 when every service is ready; 503 with the same body when any is not.',
  responses: {
    200: { description: 'All services ready.', content: { 'application/json': { schema: PlatformHealthSchema } } },
    503: { description: 'At least one service is not ready.', content: { 'application/json': { schema: PlatformHealthSchema } } },
  },
});

/** Where the merged document is served inside the app (see the fetch wrapper at the end of `createApp`). */
const MERGED_DOCUMENT_PATH = '/openapi.json/merged';

/** The security the edge applies to an operation, for the merged document. */
export function edgeSecurity(method: string, path: string): SecurityRequirement[] {
  if (!path.startsWith('/api/')) return [];
  switch (edgeAccessFor(method.toUpperCase(), path, true)) {
    case 'public':
      return [];
    case 'signed-link':
      // A bearer token, or nothing but the signed link's query parameters.
      return [{ bearerAuth: [] }, {}];
    default:
      return [{ bearerAuth: [] }];
  }
}

/**
 * Builds the gateway app and its merged-document aggregator from dependencies; no I/O until a request
 * arrives.
 */
export function createApp(deps: GatewayDeps): { app: ServiceApp; openapi: OpenApiAggregator } {
  const metrics = createMetrics({ service: 'api-gateway' });
  const app = createServiceApp({
    ...deps,
    metrics,
    name: 'api-gateway',
    version: GATEWAY_VERSION,
    description: 'The public entry of the Federated Imputation Platform',
    liveness: false,
    readiness: [pingCheck('kv', deps.kv)],
  });
  const ipOf = (c: Context) => clientIp(c, deps.trustForwardedFor);
  const limitOptions = { limiter: deps.rateLimiter, limits: deps.limits, clientIp: ipOf };

  metrics.registerGauge('gateway_rate_limit_store_failures', 'Rate-limit KV calls that failed or timed out since start (counter).', () => [
    { value: deps.rateLimiter.stats.storeFailures },
  ]);
  metrics.registerGauge('gateway_rate_limited_requests', 'Requests refused with 429 since start, by bucket (counter).', () =>
    BUCKETS.map((bucket) => ({ labels: { bucket }, value: deps.rateLimiter.stats.limited[bucket] })),
  );
  if (deps.breaker) {
    const breaker = deps.breaker;
    const level = { closed: 0, 'half-open': 1, open: 2 } as const;
    metrics.registerGauge('gateway_upstream_circuit_state', 'Circuit per upstream: 0 closed, 1 half-open, 2 open.', () =>
      UPSTREAM_NAMES.map((upstream) => ({ labels: { upstream }, value: level[breaker.state(upstream)] })),
    );
  }

  app.use('*', securityHeaders({ hstsMaxAgeSeconds: deps.hstsMaxAgeSeconds }));
  app.use('*', cors({ origins: deps.corsOrigins }));

  app.openapi(healthRoute, async (c) => {
    const report = await deps.health();
    return c.json({ ...report, service: 'api-gateway' }, report.status === 'healthy' ? 200 : 503);
  });

  const openapi = createOpenApiAggregator({
    ...deps.openapi,
    logger: deps.logger,
    merge: {
      title: 'Federated Imputation Platform API',
      version: GATEWAY_VERSION,
      description: 'The public API of every service, as reached through the gateway. Send `Authorization: Bearer <token>` on every route not marked public.',
      securityFor: edgeSecurity,
    },
    own: () =>
      app.getOpenAPI31Document({ openapi: '3.1.0', info: { title: 'api-gateway', version: GATEWAY_VERSION, description: 'The gateway itself: platform health and operations' } }) as unknown as OpenApiDocument,
  });
  app.get(MERGED_DOCUMENT_PATH, async (c) => {
    const merged = await openapi.document();
    const headers = { etag: merged.etag, 'cache-control': 'no-cache' };
    if (c.req.header('if-none-match') === merged.etag) return c.body(null, 304, headers);
    return c.body(merged.json, 200, { ...headers, 'content-type': 'application/json; charset=utf-8' });
  });

  if (deps.docs) mountDocsUi(app, deps.docs);

  app.use('/api/*', edgeAuth({ authenticator: deps.authenticator, logger: deps.logger, onRejected: chargeRefusedToken(limitOptions) }));
  app.use('/api/*', rateLimits(limitOptions));
  app.all('/api/*', (c) =>
    deps.proxy(c.req.raw, {
      requestId: c.get('requestId'),
      clientIp: ipOf(c),
      maxBodyBytes: bodyLimitFor(deps.bodyLimits, c.req.method, c.req.path),
    }),
  );

  // The kit registers its own `/openapi.json` (this app's routes only) before any route added here,
  // and the first match wins; so the public path is rewritten to the merged document's route before
  // dispatch, keeping request ids, access log and metrics.
  const dispatch = app.fetch;
  app.fetch = (request, ...rest) => {
    // The substring test keeps URL parsing off the hot path of every other request.
    if ((request.method === 'GET' || request.method === 'HEAD') && request.url.includes('/openapi.json')) {
      const url = new URL(request.url);
      if (url.pathname === '/openapi.json') {
        url.pathname = MERGED_DOCUMENT_PATH;
        return dispatch(new Request(url.href, request), ...rest);
      }
    }
    return dispatch(request, ...rest);
  };

  return { app, openapi };
}
