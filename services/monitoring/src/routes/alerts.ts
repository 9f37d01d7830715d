/**
 * The alert list (any signed-in user may read it) and its management by admins: acknowledge and
 * resolve. These are the original operators' endpoints (seed §2.7), so they keep its query
 * (`?is_active&severity&alert_type&skip&limit`), its bare-array answer and its snake_case Alert; the
 * platform's `{items, nextCursor}` paging is deliberately not used here (alerts are few — one active
 * per rule and subject — and the original's scripts page with `skip`), and a second, camelCase listing
 * of the same rows would only be a second contract to keep in step.
 */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { alerts } from '@db/schema/monitor.ts';
import type { AppEnv } from '@shared/app.ts';
import { requireRole } from '@shared/auth.ts';
import type { Db } from '@shared/db.ts';
import { jsonContent } from '@shared/openapi.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { and, desc, eq, type SQL } from 'drizzle-orm';
import { alertView, type AlertEngine, type AlertView } from '../alert-engine.ts';
import { ALERT_RULES, type AlertRule } from '../alert-rules.ts';
import { SEVERITIES } from '../domain.ts';

const security = [{ bearerAuth: [] }];
const IdParam = z.object({ id: z.uuid().openapi({ param: { name: 'id', in: 'path' } }) });

/** The original's name for the platform-service rule; every other rule keeps its own name. */
const alertTypeOf = (rule: AlertRule) => (rule === 'service_unhealthy' ? 'service_down' : rule);
export const ALERT_TYPES = ALERT_RULES.map(alertTypeOf) as [string, ...string[]];
const ruleOf = new Map(ALERT_RULES.map((rule) => [alertTypeOf(rule), rule]));

/** Rules about a service (the subject is its name) fill `service_name`; the others measure a metric. */
const SERVICE_RULES: ReadonlySet<AlertRule> = new Set(['service_unhealthy', 'external_service_unavailable']);
const METRIC_NAMES: Partial<Record<AlertRule, string>> = {
  high_cpu: 'cpu_usage_percent',
  high_memory: 'memory_usage_percent',
  high_disk: 'disk_usage_percent',
  job_failure_rate: 'job_failure_rate',
  queue_age: 'queue_age_seconds',
};

export const OperatorAlertSchema = z
  .object({
    id: z.uuid(),
    alert_type: z.enum(ALERT_TYPES).openapi({ description: 'The original four (`service_down`, `high_cpu`, `high_memory`, `high_disk`) and the platform’s additions.' }),
    severity: z.enum(SEVERITIES),
    title: z.string(),
    description: z.string(),
    service_name: z.string().nullable().openapi({ description: 'The platform service (`service_down`) or external server slug the alert is about; null for metric alerts.' }),
    metric_name: z.string().nullable().openapi({ example: 'cpu_usage_percent' }),
    metric_value: z.number().nullable().openapi({ description: 'The measured value when the alert was raised or last updated.' }),
    threshold_value: z.number().nullable(),
    is_active: z.boolean(),
    is_acknowledged: z.boolean(),
    acknowledged_by: z.string().nullable().openapi({ description: 'The acknowledging admin’s user id.' }),
    acknowledged_at: z.string().nullable(),
    resolved_at: z.string().nullable(),
    alert_metadata: z.record(z.string(), z.unknown()),
    triggered_at: z.string(),
    updated_at: z.string(),
    subject: z.string().openapi({ description: 'What the alert is about: a service, a disk path (`high_disk`), `host`, `jobs` or `queue`.' }),
    resolved_by: z.string().nullable().openapi({ description: '`auto` when the condition cleared, else the resolving admin’s id.' }),
  })
  .openapi('MonitoringAlert');

export type OperatorAlert = z.infer<typeof OperatorAlertSchema>;

/** An alert in the original operators' shape (also used for `active_alerts` in `/health/overall`). */
export function operatorAlertView(alert: AlertView): OperatorAlert {
  const aboutService = SERVICE_RULES.has(alert.rule);
  return {
    id: alert.id,
    alert_type: alertTypeOf(alert.rule),
    severity: alert.severity,
    title: alert.title,
    description: alert.message,
    service_name: aboutService ? alert.subject : null,
    metric_name: METRIC_NAMES[alert.rule] ?? null,
    metric_value: alert.value,
    threshold_value: alert.threshold,
    is_active: alert.state === 'active',
    is_acknowledged: alert.acknowledgedAt !== null,
    acknowledged_by: alert.acknowledgedBy,
    acknowledged_at: alert.acknowledgedAt,
    resolved_at: alert.resolvedAt,
    alert_metadata: alert.details,
    triggered_at: alert.raisedAt,
    updated_at: alert.updatedAt,
    subject: alert.subject,
    resolved_by: alert.resolvedBy,
  };
}

const ListQuerySchema = z.object({
  is_active: z
    .stringbool()
    .optional()
    .openapi({ type: 'boolean', description: '`true` for active alerts, `false` for resolved ones (also `1`/`0`, `yes`/`no`, `on`/`off`).' }),
  severity: z.enum(SEVERITIES).optional(),
  alert_type: z.enum(ALERT_TYPES).optional(),
  skip: z.coerce
    .number()
    .int()
    .min(0)
    .max(1_000_000_000)
    .default(0)
    // Spelled out: the generator otherwise documents a coerced number whose minimum is 0 as nullable.
    .openapi({ type: 'integer', minimum: 0, maximum: 1_000_000_000, default: 0, description: 'Alerts to skip, for paging.' }),
  limit: z.coerce.number().int().min(1).max(100).default(100),
});

const list = createRoute({
  method: 'get',
  path: '/alerts',
  tags: ['Alerts'],
  security,
  summary: 'Alerts, newest first, filtered by activity, severity and type',
  description: 'The original operators’ endpoint: a bare array, paged with `skip` and `limit` (at most 100).',
  request: { query: ListQuerySchema },
  responses: { 200: { description: 'The alerts.', ...jsonContent(z.array(OperatorAlertSchema)) }, ...problemResponses(400, 401) },
});

const AlertActionSchema = z
  .object({
    message: z.string().openapi({ example: 'Alert acknowledged' }),
    alert: OperatorAlertSchema,
  })
  .openapi('MonitoringAlertAction');

const acknowledge = createRoute({
  method: 'patch',
  path: '/alerts/{id}/acknowledge',
  tags: ['Alerts'],
  security,
  middleware: [requireRole('admin')] as const,
  summary: 'Acknowledge an active alert (admins); acknowledging twice keeps the first',
  description: 'The acknowledger is the signed-in admin; the original’s `?acknowledged_by=` is ignored.',
  request: { params: IdParam },
  responses: { 200: { description: 'The alert.', ...jsonContent(AlertActionSchema) }, ...problemResponses(400, 401, 403, 404, 409) },
});

const resolve = createRoute({
  method: 'patch',
  path: '/alerts/{id}/resolve',
  tags: ['Alerts'],
  security,
  middleware: [requireRole('admin')] as const,
  summary: 'Resolve an active alert (admins) and tell the other admins',
  description: 'If the condition still holds at the next evaluation, a new alert is raised: resolving does not silence a rule.',
  request: { params: IdParam },
  responses: { 200: { description: 'The resolved alert.', ...jsonContent(AlertActionSchema) }, ...problemResponses(400, 401, 403, 404, 409) },
});

export interface AlertRouteDeps {
  db: Db;
  engine: AlertEngine;
}

/** `GET /alerts`, `PATCH /alerts/{id}/acknowledge` and `/resolve`; authentication comes from the service app. */
export function alertRoutes(deps: AlertRouteDeps) {
  const app = new OpenAPIHono<AppEnv>();

  app.openapi(list, async (c) => {
    const { is_active, severity, alert_type, skip, limit } = c.req.valid('query');
    const where: SQL[] = [];
    if (is_active !== undefined) where.push(eq(alerts.state, is_active ? 'active' : 'resolved'));
    if (severity) where.push(eq(alerts.severity, severity));
    if (alert_type) where.push(eq(alerts.rule, ruleOf.get(alert_type)!));
    const rows = await deps.db
      .select()
      .from(alerts)
      .where(and(...where))
      // Ids break ties between alerts raised in the same millisecond, so skip-paging is stable.
      .orderBy(desc(alerts.raisedAt), desc(alerts.id))
      .offset(skip)
      .limit(limit);
    return c.json(rows.map((row) => operatorAlertView(alertView(row))), 200);
  });

  app.openapi(acknowledge, async (c) => {
    const { id } = c.req.valid('param');
    const alert = await deps.engine.acknowledge(id, c.get('identity').subject);
    return c.json({ message: 'Alert acknowledged', alert: operatorAlertView(alert) }, 200);
  });

  app.openapi(resolve, async (c) => {
    const { id } = c.req.valid('param');
    const alert = await deps.engine.resolve(id, c.get('identity').subject);
    return c.json({ message: 'Alert resolved', alert: operatorAlertView(alert) }, 200);
  });

  return app;
}
