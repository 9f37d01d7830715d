/**
 * Deep health of the platform's own services: every service's `GET /ready` is probed at once, each
 * under its own timeout, so a service that accepts connections and never answers costs a round that
 * timeout and nothing more. Each round stores one row per service, prunes rows past retention, keeps
 * the latest probe and the failure streak of each service in memory (what `/health/overall` and the
 * alert engine read), and refreshes the cached 24 h / 7 d uptimes.
 * A loop with an injectable clock and a stop that waits for the round in flight (DESIGN §4.8).
 */
import { probes } from '@db/schema/monitor.ts';
import type { Db } from '@shared/db.ts';
import type { Logger } from '@shared/log.ts';
import { createProbeLoop, type ProbeScheduleOptions } from '@shared/probe-loop.ts';
import { errorText, type LoopControl } from '@shared/worker-loop.ts';
import { and, desc, eq, gte, inArray, lt, max, sql } from 'drizzle-orm';
import type { ProbeStatus, ServiceProbe } from './domain.ts';

/** A platform service to probe: its name and base URL (`/ready` is appended). */
export interface ProbeTarget {
  service: string;
  url: string;
}

export interface ServiceUptime {
  /** Percentage (0–100) of the last 24 h's probes that found the service up; null without probes. */
  uptime24h: number | null;
  /** The same over 7 days (bounded by the probes' retention). */
  uptime7d: number | null;
}

/** Scheduling (`intervalMs`, `jitter`, `initialDelayMs`, `random`): see `ProbeScheduleOptions`. */
export interface ServiceProberDeps extends ProbeScheduleOptions {
  db: Db;
  logger: Logger;
  /** The services to probe (the other six platform services). */
  targets: ProbeTarget[];
  /** Per-probe budget: connect, headers and body together. */
  timeoutMs: number;
  /** Probe rows older than this are deleted each round. */
  retentionMs: number;
  /** A ready answer slower than this is `degraded`; default 1000 ms. */
  degradedLatencyMs?: number;
  now?: () => number;
  fetch?: typeof fetch;
  /** Called with every round's probes once they are stored (the alert engine evaluates here). Errors are logged, not raised. */
  onRound?: (probes: ServiceProbe[]) => void | Promise<void>;
}

/** Once started: a first round soon after start, then every `intervalMs` ± jitter; a failed round is logged, not fatal. */
export interface ServiceProber extends LoopControl {
  /** Probes every target now, stores the results and returns them (in target order). */
  probeAll(): Promise<ServiceProbe[]>;
  /** The latest probe of each target that has one, in target order; no I/O. */
  latest(): ServiceProbe[];
  /** The uptimes cached after the last round (or `load()`), by service; no I/O. */
  uptimes(): ReadonlyMap<string, ServiceUptime>;
  /** Warms `latest()`, the failure streaks and the uptimes from stored rows (call once at start). */
  load(): Promise<void>;
  /** Percentage (0–100) of the service's stored probes checked at or after `sinceMs` (epoch ms) that found it up; null without probes. */
  uptime(service: string, sinceMs: number): Promise<number | null>;
}

/** Statuses that count as up for uptime and end a failure streak: a slow answer is still an answer. */
export const UP_STATUSES: readonly ProbeStatus[] = ['healthy', 'degraded'];
const FAILING_STATUSES: readonly ProbeStatus[] = ['unhealthy', 'unreachable'];
const DAY_MS = 86_400_000;
/** Readiness answers are small; reading stops here so a misbehaving service cannot feed us megabytes. */
const MAX_BODY_BYTES = 64 * 1024;
const MAX_FAILED_CHECK_LENGTH = 200;

interface Outcome {
  status: ProbeStatus;
  latencyMs: number | null;
  httpStatus: number | null;
  failedCheck: string | null;
}

/** Builds the prober; nothing runs until `start()`, `probeAll()` or `load()`. */
export function createServiceProber(deps: ServiceProberDeps): ServiceProber {
  const now = deps.now ?? Date.now;
  const doFetch = deps.fetch ?? fetch;
  const degradedLatencyMs = deps.degradedLatencyMs ?? 1000;
  const targetNames = deps.targets.map((t) => t.service);
  const current = new Map<string, ServiceProbe>();
  const streaks = new Map<string, number>();
  let cachedUptimes = new Map<string, ServiceUptime>();

  async function probe(target: ProbeTarget): Promise<Outcome> {
    const url = `${target.url.replace(/\/+$/, '')}/ready`;
    // One signal for the request and the body: a service that sends headers and then stalls
    // still ends within the same budget.
    const signal = AbortSignal.timeout(deps.timeoutMs);
    const started = performance.now();
    try {
      const response = await doFetch(url, { signal, redirect: 'manual', headers: { accept: 'application/json' } });
      const body = await readCapped(response);
      const latencyMs = Math.round((performance.now() - started) * 100) / 100;
      if (response.status === 200) {
        if (latencyMs > degradedLatencyMs) return { status: 'degraded', latencyMs, httpStatus: 200, failedCheck: `slow: answered in ${Math.round(latencyMs)} ms` };
        return { status: 'healthy', latencyMs, httpStatus: 200, failedCheck: null };
      }
      const failed = response.status === 503 ? failedChecks(body) : null;
      return { status: 'unhealthy', latencyMs, httpStatus: response.status, failedCheck: clip(failed ?? `HTTP ${response.status}`) };
    } catch (err) {
      const failedCheck = signal.aborted ? `no answer within ${deps.timeoutMs} ms` : transportError(err);
      return { status: 'unreachable', latencyMs: null, httpStatus: null, failedCheck: clip(failedCheck) };
    }
  }

  /** Applies a result to the in-memory state unless a newer probe of the service is already there. */
  function remember(target: ProbeTarget, result: Outcome, checkedAt: Date): ServiceProbe {
    const previous = current.get(target.service);
    const failing = FAILING_STATUSES.includes(result.status);
    const streak = failing ? (streaks.get(target.service) ?? 0) + 1 : 0;
    const view: ServiceProbe = { service: target.service, url: target.url, ...result, checkedAt: checkedAt.toISOString(), consecutiveFailures: streak };
    // A live probe and a round can overlap; the older answer must not overwrite a newer one.
    if (!previous || Date.parse(previous.checkedAt) <= checkedAt.getTime()) {
      current.set(target.service, view);
      streaks.set(target.service, streak);
    }
    return view;
  }

  async function probeAll(): Promise<ServiceProbe[]> {
    const started = performance.now();
    const results = await Promise.all(
      deps.targets.map(async (target) => {
        const result = await probe(target);
        return { target, result, checkedAt: new Date(now()) };
      }),
    );
    const round = results.map(({ target, result, checkedAt }) => remember(target, result, checkedAt));
    if (results.length > 0) {
      await deps.db.insert(probes).values(
        results.map(({ target, result, checkedAt }) => ({
          service: target.service,
          status: result.status,
          latencyMs: result.latencyMs,
          httpStatus: result.httpStatus,
          failedCheck: result.failedCheck,
          checkedAt,
        })),
      );
    }
    await deps.db.delete(probes).where(lt(probes.checkedAt, new Date(now() - deps.retentionMs)));
    await refreshUptimes();
    logRound(round, performance.now() - started);
    await notify(round);
    return round;
  }

  function logRound(round: ServiceProbe[], durationMs: number) {
    const byStatus: Record<string, number> = { healthy: 0, degraded: 0, unhealthy: 0, unreachable: 0 };
    for (const p of round) byStatus[p.status]! += 1;
    const fields = { ...byStatus, durationMs: Math.round(durationMs) };
    if (byStatus.unhealthy! + byStatus.unreachable! > 0) {
      deps.logger.warn('service probe round', { ...fields, failing: round.filter((p) => FAILING_STATUSES.includes(p.status)).map((p) => `${p.service}: ${p.failedCheck}`) });
    } else deps.logger.debug('service probe round', fields);
  }

  /** The hook must not fail a round: the rows are already stored. */
  async function notify(round: ServiceProbe[]) {
    try {
      await deps.onRound?.(round);
    } catch (err) {
      deps.logger.error('probe round hook failed', { error: errorText(err) });
    }
  }

  /** Uptime per service since `since`, for the configured targets, in one grouped query. */
  async function uptimeSince(since: Date, services: string[]): Promise<Map<string, number>> {
    if (services.length === 0) return new Map();
    const rows = await deps.db
      .select({
        service: probes.service,
        up: sql<number>`count(*) filter (where ${inArray(probes.status, [...UP_STATUSES])})`.mapWith(Number),
        total: sql<number>`count(*)`.mapWith(Number),
      })
      .from(probes)
      .where(and(inArray(probes.service, services), gte(probes.checkedAt, since)))
      .groupBy(probes.service);
    return new Map(rows.filter((r) => r.total > 0).map((r) => [r.service, percent(r.up, r.total)]));
  }

  async function refreshUptimes() {
    const at = now();
    const [day, week] = await Promise.all([uptimeSince(new Date(at - DAY_MS), targetNames), uptimeSince(new Date(at - 7 * DAY_MS), targetNames)]);
    cachedUptimes = new Map(targetNames.map((service) => [service, { uptime24h: day.get(service) ?? null, uptime7d: week.get(service) ?? null }]));
  }

  async function load(): Promise<void> {
    if (targetNames.length === 0) return;
    const latestRows = await deps.db
      .selectDistinctOn([probes.service])
      .from(probes)
      .where(inArray(probes.service, targetNames))
      .orderBy(probes.service, desc(probes.checkedAt), desc(probes.id));
    const lastUp = await deps.db
      .select({ service: probes.service, at: max(probes.checkedAt) })
      .from(probes)
      .where(and(inArray(probes.service, targetNames), inArray(probes.status, [...UP_STATUSES])))
      .groupBy(probes.service);
    const lastUpAt = new Map(lastUp.map((r) => [r.service, r.at]));
    const urls = new Map(deps.targets.map((t) => [t.service, t.url]));
    await Promise.all(
      latestRows.map(async (row) => {
        // The streak is every failing probe since the last one that found the service up.
        let streak = 0;
        if (FAILING_STATUSES.includes(row.status as ProbeStatus)) {
          const since = lastUpAt.get(row.service);
          const [counted] = await deps.db
            .select({ n: sql<number>`count(*)`.mapWith(Number) })
            .from(probes)
            .where(and(eq(probes.service, row.service), since ? gte(probes.checkedAt, since) : undefined, inArray(probes.status, [...FAILING_STATUSES])));
          streak = counted?.n ?? 0;
        }
        // Probes made meanwhile (a live call racing load()) are newer and stay.
        if (current.has(row.service)) return;
        streaks.set(row.service, streak);
        current.set(row.service, {
          service: row.service,
          url: urls.get(row.service)!,
          status: row.status as ProbeStatus,
          latencyMs: row.latencyMs,
          httpStatus: row.httpStatus,
          failedCheck: row.failedCheck,
          checkedAt: row.checkedAt.toISOString(),
          consecutiveFailures: streak,
        });
      }),
    );
    await refreshUptimes();
  }

  async function uptime(service: string, sinceMs: number): Promise<number | null> {
    return (await uptimeSince(new Date(sinceMs), [service])).get(service) ?? null;
  }

  const loop = createProbeLoop('service-probe', deps.logger, deps, probeAll);

  return {
    probeAll,
    latest: () => targetNames.flatMap((name) => current.get(name) ?? []),
    uptimes: () => cachedUptimes,
    load,
    uptime,
    start: () => loop.start(),
    stop: () => loop.stop(),
  };
}

/** The check names a kit `/ready` 503 names (`{failed: [...], checks: {...}}`), comma-joined; null for another body. */
function failedChecks(body: string): string | null {
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed !== 'object' || parsed === null) return null;
    const failed = (parsed as { failed?: unknown }).failed;
    if (!Array.isArray(failed)) return null;
    const names = failed.filter((f): f is string => typeof f === 'string' && f.length > 0);
    return names.length > 0 ? names.join(',') : null;
  } catch {
    return null;
  }
}

/** Reads at most MAX_BODY_BYTES of the body as text and drops the rest. */
async function readCapped(response: Response): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
    if (size >= MAX_BODY_BYTES) {
      await reader.cancel().catch(() => {});
      break;
    }
  }
  return new TextDecoder().decode(Buffer.concat(chunks)).slice(0, MAX_BODY_BYTES);
}

/** A short, credential-free description of why no answer came. */
function transportError(err: unknown): string {
  const code = (err as { code?: unknown })?.code;
  if (code === 'ConnectionRefused' || code === 'ECONNREFUSED') return 'connection refused';
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/\/\/[^@\s/]+@/g, '//***@');
}

function clip(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length <= MAX_FAILED_CHECK_LENGTH ? flat : `${flat.slice(0, MAX_FAILED_CHECK_LENGTH - 1)}…`;
}

function percent(part: number, whole: number): number {
  return Math.round((part / whole) * 10_000) / 100;
}
