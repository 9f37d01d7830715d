/**
 * The alert rules, as pure functions from what monitoring observed to verdicts: which subjects should
 * have an active alert (`firing`), which certainly should not (`clear`), and — by omission — which are
 * undecided (a streak or a sustained run that has not reached its threshold yet). Undecided subjects
 * keep whatever alert they have, so a monitoring restart that forgets its in-memory runs never
 * resolves an alert only to raise it again minutes later. Thresholds come from configuration.
 */
import { z } from '@hono/zod-openapi';
import type { HostSample, ProbeStatus, ServiceProbe, Severity } from './domain.ts';
import { formatBytes } from '@shared/format-bytes.ts';

export const ALERT_RULES = [
  'service_unhealthy',
  'high_cpu',
  'high_memory',
  'high_disk',
  'external_service_unavailable',
  'job_failure_rate',
  'queue_age',
] as const;
export type AlertRule = (typeof ALERT_RULES)[number];

/** Alert thresholds as environment variables, for a service's env schema (`serviceEnvSchema(8006).extend(alertEnv)`). */
export const alertEnv = {
  /** Probes in a row a platform service must fail before it is alerted on. */
  ALERT_SERVICE_FAILURES: z.coerce.number().int().min(1).max(1000).default(3),
  ALERT_CPU_PERCENT: z.coerce.number().min(0).max(100).default(80),
  ALERT_MEMORY_PERCENT: z.coerce.number().min(0).max(100).default(85),
  /** How long CPU or memory must stay above its threshold before an alert. */
  ALERT_SUSTAINED_MINUTES: z.coerce.number().min(0).max(1440).default(5),
  ALERT_DISK_PERCENT: z.coerce.number().min(0).max(100).default(90),
  /** failed / (completed + failed) of top-level jobs that ended in the window. */
  ALERT_JOB_FAILURE_RATE: z.coerce.number().min(0).max(1).default(0.5),
  /** Fewer ended jobs than this in the window say nothing about the failure rate. */
  ALERT_JOB_MIN_JOBS: z.coerce.number().int().min(1).max(100_000).default(5),
  ALERT_JOB_WINDOW_MINUTES: z.coerce.number().min(1).max(10_080).default(60),
  ALERT_QUEUE_AGE_MINUTES: z.coerce.number().min(1).max(10_080).default(60),
};

const AlertEnvSchema = z.object(alertEnv);
export type AlertEnv = z.infer<typeof AlertEnvSchema>;

export interface AlertThresholds {
  serviceFailures: number;
  cpuPercent: number;
  memoryPercent: number;
  sustainedMinutes: number;
  diskPercent: number;
  jobFailureRate: number;
  jobMinJobs: number;
  jobWindowMinutes: number;
  queueAgeMinutes: number;
}

/** The thresholds from a parsed environment (defaults when the variables are unset). */
export function alertThresholds(env: Partial<AlertEnv> = {}): AlertThresholds {
  const e = AlertEnvSchema.parse(env);
  return {
    serviceFailures: e.ALERT_SERVICE_FAILURES,
    cpuPercent: e.ALERT_CPU_PERCENT,
    memoryPercent: e.ALERT_MEMORY_PERCENT,
    sustainedMinutes: e.ALERT_SUSTAINED_MINUTES,
    diskPercent: e.ALERT_DISK_PERCENT,
    jobFailureRate: e.ALERT_JOB_FAILURE_RATE,
    jobMinJobs: e.ALERT_JOB_MIN_JOBS,
    jobWindowMinutes: e.ALERT_JOB_WINDOW_MINUTES,
    queueAgeMinutes: e.ALERT_QUEUE_AGE_MINUTES,
  };
}

/** An alert a rule wants active. */
export interface DesiredAlert {
  rule: AlertRule;
  subject: string;
  severity: Severity;
  title: string;
  message: string;
  value: number | null;
  threshold: number | null;
  details: Record<string, unknown>;
}

/** A subject whose condition has cleared, with the sentence the resolution announces. */
export interface ClearedSubject {
  subject: string;
  message: string;
}

/** One rule's verdict over the subjects it saw; subjects in neither list are left as they are. */
export interface RuleVerdict {
  rule: AlertRule;
  firing: DesiredAlert[];
  clear: ClearedSubject[];
}

const DOWN: ReadonlySet<ProbeStatus> = new Set(['unhealthy', 'unreachable']);
const pct = (value: number) => `${Math.round(value * 10) / 10}%`;

/**
 * `service_unhealthy`, one subject per platform service: firing when the latest probe is unhealthy or
 * unreachable after at least `serviceFailures` failed probes in a row; clear when it answers again
 * (healthy, or degraded — slow but up). Severity `high`, `critical` for all of them when more than
 * half of the probed services are firing at once (the platform itself is down).
 */
export function serviceVerdict(probes: ServiceProbe[], t: AlertThresholds): RuleVerdict {
  const down = probes.filter((p) => DOWN.has(p.status) && p.consecutiveFailures >= t.serviceFailures);
  const severity: Severity = down.length > probes.length / 2 ? 'critical' : 'high';
  return {
    rule: 'service_unhealthy',
    firing: down.map((p) => ({
      rule: 'service_unhealthy',
      subject: p.service,
      severity,
      title: `${p.service} is ${p.status}`,
      message:
        `${p.service} failed ${p.consecutiveFailures} health probes in a row (${p.status}` +
        `${p.failedCheck ? `: ${p.failedCheck}` : ''}${p.httpStatus !== null ? `, HTTP ${p.httpStatus}` : ''}).` +
        (severity === 'critical' ? ` ${down.length} of ${probes.length} platform services are down.` : ''),
      value: p.consecutiveFailures,
      threshold: t.serviceFailures,
      details: { url: p.url, status: p.status, failedCheck: p.failedCheck, httpStatus: p.httpStatus, checkedAt: p.checkedAt },
    })),
    clear: probes.filter((p) => !DOWN.has(p.status)).map((p) => ({ subject: p.service, message: `${p.service} is ${p.status} again.` })),
  };
}

/** When a metric went above its threshold and stayed there (sample times), or null while it is not above. */
export interface SustainedRun {
  since: string | null;
}

/** The in-memory state the host rules need between samples. */
export interface HostRuns {
  cpu: SustainedRun;
  memory: SustainedRun;
}

export const emptyHostRuns = (): HostRuns => ({ cpu: { since: null }, memory: { since: null } });

function advance(run: SustainedRun, value: number | null, threshold: number, at: string): SustainedRun {
  if (value === null) return run;
  if (value <= threshold) return { since: null };
  return { since: run.since ?? at };
}

function sustainedVerdict(
  rule: 'high_cpu' | 'high_memory',
  label: string,
  run: SustainedRun,
  value: number | null,
  threshold: number,
  sampledAt: string,
  t: AlertThresholds,
): RuleVerdict {
  const verdict: RuleVerdict = { rule, firing: [], clear: [] };
  // The first CPU reading has no delta to measure against: no opinion.
  if (value === null) return verdict;
  if (run.since === null) {
    verdict.clear.push({ subject: 'host', message: `${label} usage is back to ${pct(value)}.` });
    return verdict;
  }
  const aboveMs = Date.parse(sampledAt) - Date.parse(run.since);
  if (aboveMs >= t.sustainedMinutes * 60_000) {
    verdict.firing.push({
      rule,
      subject: 'host',
      severity: 'medium',
      title: `High ${label} usage on the host`,
      message: `${label} usage has been above ${threshold}% for ${Math.floor(aboveMs / 60_000)} minutes (now ${pct(value)}).`,
      value,
      threshold,
      details: { since: run.since, sampledAt },
    });
  }
  return verdict;
}

/**
 * `high_cpu` and `high_memory` (subject `host`, medium) once the value has stayed above its threshold
 * for `sustainedMinutes` of sample time, clear at the first sample at or below it; `high_disk` per
 * watched path (high) at once. Returns the runs to keep for the next sample.
 */
export function hostVerdicts(runs: HostRuns, sample: HostSample, t: AlertThresholds): { runs: HostRuns; verdicts: RuleVerdict[] } {
  const next: HostRuns = {
    cpu: advance(runs.cpu, sample.cpuPercent, t.cpuPercent, sample.sampledAt),
    memory: advance(runs.memory, sample.memory.percent, t.memoryPercent, sample.sampledAt),
  };
  const disk: RuleVerdict = { rule: 'high_disk', firing: [], clear: [] };
  for (const d of sample.disks) {
    if (d.percent > t.diskPercent) {
      disk.firing.push({
        rule: 'high_disk',
        subject: d.path,
        severity: 'high',
        title: `Disk ${d.path} is over ${t.diskPercent}% full`,
        message: `${d.path} is ${pct(d.percent)} full (${formatBytes(d.freeBytes)} free of ${formatBytes(d.totalBytes)}; threshold ${t.diskPercent}%).`,
        value: d.percent,
        threshold: t.diskPercent,
        details: { totalBytes: d.totalBytes, usedBytes: d.usedBytes, freeBytes: d.freeBytes, sampledAt: sample.sampledAt },
      });
    } else {
      disk.clear.push({ subject: d.path, message: `${d.path} is back to ${pct(d.percent)} full.` });
    }
  }
  return {
    runs: next,
    verdicts: [
      sustainedVerdict('high_cpu', 'CPU', next.cpu, sample.cpuPercent, t.cpuPercent, sample.sampledAt, t),
      sustainedVerdict('high_memory', 'Memory', next.memory, sample.memory.percent, t.memoryPercent, sample.sampledAt, t),
      disk,
    ],
  };
}

/** What `external_service_unavailable` reads from a `service.health_changed` event. */
export interface ExternalHealth {
  slug: string;
  name: string;
  current: string;
  error: string | null;
  checkedAt: string;
}

/**
 * `external_service_unavailable` for one external imputation server (subject: its slug, high): firing
 * when the registry reports it unhealthy or unreachable, clear when healthy or degraded; any other
 * status (`unknown`) says nothing.
 */
export function externalVerdict(h: ExternalHealth): RuleVerdict {
  const verdict: RuleVerdict = { rule: 'external_service_unavailable', firing: [], clear: [] };
  if (h.current === 'unhealthy' || h.current === 'unreachable') {
    verdict.firing.push({
      rule: 'external_service_unavailable',
      subject: h.slug,
      severity: 'high',
      title: `${h.name} is ${h.current}`,
      message: `The external imputation server ${h.name} (${h.slug}) is ${h.current}${h.error ? `: ${h.error}` : ''}. Jobs sent to it will wait or fail.`,
      value: null,
      threshold: null,
      details: { slug: h.slug, name: h.name, status: h.current, error: h.error, checkedAt: h.checkedAt },
    });
  } else if (h.current === 'healthy' || h.current === 'degraded') {
    verdict.clear.push({ subject: h.slug, message: `The external imputation server ${h.name} (${h.slug}) is ${h.current} again.` });
  }
  return verdict;
}

/**
 * `job_failure_rate` (subject `jobs`, high): firing when failed / (completed + failed) of the jobs that
 * ended in the window is above the threshold, over at least `jobMinJobs` jobs; clear when enough jobs
 * ended and the rate is at or below it. Fewer jobs say nothing either way: a quiet hour does not mean
 * whatever made jobs fail has been fixed.
 */
export function jobFailureVerdict(counts: { completed: number; failed: number }, t: AlertThresholds): RuleVerdict {
  const verdict: RuleVerdict = { rule: 'job_failure_rate', firing: [], clear: [] };
  const total = counts.completed + counts.failed;
  if (total < t.jobMinJobs) return verdict;
  const rate = counts.failed / total;
  const window = `${t.jobWindowMinutes} minutes`;
  if (rate > t.jobFailureRate) {
    verdict.firing.push({
      rule: 'job_failure_rate',
      subject: 'jobs',
      severity: 'high',
      title: `More than ${Math.round(t.jobFailureRate * 100)}% of jobs are failing`,
      message: `${counts.failed} of ${total} jobs that ended in the last ${window} failed (threshold ${Math.round(t.jobFailureRate * 100)}%).`,
      value: rate,
      threshold: t.jobFailureRate,
      details: { completed: counts.completed, failed: counts.failed, windowMinutes: t.jobWindowMinutes },
    });
  } else {
    verdict.clear.push({ subject: 'jobs', message: `${counts.failed} of ${total} jobs that ended in the last ${window} failed.` });
  }
  return verdict;
}

/** `queue_age` (subject `queue`, medium): the oldest queued job has waited longer than the threshold; clear when it has not or nothing is queued. */
export function queueAgeVerdict(oldestSeconds: number | null, t: AlertThresholds): RuleVerdict {
  const verdict: RuleVerdict = { rule: 'queue_age', firing: [], clear: [] };
  const thresholdSeconds = t.queueAgeMinutes * 60;
  if (oldestSeconds !== null && oldestSeconds > thresholdSeconds) {
    verdict.firing.push({
      rule: 'queue_age',
      subject: 'queue',
      severity: 'medium',
      title: `Jobs have waited over ${t.queueAgeMinutes} minutes in the queue`,
      message: `The oldest queued job has waited ${Math.floor(oldestSeconds / 60)} minutes (threshold ${t.queueAgeMinutes}).`,
      value: oldestSeconds,
      threshold: thresholdSeconds,
      details: {},
    });
  } else {
    verdict.clear.push({ subject: 'queue', message: oldestSeconds === null ? 'No job is waiting in the queue.' : `The oldest queued job has waited ${Math.floor(oldestSeconds / 60)} minutes.` });
  }
  return verdict;
}
