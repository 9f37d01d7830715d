/**
 * The platform's health as operators read it (the original's paths and `/health/overall` shape):
 * the overall view from in-memory state, a live probe of every service, and the stored probe
 * history. Every route needs a signed-in caller; the kit's `/health` stays the public liveness check.
 * Also the platform gauges on monitoring's `/metrics`.
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
import { PROBE_STATUSES, type HostSample, type ProbeStatus, type ServiceProbe } from '../domain.ts';
import { UP_STATUSES, type ServiceProber } from '../service-prober.ts';

const security = [{ bearerAuth: [] }];
const tags = ['Health'];

/** What the overall view needs of an active alert; the whole alert is passed through. */
export interface ActiveAlertLike {
  severity: string;
}

export interface HealthRoutesDeps {
  db: Db;
  prober: Pick<ServiceProber, 'latest' | 'uptimes' | 'probeAll'>;
  /** The latest host sample, or null before the first. */
  host: () => HostSample | null;
  /** The alerts currently active. */
  activeAlerts: () => Promise<ActiveAlertLike[]>;
  now?: () => number;
}

export const ServiceProbeSchema = z
  .object({
    service: z.string().openapi({ example: 'user-service' }),
    url: z.string().openapi({ example: 'http://user-service:8001' }),
    status: z.enum(PROBE_STATUSES),
    latencyMs: z.number().nullable(),
    httpStatus: z.number().int().nullable(),
    failedCheck: z.string().nullable().openapi({ description: 'The readiness checks that failed (`database,kv`), or why there was no answer.' }),
    checkedAt: z.string(),
    consecutiveFailures: z.number().int().openapi({ description: 'Probes in a row that found the service unhealthy or unreachable.' }),
  })
  .openapi('ServiceProbe');

const ServiceHealthSchema = ServiceProbeSchema.extend({
  uptime24h: z.number().nullable().openapi({ description: 'Percentage of the last 24 h’s probes that found the service up (healthy or degraded); null without probes.' }),
  uptime7d: z.number().nullable().openapi({ description: 'The same over 7 days, within the probes’ retention.' }),
}).openapi('ServiceHealthSummary');

const SystemMetricsSchema = z
  .object({
    sampledAt: z.string(),
    cpuPercent: z.number().nullable(),
    cpuCount: z.number().int(),
    load: z.object({ one: z.number(), five: z.number(), fifteen: z.number() }),
    memory: z.object({ totalBytes: z.number(), availableBytes: z.number(), percent: z.number() }),
    disks: z.array(z.object({ path: z.string(), totalBytes: z.number(), usedBytes: z.number(), freeBytes: z.number(), percent: z.number() })),
    network: z.object({ rxBytesPerSec: z.number().nullable(), txBytesPerSec: z.number().nullable() }),
  })
  .openapi('SystemMetrics');

export const OVERALL_STATUSES = ['healthy', 'degraded', 'critical'] as const;
export type OverallStatus = (typeof OVERALL_STATUSES)[number];

const OverallHealthSchema = z
  .object({
    overall_status: z.enum(OVERALL_STATUSES),
    services: z.array(ServiceHealthSchema),
    system_metrics: SystemMetricsSchema.nullable(),
    active_alerts: z.array(z.looseObject({ severity: z.string() })),
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
    'Answered from the state the background probes keep; nothing is probed at request time. `critical` when an active ' +
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
  responses: { 200: { description: 'One probe per service.', ...jsonContent(z.array(ServiceProbeSchema)) }, ...problemResponses(401) },
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

  app.openapi(overall, async (c) => {
    const latest = deps.prober.latest();
    const uptimes = deps.prober.uptimes();
    const host = deps.host();
    const alerts = await deps.activeAlerts();
    const times = [...latest.map((p) => Date.parse(p.checkedAt)), ...(host ? [Date.parse(host.sampledAt)] : [])];
    return c.json(
      {
        overall_status: overallStatus(latest, alerts),
        services: latest.map((p) => ({ ...p, uptime24h: uptimes.get(p.service)?.uptime24h ?? null, uptime7d: uptimes.get(p.service)?.uptime7d ?? null })),
        system_metrics: host,
        active_alerts: alerts.map((a) => ({ ...a })),
        last_updated: new Date(times.length > 0 ? Math.max(...times) : now()).toISOString(),
      },
      200,
    );
  });

  app.openapi(services, async (c) => c.json(await deps.prober.probeAll(), 200));

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
