/**
 * The service kit: every service's Hono app starts here. It gives request ids, one JSON access-log
 * line per request, RFC 9457 problems for every error, liveness, readiness, Prometheus metrics, a
 * cached OpenAPI 3.1 document and GA4GH service-info. Services add their routes to the returned app.
 */
import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { routePath } from 'hono/route';
import { HttpProblem, PROBLEM_CONTENT_TYPE, type ProblemFieldError } from './errors.ts';
import { runReadiness, type ReadinessCheck } from './health.ts';
import { authMiddleware, type AuthMiddlewareOptions, type Identity } from './auth.ts';
import type { BaseEnv } from './config.ts';
import { isDatabaseUnavailable, sqlState } from './db.ts';
import type { Logger } from './log.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { LivenessSchema, ReadinessSchema } from './schemas/health.ts';
import { problemResponses } from './schemas/problem.ts';
import { ServiceInfoSchema, type ServiceInfo } from './schemas/service-info.ts';

export type AppEnv = {
  Variables: {
    requestId: string;
    logger: Logger;
    /** The verified caller; set on every non-public route when the app has `auth`. */
    identity: Identity;
  };
};

export type ServiceApp = OpenAPIHono<AppEnv>;

export interface ServiceAppOptions {
  name: string;
  version: string;
  description: string;
  logger: Logger;
  metrics?: Metrics;
  /** Dependencies `/ready` checks; each runs under `readyTimeoutMs`. */
  readiness?: ReadinessCheck[];
  readyTimeoutMs?: number;
  organization?: { name: string; url: string };
  /** GA4GH service type; defaults to `org.federated-imputation:<name>:<version>`. */
  serviceType?: ServiceInfo['type'];
  /** When false the app does not register `GET /health` (the gateway serves an aggregate there). */
  liveness?: boolean;
  /** Default-deny authentication; the kit's operational endpoints are always public. */
  auth?: Omit<AuthMiddlewareOptions, 'publicPaths'> & { publicPaths?: string[] };
  /** Clock for service-info timestamps. */
  startedAt?: Date;
  /** service-info `environment` (dev, test, prod). */
  environment?: string;
}

/** The kit settings every service takes from its parsed environment. */
export interface KitDeps {
  logger: Logger;
  readyTimeoutMs: number;
  organization: { name: string; url: string };
}

export function kitDepsFromEnv(env: BaseEnv, logger: Logger): KitDeps {
  return { logger, readyTimeoutMs: env.READY_TIMEOUT_MS, organization: { name: env.ORG_NAME, url: env.ORG_URL } };
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** The endpoints DESIGN.md §5 lists as anonymous; a service may add its own (login, JWKS). */
export const KIT_PUBLIC_PATHS = ['/health', '/ready', '/metrics', '/openapi.json', '/docs', '/service-info'];
const PROBE_PATHS = new Set(['/health', '/ready', '/metrics']);

/** Builds a service's base app with the kit's middleware and endpoints. */
export function createServiceApp(options: ServiceAppOptions): ServiceApp {
  const metrics = options.metrics ?? createMetrics({ service: options.name });
  const readiness = options.readiness ?? [];
  const readyTimeoutMs = options.readyTimeoutMs ?? 1000;
  const startedAt = (options.startedAt ?? new Date()).toISOString();

  const app: ServiceApp = new OpenAPIHono<AppEnv>({
    defaultHook: (result, c) => {
      if (result.success) return;
      const target = result.target;
      const status = target === 'json' || target === 'form' ? 422 : 400;
      const errors = zodIssuesToErrors(result.error.issues, target);
      return problemJson(c, new HttpProblem(status, 'validation_failed', describeValidation(errors), { errors }));
    },
  });

  app.use('*', async (c, next) => {
    const started = performance.now();
    const incoming = c.req.header('x-request-id');
    const requestId = incoming && REQUEST_ID.test(incoming) ? incoming : Bun.randomUUIDv7();
    c.set('requestId', requestId);
    c.set('logger', options.logger.child({ requestId }));
    await next();
    setHeader(c, 'X-Request-ID', requestId);
    const seconds = (performance.now() - started) / 1000;
    // When only this middleware ('/*') matched, no route did: one label instead of one per raw path.
    const matched = routePath(c, -1);
    const route = matched === '/*' ? 'unmatched' : matched;
    metrics.observeRequest(c.req.method, route, c.res.status, seconds);
    const path = c.req.path;
    const line = {
      requestId,
      method: c.req.method,
      path,
      route,
      status: c.res.status,
      durationMs: Math.round(seconds * 1e5) / 100,
    };
    if (PROBE_PATHS.has(path) && c.res.status < 400) options.logger.debug('request', line);
    else options.logger.info('request', line);
  });

  if (options.auth) {
    app.use(
      '*',
      authMiddleware({ ...options.auth, publicPaths: [...KIT_PUBLIC_PATHS, ...(options.auth.publicPaths ?? [])] }),
    );
    app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', {
      type: 'http',
      scheme: 'bearer',
      description: 'An access token from POST /auth/login, or a personal API token (fip_…).',
    });
  }

  app.onError((err, c) => {
    if (err instanceof HttpProblem) return problemJson(c, err);
    if (err instanceof HTTPException) {
      const code = err.status === 400 ? 'malformed_request' : err.status === 413 ? 'body_too_large' : 'http_error';
      return problemJson(c, new HttpProblem(err.status, code, err.message || undefined));
    }
    const state = sqlState(err);
    // Text PostgreSQL cannot store (a NUL character) is the client's mistake, whichever route it came through.
    if (state === '22021' || state === '22P05') {
      return problemJson(c, new HttpProblem(400, 'invalid_text', 'Text fields must not contain NUL or other characters the database cannot store.'));
    }
    // The database restarting, refusing connections or full: the client may retry, and monitoring sees /ready fail.
    if (isDatabaseUnavailable(err)) {
      c.get('logger')?.warn('database unavailable', { err: loggableError(err), sqlState: state, path: c.req.path, method: c.req.method });
      return problemJson(c, new HttpProblem(503, 'database_unavailable', 'The database is unavailable right now; try again shortly.', { headers: { 'retry-after': '2' } }));
    }
    c.get('logger')?.error('unhandled error', { err: loggableError(err), sqlState: state, path: c.req.path, method: c.req.method });
    return problemJson(c, new HttpProblem(500, 'internal_error', 'An unexpected error occurred. Quote the request id when reporting it.'));
  });

  app.notFound((c) => problemJson(c, new HttpProblem(404, 'route_not_found', `No route for ${c.req.method} ${c.req.path}.`)));

  if (options.liveness !== false) {
    app.openapi(
      createRoute({
        method: 'get',
        path: '/health',
        tags: ['Operations'],
        summary: 'Liveness: the process is up and serving',
        responses: { 200: { description: 'Alive.', content: { 'application/json': { schema: LivenessSchema } } } },
      }),
      (c) => c.json({ status: 'healthy' as const, service: options.name }, 200),
    );
  }

  app.openapi(
    createRoute({
      method: 'get',
      path: '/ready',
      tags: ['Operations'],
      summary: 'Readiness: every dependency this service needs answers',
      responses: {
        200: { description: 'Ready.', content: { 'application/json': { schema: ReadinessSchema } } },
        ...problemResponses(503),
      },
    }),
    async (c) => {
      const report = await runReadiness(readiness, readyTimeoutMs);
      if (report.status === 'ready') {
        return c.json({ status: 'ready' as const, service: options.name, checks: report.checks }, 200);
      }
      throw new HttpProblem(503, 'not_ready', `Not ready: ${report.failed.join(', ')} failed.`, {
        extensions: { service: options.name, failed: report.failed, checks: report.checks },
      });
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/metrics',
      tags: ['Operations'],
      summary: 'Prometheus metrics',
      responses: { 200: { description: 'Prometheus text exposition.', content: { 'text/plain': { schema: z.string() } } } },
    }),
    async (c) => c.text(await metrics.render(), 200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }),
  );

  const serviceInfo: ServiceInfo = {
    id: `org.federated-imputation.${options.name}`,
    name: `Federated Imputation Platform: ${options.name}`,
    type: options.serviceType ?? { group: 'org.federated-imputation', artifact: options.name, version: options.version },
    description: options.description,
    organization: options.organization ?? { name: 'Federated Imputation Platform', url: 'https://github.com/federated-imputation' },
    createdAt: startedAt,
    updatedAt: startedAt,
    environment: options.environment ?? 'dev',
    version: options.version,
  };
  app.openapi(
    createRoute({
      method: 'get',
      path: '/service-info',
      tags: ['Operations'],
      summary: 'GA4GH service-info',
      responses: { 200: { description: 'Service description.', content: { 'application/json': { schema: ServiceInfoSchema } } } },
    }),
    (c) => c.json(serviceInfo, 200),
  );

  // Built on first request, after every route is registered; regenerating per request costs half the throughput.
  let documentJson: string | undefined;
  app.get('/openapi.json', (c) => {
    documentJson ??= JSON.stringify(
      app.getOpenAPI31Document({
        openapi: '3.1.0',
        info: { title: options.name, version: options.version, description: options.description },
      }),
    );
    return c.body(documentJson, 200, { 'content-type': 'application/json; charset=utf-8' });
  });

  return app;
}

/** Renders an `HttpProblem` as `application/problem+json` with the request id. */
export function problemJson(c: Context<AppEnv>, problem: HttpProblem): Response {
  const body = problem.toProblem(c.req.path, c.get('requestId'));
  return c.body(JSON.stringify(body), problem.status as 400, {
    ...problem.headers,
    'content-type': PROBLEM_CONTENT_TYPE,
  });
}

/**
 * drizzle's query errors carry the query parameters in their message (user input, token hashes,
 * sealed secrets): log the database's own error instead.
 */
function loggableError(err: unknown): unknown {
  if (!(err instanceof Error) || !err.message.includes('\nparams:')) return err;
  const cause = err.cause instanceof Error ? err.cause : undefined;
  return { name: cause?.name ?? err.name, message: cause?.message ?? err.message.split('\nparams:')[0], query: err.message.split('\nparams:')[0] };
}

function setHeader(c: Context, name: string, value: string) {
  try {
    c.res.headers.set(name, value);
  } catch {
    // Responses passed through from fetch() have immutable headers.
    const headers = new Headers(c.res.headers);
    headers.set(name, value);
    c.res = new Response(c.res.body, { status: c.res.status, statusText: c.res.statusText, headers });
  }
}

function zodIssuesToErrors(issues: readonly z.core.$ZodIssue[], target: string): ProblemFieldError[] {
  return issues.map((issue) => ({
    path: [target === 'json' || target === 'form' ? 'body' : target, ...issue.path.map(String)].join('.'),
    message: issue.message,
    code: issue.code,
  }));
}

function describeValidation(errors: ProblemFieldError[]): string {
  const first = errors[0];
  if (!first) return 'The request failed validation.';
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
  return `${first.path}: ${first.message}${more}`;
}

