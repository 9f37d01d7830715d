/**
 * The registry's health prober: every active, non-retired service is probed in its own protocol
 * (Cloudgene or WES), all at once, each under its own timeout, so one hung server costs a round no
 * more than that timeout. Each outcome is stored in one transaction (current row, history row, and an
 * outbox event when the status changed); history is pruned to a retention window every round.
 * A loop with an injectable clock and a stop that waits for the round in flight (DESIGN §4.8).
 */
import { healthChecks, outbox, serviceHealth, services } from '@db/schema/registry.ts';
import type { Db } from '@shared/db.ts';
import { HttpProblem } from '@shared/errors.ts';
import type { Logger } from '@shared/log.ts';
import type { OutboundPolicy } from '@shared/outbound.ts';
import { outboxRow } from '@shared/outbox.ts';
import { HEALTH_STATUSES, type HealthStatus } from '@shared/schemas/registry.ts';
import { createProbeLoop, type ProbeScheduleOptions } from '@shared/probe-loop.ts';
import type { LoopControl } from '@shared/worker-loop.ts';
import { and, eq, isNull, lt } from 'drizzle-orm';
import type { HealthRow, ServiceRow } from './domain.ts';
import { probeCloudgene } from './probes/cloudgene-probe.ts';
import { outcome, type ProbeOptions, type ProbeOutcome } from './probes/probe-outcome.ts';
import { probeWes } from './probes/wes-probe.ts';
import { isUuid } from '@shared/ids.ts';

export interface StatusChange {
  serviceId: string;
  previous: HealthStatus;
  current: HealthStatus;
}

/** What one round did. */
export interface ProbeRound {
  startedAt: Date;
  durationMs: number;
  /** Services probed and stored. */
  probed: number;
  /** Services whose URL the outbound policy refuses: not probed, nothing stored. */
  skipped: number;
  /** Probes whose outcome could not be stored (logged). */
  failed: number;
  byStatus: Record<HealthStatus, number>;
  changed: StatusChange[];
}

/** The stored outcome of probing one service. */
export interface ProbeResult {
  service: ServiceRow;
  /** The service's current health row after this probe. */
  health: HealthRow;
  /** The status before this probe; null for a service's first probe. */
  previous: HealthStatus | null;
  /** True when there was a previous status and it differs. */
  changed: boolean;
}

/** Once started: a first round soon after start, then every `intervalMs` ± jitter; a failed round is logged, not fatal. */
export interface HealthProber extends LoopControl {
  probeAll(): Promise<ProbeRound>;
  /**
   * Probes one service now (also an inactive one, so an operator can check it before reactivating);
   * null when there is no such service or it is retired. Throws a 409 `HttpProblem` when the outbound
   * policy refuses the service's URL.
   */
  probeOne(serviceId: string): Promise<ProbeResult | null>;
}

/** Scheduling (`intervalMs`, `jitter`, `initialDelayMs`, `random`): see `ProbeScheduleOptions`. */
export interface HealthProberDeps extends ProbeScheduleOptions {
  db: Db;
  logger: Logger;
  policy: OutboundPolicy;
  /** Per-probe budget: connect, answer and body together. */
  timeoutMs: number;
  historyRetentionMs: number;
  /** The operator's own credential for a service, when one is configured. */
  operatorToken?: (service: ServiceRow) => string | undefined;
  /** Called once after a round (or a single probe) in which a service's visible status changed, e.g. to drop a cached catalogue. */
  onStatusChange?: () => Promise<void>;
  now?: () => number;
  fetch?: typeof fetch;
}

const FAILING: ReadonlySet<HealthStatus> = new Set(['unhealthy', 'unreachable']);

const hostOf = (url: string) => URL.parse(url)?.host ?? url;

type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

/** Builds the prober; nothing runs until `start()`, `probeAll()` or `probeOne()`. */
export function createHealthProber(deps: HealthProberDeps): HealthProber {
  const now = deps.now ?? Date.now;

  async function probe(service: ServiceRow): Promise<ProbeOutcome> {
    const opts: ProbeOptions = {
      signal: AbortSignal.timeout(deps.timeoutMs),
      fetch: deps.fetch,
      operatorToken: deps.operatorToken?.(service),
    };
    if (service.protocol === 'cloudgene') return probeCloudgene(service, opts);
    if (service.protocol === 'ga4gh-wes') return probeWes(service, opts);
    return outcome('unhealthy', { error: `unknown protocol ${service.protocol}` });
  }

  /** Stores one outcome: current row (under a row lock), history row, and the change event. */
  async function store(service: ServiceRow, result: ProbeOutcome, checkedAt: Date): Promise<ProbeResult> {
    return deps.db.transaction(async (tx) => {
      const current = await lockHealthRow(tx, service.id);
      const previous = current ? (current.status as HealthStatus) : null;
      await tx.insert(healthChecks).values({
        id: Bun.randomUUIDv7(),
        serviceId: service.id,
        checkedAt,
        status: result.status,
        latencyMs: result.latencyMs,
        httpStatus: result.httpStatus,
        error: result.error,
        queueSize: result.queueSize,
      });
      // A manual probe and a round can overlap; the older answer goes to history but must not
      // overwrite a newer current status.
      if (current && current.checkedAt.getTime() > checkedAt.getTime()) {
        return { service, health: current, previous, changed: false };
      }
      const changed = previous !== null && previous !== result.status;
      const row: HealthRow = {
        serviceId: service.id,
        status: result.status,
        statusSince: current && !changed ? current.statusSince : checkedAt,
        checkedAt,
        latencyMs: result.latencyMs,
        httpStatus: result.httpStatus,
        error: result.error,
        queueSize: result.queueSize,
        runningJobs: result.runningJobs,
        consecutiveFailures: FAILING.has(result.status) ? (current?.consecutiveFailures ?? 0) + 1 : 0,
      };
      const { serviceId: _key, ...fields } = row;
      await tx.update(serviceHealth).set(fields).where(eq(serviceHealth.serviceId, service.id));
      if (changed) {
        await tx.insert(outbox).values(
          outboxRow({
            type: 'service.health_changed',
            source: 'service-registry',
            userId: null,
            occurredAt: checkedAt,
            data: {
              serviceId: service.id,
              slug: service.slug,
              name: service.name,
              previous,
              current: result.status,
              error: result.error,
              checkedAt: checkedAt.toISOString(),
            },
          }),
        );
      }
      return { service, health: row, previous, changed };
    });
  }

  /**
   * The service's health row, locked for this transaction. A first probe inserts a placeholder row
   * (ON CONFLICT DO NOTHING waits for a concurrent first insert to commit) so the lock always holds.
   */
  async function lockHealthRow(tx: Tx, serviceId: string): Promise<HealthRow | null> {
    const select = () => tx.select().from(serviceHealth).where(eq(serviceHealth.serviceId, serviceId)).for('update');
    const [existing] = await select();
    if (existing) return existing;
    const placeholder = new Date(0);
    const inserted = await tx
      .insert(serviceHealth)
      .values({ serviceId, status: 'unreachable', statusSince: placeholder, checkedAt: placeholder })
      .onConflictDoNothing()
      .returning({ serviceId: serviceHealth.serviceId });
    if (inserted.length > 0) return null;
    const [raced] = await select();
    return raced ?? null;
  }

  async function probeAndStore(service: ServiceRow): Promise<ProbeResult> {
    const result = await probe(service);
    const stored = await store(service, result, new Date(now()));
    if (stored.changed) logChange(stored);
    return stored;
  }

  function logChange({ service, previous, health }: ProbeResult) {
    const fields = { serviceId: service.id, slug: service.slug, previous, current: health.status, error: health.error };
    if (health.status === 'healthy') deps.logger.info('service health changed', fields);
    else deps.logger.warn('service health changed', fields);
  }

  /** Cache invalidation must not fail a round: the rows are already stored. */
  async function notifyChange(): Promise<void> {
    try {
      await deps.onStatusChange?.();
    } catch (err) {
      deps.logger.error('health change hook failed', { err });
    }
  }

  async function probeAll(): Promise<ProbeRound> {
    const startedAt = new Date(now());
    const started = performance.now();
    const candidates = await deps.db
      .select()
      .from(services)
      .where(and(eq(services.isActive, true), isNull(services.retiredAt)));
    const allowed = candidates.filter((service) => deps.policy.allows(service.baseUrl));
    const settled = await Promise.allSettled(allowed.map(probeAndStore));

    const round: ProbeRound = {
      startedAt,
      durationMs: 0,
      probed: 0,
      skipped: candidates.length - allowed.length,
      failed: 0,
      byStatus: Object.fromEntries(HEALTH_STATUSES.map((s) => [s, 0])) as Record<HealthStatus, number>,
      changed: [],
    };
    let visibleChange = false;
    settled.forEach((settledResult, i) => {
      if (settledResult.status === 'rejected') {
        round.failed += 1;
        deps.logger.error('storing a probe outcome failed', { serviceId: allowed[i]!.id, err: settledResult.reason });
        return;
      }
      const { health, previous, changed, service } = settledResult.value;
      round.probed += 1;
      round.byStatus[health.status as HealthStatus] += 1;
      if (changed) round.changed.push({ serviceId: service.id, previous: previous!, current: health.status as HealthStatus });
      // A first status also changes what the catalogue shows (`unknown` → something).
      if (changed || previous === null) visibleChange = true;
    });

    await deps.db.delete(healthChecks).where(lt(healthChecks.checkedAt, new Date(now() - deps.historyRetentionMs)));
    if (visibleChange) await notifyChange();
    round.durationMs = Math.round(performance.now() - started);
    deps.logger.info('probe round', {
      probed: round.probed,
      skipped: round.skipped,
      failed: round.failed,
      ...round.byStatus,
      changed: round.changed.length,
      durationMs: round.durationMs,
    });
    return round;
  }

  async function probeOne(serviceId: string): Promise<ProbeResult | null> {
    if (!isUuid(serviceId)) return null;
    const [service] = await deps.db.select().from(services).where(eq(services.id, serviceId));
    if (!service || service.retiredAt) return null;
    if (!deps.policy.allows(service.baseUrl)) {
      throw new HttpProblem(409, 'external_calls_disabled', `Calls to ${hostOf(service.baseUrl)} are switched off on this installation (EXTERNAL_CALLS).`);
    }
    const stored = await probeAndStore(service);
    if (stored.changed || stored.previous === null) await notifyChange();
    return stored;
  }

  const loop = createProbeLoop('probe', deps.logger, deps, probeAll);

  return {
    probeAll,
    probeOne,
    start: () => loop.start(),
    stop: () => loop.stop(),
  };
}
