/**
 * The platform's health as operators read it: `/health/overall` (from in-memory state) and
 * `/health/services` (a live probe of every service) keep the original paths and snake_case shapes,
 * with the platform's additions in the same case; `/health/history` (a platform addition) pages the
 * stored probes with `{items, nextCursor}` in camelCase. Every route needs a signed-in caller; the
 * kit's `/health` stays the public liveness check. Also the platform gauges on monitoring's `/metrics`.
 */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { probes } from '@db/schema/monitor.ts';
import type { AppEnv } from '@shared/app.ts';
import type { Db } from '@shared/db.ts';
import { HttpProblem } from '@shared/errors.ts';
import type { Logger } from '@shared/log.ts';
import type { Metrics } from '@shared/metrics.ts';
import { jsonContent } from '@shared/openapi.ts';
import { decodeCursor, encodeCursor, PageQuerySchema, pageOf } from '@shared/schemas/pagination.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { and, desc, eq, gte, lt, lte, or, type SQL } from 'drizzle-orm';
import type { AlertView } from '../alert-engine.ts';
import { PROBE_STATUSES, type HostSample, type ProbeStatus, type ServiceProbe } from '../domain.ts';
import { UP_STATUSES, type ServiceProber, type ServiceUptime } from '../service-prober.ts';
import { SystemMetricsSchema, systemMetricsView } from '../system-metrics-view.ts';
import { OperatorAlertSchema, operatorAlertView } from './alerts.ts';

const security = [{ bearerAuth: [] }];
const tags = ['Health'];

/** What the overall status rule needs of an active alert. */
export interface ActiveAlertLike {
  severity: string;
}

export interface HealthRoutesDeps {
  db: Db;
  prober: Pick<ServiceProber, 'latest' | 'uptimes' | 'probeAll'>;
  /** The latest host sample, or null before the first. */
  host: () => HostSample | null;
  /** The alerts currently active (the engine's view); `/health/overall` shows them in the operators' shape. */
  activeAlerts: () => Promise<AlertView[]>;
  now?: () => number;
}

/** The original two-valued verdict: did the service answer ready (a slow answer is still an answer)? */
const ORIGINAL_STATUSES = ['healthy', 'unhealthy'] as const;

export const ServiceHealthSchema = z
  .object({
    service_name: z.string().openapi({ example: 'user-service' }),
    status: z.enum(ORIGINAL_STATUSES).openapi({
      description: 'The original verdict: `healthy` when the service answered its readiness check (probe_status healthy or degraded), else `unhealthy`.',
    }),
    probe_status: z.enum(PROBE_STATUSES).openapi({
      description: '`degraded` answered ready but slower than the threshold; `unreachable` gave no answer in time or refused the connection.',
    }),
    response_time_ms: z.number().nullable().openapi({ description: 'Null when there was no answer.' }),
    error_message: z.string().nullable().openapi({ description: 'The readiness checks that failed (`database,kv`), `HTTP <code>`, or why there was no answer.' }),
    endpoint_url: z.string().openapi({ example: 'http://user-service:8001/ready', description: 'The endpoint probed.' }),
    http_status_code: z.number().int().nullable(),
    checked_at: z.string(),
    consecutive_failures: z.number().int().openapi({ description: 'Probes in a row that found the service unhealthy or unreachable.' }),
    uptime_24h: z.number().nullable().openapi({ description: 'Percentage of the last 24 h’s probes that found the service up (healthy or degraded); null without probes.' }),
    uptime_7d: z.number().nullable().openapi({ description: 'The same over 7 days, within the probes’ retention.' }),
  })
  .openapi('PlatformServiceHealth');

export type ServiceHealth = z.infer<typeof ServiceHealthSchema>;

/**
 * A probe in the original `service_health` row shape, with the platform's additions (probe_status,
 * consecutive_failures, uptimes) in the same snake_case. The prober reads `<url>/ready`.
 */
export function serviceHealthView(probe: ServiceProbe, uptime: ServiceUptime | undefined): ServiceHealth {
  return {
    service_name: probe.service,
    status: UP_STATUSES.includes(probe.status) ? 'healthy' : 'unhealthy',
    probe_status: probe.status,
    response_time_ms: probe.latencyMs,
    error_message: probe.failedCheck,
    endpoint_url: `${probe.url.replace(/\/+$/, '')}/ready`,
    http_status_code: probe.httpStatus,
    checked_at: probe.checkedAt,
    consecutive_failures: probe.consecutiveFailures,
    uptime_24h: uptime?.uptime24h ?? null,
    uptime_7d: uptime?.uptime7d ?? null,
  };
}

export const OVERALL_STATUSES = ['healthy', 'degraded', 'critical'] as const;
export type OverallStatus = (typeof OVERALL_STATUSES)[number];

const OverallHealthSchema = z
  .object({
    overall_status: z.enum(OVERALL_STATUSES),
    services: z.array(ServiceHealthSchema).openapi({ description: 'The latest probe of every service.' }),
    system_metrics: SystemMetricsSchema.nullable().openapi({ description: 'The latest host sample; null only before the first one.' }),
    active_alerts: z.array(OperatorAlertSchema),
    last_updated: z.string().openapi({ description: 'When the newest probe or host sample in this view was taken.' }),
  })
  .openapi('OverallHealth');

const ProbeRecordSchema = z
  .object({
    service: z.string(),
    status: z.enum(PROBE_STATUSES),
    latencyMs: z.number().nullable(),
    httpStatus: z.number().int().nullable(),
    failedCheck: z.string().nullable(),
    checkedAt: z.string(),
  })
  .openapi('ProbeRecord');

const HistoryQuerySchema = PageQuerySchema.extend({
  service: z.string().min(1).max(100).optional(),
  from: z.iso.datetime({ offset: true }).optional().openapi({ description: 'Oldest probe time to include (ISO 8601).' }),
  to: z.iso.datetime({ offset: true }).optional().openapi({ description: 'Newest probe time to include (ISO 8601).' }),
});

const overall = createRoute({
  method: 'get',
  path: '/health/overall',
  tags,
  security,
  summary: 'The platform at a glance: every service’s latest probe with uptimes, the host, and active alerts',
  description:
    'The original operators’ shape, all snake_case. Answered from the state the background probes keep; nothing is probed at request time. `critical` when an active ' +
    'alert is critical or more than half the services are unhealthy or unreachable; `degraded` when any service is not ' +
    'healthy or any alert is active; otherwise `healthy`.',
  responses: { 200: { description: 'The overall health.', ...jsonContent(OverallHealthSchema) }, ...problemResponses(401) },
});

const services = createRoute({
  method: 'get',
  path: '/health/services',
  tags,
  security,
  summary: 'Probe every service’s readiness now; the results are stored',
  description: 'A bare array in the original `service_health` row shape, one per service, with uptimes including this probe.',
  responses: { 200: { description: 'One probe per service.', ...jsonContent(z.array(ServiceHealthSchema)) }, ...problemResponses(401) },
});

const history = createRoute({
  method: 'get',
  path: '/health/history',
  tags,
  security,
  summary: 'Stored probes in a time range, newest first',
  request: { query: HistoryQuerySchema },
  responses: { 200: { description: 'A page of probes.', ...jsonContent(pageOf(ProbeRecordSchema, 'ProbeHistoryPage')) }, ...problemResponses(400, 401) },
});

const CURSOR = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\|\d{1,19}$/;

/** The overall status rule (seed §2.7, now with `critical` actually reachable). */
export function overallStatus(services: Pick<ServiceProbe, 'status'>[], alerts: ActiveAlertLike[]): OverallStatus {
  const down = services.filter((s) => s.status === 'unhealthy' || s.status === 'unreachable').length;
  if (alerts.some((a) => a.severity === 'critical') || down > services.length / 2) return 'critical';
  if (services.some((s) => s.status !== 'healthy') || alerts.length > 0) return 'degraded';
  return 'healthy';
}

/** Builds the health routes; no I/O until a request arrives. */
export function healthRoutes(deps: HealthRoutesDeps) {
  const now = deps.now ?? Date.now;
  const app = new OpenAPIHono<AppEnv>();

  const view = (probes: ServiceProbe[]) => {
    const uptimes = deps.prober.uptimes();
    return probes.map((p) => serviceHealthView(p, uptimes.get(p.service)));
  };

  app.openapi(overall, async (c) => {
    const latest = deps.prober.latest();
    const host = deps.host();
    const alerts = await deps.activeAlerts();
    const times = [...latest.map((p) => Date.parse(p.checkedAt)), ...(host ? [Date.parse(host.sampledAt)] : [])];
    return c.json(
      {
        overall_status: overallStatus(latest, alerts),
        services: view(latest),
        system_metrics: host ? systemMetricsView(host) : null,
        active_alerts: alerts.map(operatorAlertView),
        last_updated: new Date(times.length > 0 ? Math.max(...times) : now()).toISOString(),
      },
      200,
    );
  });

  app.openapi(services, async (c) => c.json(view(await deps.prober.probeAll()), 200));

  app.openapi(history, async (c) => {
    const { limit, cursor, service, from, to } = c.req.valid('query');
    const fromDate = from === undefined ? undefined : new Date(from);
    const toDate = to === undefined ? undefined : new Date(to);
    if (fromDate && toDate && fromDate.getTime() > toDate.getTime()) {
      throw new HttpProblem(400, 'invalid_range', '`from` must not be later than `to`.', {
        errors: [{ path: 'query.from', message: 'must not be later than to' }],
      });
    }
    const after = decodeCursor(cursor, (p) => CURSOR.test(p) && !Number.isNaN(Date.parse(p.split('|')[0]!)));
    let position: SQL | undefined;
    if (after) {
      const [at, id] = after.split('|') as [string, string];
      const date = new Date(at);
      position = or(lt(probes.checkedAt, date), and(eq(probes.checkedAt, date), lt(probes.id, Number(id))));
    }
    const rows = await deps.db
      .select()
      .from(probes)
      .where(
        and(
          service ? eq(probes.service, service) : undefined,
          fromDate ? gte(probes.checkedAt, fromDate) : undefined,
          toDate ? lte(probes.checkedAt, toDate) : undefined,
          position,
        ),
      )
      .orderBy(desc(probes.checkedAt), desc(probes.id))
      .limit(limit + 1);
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return c.json(
      {
        items: page.map((r) => ({
          service: r.service,
          status: r.status as ProbeStatus,
          latencyMs: r.latencyMs,
          httpStatus: r.httpStatus,
          failedCheck: r.failedCheck,
          checkedAt: r.checkedAt.toISOString(),
        })),
        nextCursor: rows.length > limit && last ? encodeCursor(`${last.checkedAt.toISOString()}|${last.id}`) : null,
      },
      200,
    );
  });

  return app;
}

/**
 * Registers the platform gauges on monitoring's metrics (pass the same `Metrics` to the app kit):
 * `service_up{service}` (1 healthy or degraded, else 0) and `service_probe_latency_ms{service}` from the
 * latest probes, and `alerts_active`. An alert store that fails at scrape time leaves `alerts_active`
 * out of that scrape instead of failing the whole exposition.
 */
export function registerHealthGauges(
  metrics: Metrics,
  deps: { prober: Pick<ServiceProber, 'latest'>; activeAlerts: () => Promise<ActiveAlertLike[]>; logger: Logger },
): void {
  metrics.registerGauge('service_up', 'Whether the latest readiness probe found the service up (healthy or degraded).', () =>
    deps.prober.latest().map((p) => ({ labels: { service: p.service }, value: UP_STATUSES.includes(p.status) ? 1 : 0 })),
  );
  metrics.registerGauge('service_probe_latency_ms', 'Time the latest readiness probe took to answer, in milliseconds.', () =>
    deps.prober.latest().flatMap((p) => (p.latencyMs === null ? [] : [{ labels: { service: p.service }, value: p.latencyMs }])),
  );
  metrics.registerGauge('alerts_active', 'Alerts currently active.', async () => {
    try {
      return [{ value: (await deps.activeAlerts()).length }];
    } catch (err) {
      deps.logger.error('alerts_active gauge failed', { error: err instanceof Error ? err.message : String(err) });
      return [];
    }
  });
}
