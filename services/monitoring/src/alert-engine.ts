/**
 * The alert engine: applies the rules' verdicts (alert-rules.ts) to monitor.alerts. Each raise writes
 * the alert and its `alert.raised` outbox row in one transaction, each resolution (automatic when the
 * condition clears, or an admin's) its `alert.resolved` row likewise, so notification hears of every
 * change exactly once and of nothing else. The partial unique index keeps one active alert per rule
 * and subject even across replicas; an evaluation that finds nothing changed writes no event.
 *
 * An admin's manual resolve is final for that alert only: if the condition still holds at the next
 * evaluation, a new alert is raised (and announced) — a resolve does not silence a rule.
 */
import { z } from '@hono/zod-openapi';
import { alerts, outbox, receivedEvents } from '@db/schema/monitor.ts';
import type { Db } from '@shared/db.ts';
import { HttpProblem } from '@shared/errors.ts';
import type { Logger } from '@shared/log.ts';
import { outboxRow } from '@shared/outbox.ts';
import { ServiceHealthChangedSchema, type EventEnvelope } from '@shared/schemas/events.ts';
import { and, count, desc, eq, gte, inArray, ne, sql } from 'drizzle-orm';
import {
  ALERT_RULES,
  emptyHostRuns,
  externalVerdict,
  hostVerdicts,
  jobFailureVerdict,
  queueAgeVerdict,
  serviceVerdict,
  type AlertThresholds,
  type DesiredAlert,
  type HostRuns,
  type RuleVerdict,
} from './alert-rules.ts';
import { SEVERITIES, type AlertRow, type HostSample, type ServiceProbe } from './domain.ts';

const SOURCE = 'monitoring';

export const AlertViewSchema = z
  .object({
    id: z.uuid(),
    rule: z.enum(ALERT_RULES),
    subject: z.string().openapi({ description: 'A platform service, a disk path, an external server slug, `host`, `jobs` or `queue`', example: 'job-processor' }),
    severity: z.enum(SEVERITIES),
    title: z.string(),
    message: z.string(),
    value: z.number().nullable().openapi({ description: 'The measured value when the alert was raised or last updated' }),
    threshold: z.number().nullable(),
    details: z.record(z.string(), z.unknown()),
    state: z.enum(['active', 'resolved']),
    raisedAt: z.string(),
    acknowledgedAt: z.string().nullable(),
    acknowledgedBy: z.uuid().nullable(),
    resolvedAt: z.string().nullable(),
    resolvedBy: z.string().nullable().openapi({ description: '`auto` when the condition cleared, else the admin’s id' }),
    updatedAt: z.string(),
  })
  .openapi('Alert');

export type AlertView = z.infer<typeof AlertViewSchema>;

export function alertView(row: AlertRow): AlertView {
  return {
    id: row.id,
    rule: row.rule as AlertView['rule'],
    subject: row.subject,
    severity: row.severity as AlertView['severity'],
    title: row.title,
    message: row.message,
    value: row.value,
    threshold: row.threshold,
    details: (row.details ?? {}) as Record<string, unknown>,
    state: row.state as AlertView['state'],
    raisedAt: row.raisedAt.toISOString(),
    acknowledgedAt: row.acknowledgedAt?.toISOString() ?? null,
    acknowledgedBy: row.acknowledgedBy,
    resolvedAt: row.resolvedAt?.toISOString() ?? null,
    resolvedBy: row.resolvedBy,
    updatedAt: row.updatedAt.toISOString(),
  };
}

/** Event types the engine evaluates; the intake stores only these. */
export const MONITORED_EVENT_TYPES: ReadonlySet<string> = new Set(['service.health_changed', 'job.completed', 'job.failed', 'job.cancelled']);

export interface AlertEngineDeps {
  db: Db;
  logger: Logger;
  thresholds: AlertThresholds;
  now?: () => Date;
  /** Called after an alert event was committed, e.g. to wake the outbox relay. */
  onChange?: () => void;
  /** Age of job-processor's oldest queued job (null when nothing waits); without it `queue_age` is not evaluated. */
  oldestQueuedAgeSeconds?: () => Promise<number | null>;
}

export interface AlertEngine {
  /** Evaluates `service_unhealthy` over one round of probes of every platform service. */
  onProbeRound(probes: ServiceProbe[]): Promise<void>;
  /** Evaluates `high_cpu`, `high_memory` (sustained runs kept in memory) and `high_disk`. */
  onHostSample(sample: HostSample): Promise<void>;
  /** Evaluates an event from another service (`service.health_changed`, job outcomes); others are ignored. */
  onEvent(event: EventEnvelope): Promise<void>;
  /** Evaluates `job_failure_rate` over the window and `queue_age`; run it periodically so the window slides. */
  evaluateJobs(): Promise<void>;
  /** Active alerts, newest first. */
  active(): Promise<AlertView[]>;
  /** Marks an active alert acknowledged (idempotent); 404 unknown, 409 resolved. */
  acknowledge(id: string, adminId: string): Promise<AlertView>;
  /** Resolves an active alert by an admin and announces it; 404 unknown, 409 already resolved. */
  resolve(id: string, adminId: string): Promise<AlertView>;
}

const notFound = () => new HttpProblem(404, 'alert_not_found', 'No such alert.');
const alreadyResolved = () => new HttpProblem(409, 'alert_resolved', 'This alert is already resolved.');

/** Builds the engine; no I/O until a method is called. Host runs live in memory (a restart re-measures them). */
export function createAlertEngine(deps: AlertEngineDeps): AlertEngine {
  const { db, logger, thresholds } = deps;
  const clock = deps.now ?? (() => new Date());
  let runs: HostRuns = emptyHostRuns();

  // Evaluations run one at a time, in arrival order: two probe rounds or samples never interleave.
  let tail: Promise<unknown> = Promise.resolve();
  function serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  }

  function eventData(row: AlertRow, message: string) {
    return {
      alertId: row.id,
      rule: row.rule,
      subject: row.subject,
      severity: row.severity,
      title: row.title,
      message,
      value: row.value,
      threshold: row.threshold,
    };
  }

  /** Inserts the alert and its event; false when an active one for the rule and subject already exists. */
  async function raise(want: DesiredAlert): Promise<boolean> {
    const now = clock();
    return db.transaction(async (tx) => {
      const [row] = await tx
        .insert(alerts)
        .values({ id: Bun.randomUUIDv7(), ...want, state: 'active', raisedAt: now, updatedAt: now })
        // The partial unique index: a concurrent evaluation (or replica) raised it first.
        .onConflictDoNothing()
        .returning();
      if (!row) return false;
      await tx.insert(outbox).values(outboxRow({ type: 'alert.raised', source: SOURCE, userId: null, occurredAt: now, data: eventData(row, row.message) }));
      return true;
    });
  }

  /** Keeps an active alert's reading current (severity, value, wording) without announcing it again. */
  async function refresh(row: AlertRow, want: DesiredAlert): Promise<void> {
    if (row.severity === want.severity && row.value === want.value && row.title === want.title && row.message === want.message) return;
    await db
      .update(alerts)
      .set({ severity: want.severity, value: want.value, title: want.title, message: want.message, details: want.details, updatedAt: clock() })
      .where(and(eq(alerts.id, row.id), eq(alerts.state, 'active')));
  }

  /** Resolves an active alert and announces it; null when it was no longer active. */
  async function settle(id: string, by: string, message: string): Promise<AlertRow | null> {
    const now = clock();
    return db.transaction(async (tx) => {
      const [row] = await tx
        .update(alerts)
        .set({ state: 'resolved', resolvedAt: now, resolvedBy: by, updatedAt: now })
        .where(and(eq(alerts.id, id), eq(alerts.state, 'active')))
        .returning();
      if (!row) return null;
      await tx.insert(outbox).values(outboxRow({ type: 'alert.resolved', source: SOURCE, userId: null, occurredAt: now, data: { ...eventData(row, message), resolvedBy: by } }));
      return row;
    });
  }

  async function apply(verdict: RuleVerdict): Promise<void> {
    const subjects = [...verdict.firing.map((f) => f.subject), ...verdict.clear.map((c) => c.subject)];
    if (subjects.length === 0) return;
    const current = await db
      .select()
      .from(alerts)
      .where(and(eq(alerts.rule, verdict.rule), eq(alerts.state, 'active'), inArray(alerts.subject, subjects)));
    const active = new Map(current.map((row) => [row.subject, row]));
    let changed = false;
    for (const want of verdict.firing) {
      const row = active.get(want.subject);
      if (row) await refresh(row, want);
      else if (await raise(want)) {
        changed = true;
        logger.warn('alert raised', { rule: want.rule, subject: want.subject, severity: want.severity });
      }
    }
    for (const cleared of verdict.clear) {
      const row = active.get(cleared.subject);
      if (row && (await settle(row.id, 'auto', cleared.message))) {
        changed = true;
        logger.info('alert resolved', { rule: row.rule, subject: row.subject, resolvedBy: 'auto' });
      }
    }
    if (changed) deps.onChange?.();
  }

  async function jobCounts(): Promise<{ completed: number; failed: number }> {
    const since = new Date(clock().getTime() - thresholds.jobWindowMinutes * 60_000);
    const rows = await db
      .select({ type: receivedEvents.type, n: count() })
      .from(receivedEvents)
      .where(and(inArray(receivedEvents.type, ['job.completed', 'job.failed']), gte(receivedEvents.receivedAt, since)))
      .groupBy(receivedEvents.type);
    const of = (type: string) => Number(rows.find((r) => r.type === type)?.n ?? 0);
    return { completed: of('job.completed'), failed: of('job.failed') };
  }

  async function evaluateJobsNow(): Promise<void> {
    await apply(jobFailureVerdict(await jobCounts(), thresholds));
    if (deps.oldestQueuedAgeSeconds) await apply(queueAgeVerdict(await deps.oldestQueuedAgeSeconds(), thresholds));
  }

  /** True when a later health change of the same server was already received (delivery is at least once, not in order). */
  async function superseded(event: EventEnvelope, slug: string): Promise<boolean> {
    const [newer] = await db
      .select({ id: receivedEvents.id })
      .from(receivedEvents)
      .where(
        and(
          eq(receivedEvents.type, 'service.health_changed'),
          ne(receivedEvents.id, event.id),
          sql`${receivedEvents.payload} -> 'data' ->> 'slug' = ${slug}`,
          sql`(${receivedEvents.payload} ->> 'occurredAt')::timestamptz > ${event.occurredAt}::timestamptz`,
        ),
      )
      .limit(1);
    return newer !== undefined;
  }

  async function onHealthChanged(event: EventEnvelope): Promise<void> {
    const parsed = ServiceHealthChangedSchema.safeParse(event.data);
    if (!parsed.success) {
      logger.warn('ignored a service.health_changed event with unexpected data', { eventId: event.id, source: event.source });
      return;
    }
    const health = parsed.data;
    if (await superseded(event, health.slug)) return;
    await apply(externalVerdict({ slug: health.slug, name: health.name, current: health.current, error: health.error, checkedAt: health.checkedAt }));
  }

  async function find(id: string): Promise<AlertRow> {
    const [row] = await db.select().from(alerts).where(eq(alerts.id, id));
    if (!row) throw notFound();
    return row;
  }

  return {
    onProbeRound: (probes) => serial(() => apply(serviceVerdict(probes, thresholds))),

    onHostSample: (sample) =>
      serial(async () => {
        const next = hostVerdicts(runs, sample, thresholds);
        runs = next.runs;
        for (const verdict of next.verdicts) await apply(verdict);
      }),

    onEvent: (event) =>
      serial(async () => {
        if (event.type === 'service.health_changed') await onHealthChanged(event);
        else if (event.type === 'job.completed' || event.type === 'job.failed') await evaluateJobsNow();
      }),

    evaluateJobs: () => serial(evaluateJobsNow),

    async active() {
      const rows = await db.select().from(alerts).where(eq(alerts.state, 'active')).orderBy(desc(alerts.raisedAt), desc(alerts.id));
      return rows.map(alertView);
    },

    async acknowledge(id, adminId) {
      const row = await find(id);
      if (row.state !== 'active') throw alreadyResolved();
      if (row.acknowledgedAt) return alertView(row);
      const now = clock();
      const [updated] = await db
        .update(alerts)
        .set({ acknowledgedAt: now, acknowledgedBy: adminId, updatedAt: now })
        .where(and(eq(alerts.id, id), eq(alerts.state, 'active')))
        .returning();
      if (!updated) throw alreadyResolved();
      return alertView(updated);
    },

    async resolve(id, adminId) {
      const row = await find(id);
      if (row.state !== 'active') throw alreadyResolved();
      const resolved = await settle(id, adminId, `Resolved by an administrator: ${row.title}.`);
      // Resolved automatically (or by another admin) between the read and the update.
      if (!resolved) throw alreadyResolved();
      logger.info('alert resolved', { rule: resolved.rule, subject: resolved.subject, resolvedBy: adminId });
      deps.onChange?.();
      return alertView(resolved);
    },
  };
}
