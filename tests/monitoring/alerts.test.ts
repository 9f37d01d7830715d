/**
 * monitoring's alerts on the real database with real token verification: rules raise one alert per
 * rule and subject with one `alert.raised` outbox row, resolve it by themselves when the condition
 * clears (one `alert.resolved`), admins acknowledge and resolve, `GET /alerts` answers the original
 * operators' query and shape, and the event intake feeds the external-server and job rules exactly
 * once per event.
 */
import { createServiceApp, type ServiceApp } from '@shared/app.ts';
import { createMemoryKv } from '@shared/kv-memory.ts';
import { createLogger } from '@shared/log.ts';
import { outboxRow } from '@shared/outbox.ts';
import type { EventEnvelope } from '@shared/schemas/events.ts';
import { alerts, outbox, receivedEvents } from '@db/schema/monitor.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { and, eq } from 'drizzle-orm';
import { createAlertEngine, type AlertEngine } from '../../services/monitoring/src/alert-engine.ts';
import { alertThresholds } from '../../services/monitoring/src/alert-rules.ts';
import type { HostSample, ProbeStatus, ServiceProbe } from '../../services/monitoring/src/domain.ts';
import { alertRoutes } from '../../services/monitoring/src/routes/alerts.ts';
import { internalEventRoutes } from '../../services/monitoring/src/routes/internal-events.ts';
import { json } from '../support/json.ts';
import { createTestDatabase, migrateAll, type TestDatabase } from '../support/test-database.ts';
import { serviceTokenFor, testAuthenticator, tokenFor } from '../support/test-identity.ts';

const MINUTE = 60_000;
const thresholds = alertThresholds({
  ALERT_SERVICE_FAILURES: 3,
  ALERT_CPU_PERCENT: 80,
  ALERT_MEMORY_PERCENT: 85,
  ALERT_SUSTAINED_MINUTES: 5,
  ALERT_DISK_PERCENT: 90,
  ALERT_JOB_FAILURE_RATE: 0.5,
  ALERT_JOB_MIN_JOBS: 5,
  ALERT_JOB_WINDOW_MINUTES: 60,
  ALERT_QUEUE_AGE_MINUTES: 60,
});

let testDb: TestDatabase;
let app: ServiceApp;
let engine: AlertEngine;
let nowMs = Date.parse('2030-03-01T12:00:00.000Z');
const clock = () => new Date(nowMs);
let wakes = 0;
let queueAge: number | null = null;
const adminId = crypto.randomUUID();
const researcherId = crypto.randomUUID();
let adminToken: string;
let researcherToken: string;
let viewerToken: string;
let registryToken: string;
let jobsToken: string;

const uniq = (prefix: string) => `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
const db = () => testDb.database.db;

beforeAll(async () => {
  testDb = await createTestDatabase();
  await migrateAll(testDb.database);
  await db().delete(alerts);
  await db().delete(outbox);
  await db().delete(receivedEvents);
  const kv = createMemoryKv();
  const logger = createLogger({ level: 'silent' });
  engine = createAlertEngine({
    db: db(),
    logger,
    thresholds,
    now: clock,
    onChange: () => wakes++,
    oldestQueuedAgeSeconds: async () => queueAge,
  });
  app = createServiceApp({ name: 'monitoring', version: '0.0.1', description: 'test', logger, auth: { authenticator: testAuthenticator(kv) } });
  app.route('/', alertRoutes({ db: db(), engine }));
  app.route('/', internalEventRoutes({ db: db(), engine, now: clock }));
  adminToken = await tokenFor(adminId, ['admin']);
  researcherToken = await tokenFor(researcherId, ['researcher']);
  viewerToken = await tokenFor(crypto.randomUUID(), ['viewer']);
  registryToken = await serviceTokenFor('service-registry');
  jobsToken = await serviceTokenFor('job-processor');
}, 60_000);

afterAll(async () => {
  await testDb.drop();
});

function probe(service: string, status: ProbeStatus, consecutiveFailures: number): ServiceProbe {
  return {
    service,
    url: `http://127.0.0.1:1/${service}`,
    status,
    latencyMs: status === 'unreachable' ? null : 3,
    httpStatus: status === 'unhealthy' ? 503 : status === 'unreachable' ? null : 200,
    failedCheck: status === 'unhealthy' ? 'database' : status === 'unreachable' ? 'connection refused' : null,
    checkedAt: clock().toISOString(),
    consecutiveFailures,
  };
}

function sample(at: number, values: { cpu?: number | null; memory?: number; disks?: { path: string; percent: number }[] }): HostSample {
  const total = 100 * 1024 ** 3;
  return {
    sampledAt: new Date(at).toISOString(),
    cpuPercent: values.cpu === undefined ? 10 : values.cpu,
    cpuCount: 2,
    load: { one: 0.1, five: 0.1, fifteen: 0.1 },
    memory: { totalBytes: 8 * 1024 ** 3, availableBytes: 4 * 1024 ** 3, percent: values.memory ?? 20 },
    disks: (values.disks ?? []).map((d) => ({
      path: d.path,
      totalBytes: total,
      usedBytes: (total * d.percent) / 100,
      freeBytes: total - (total * d.percent) / 100,
      percent: d.percent,
    })),
    network: { rxBytesPerSec: null, txBytesPerSec: null },
  };
}

async function alertsAbout(rule: string, subject: string) {
  return db()
    .select()
    .from(alerts)
    .where(and(eq(alerts.rule, rule), eq(alerts.subject, subject)))
    .orderBy(alerts.raisedAt);
}

/** The outbox events about `rule`+`subject`, oldest first. */
async function eventsAbout(rule: string, subject: string): Promise<EventEnvelope[]> {
  const rows = await db().select().from(outbox).orderBy(outbox.createdAt);
  return rows
    .map((r) => r.payload as EventEnvelope)
    .filter((e) => e.data.rule === rule && e.data.subject === subject)
    .sort((a, b) => a.occurredAt.localeCompare(b.occurredAt) || a.id.localeCompare(b.id));
}

function postEvent(event: unknown, token?: string) {
  return app.request('/internal/events', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(event),
  });
}

function patch(path: string, token: string) {
  return app.request(path, { method: 'PATCH', headers: { authorization: `Bearer ${token}` } });
}

function healthChanged(slug: string, current: string, occurredAt = clock()) {
  return outboxRow({
    type: 'service.health_changed',
    source: 'service-registry',
    occurredAt,
    data: {
      serviceId: crypto.randomUUID(),
      slug,
      name: `Server ${slug}`,
      previous: current === 'healthy' ? 'unreachable' : 'healthy',
      current,
      error: current === 'healthy' ? null : 'connect ECONNREFUSED',
      checkedAt: occurredAt.toISOString(),
    },
  }).payload;
}

function jobEvent(type: 'job.completed' | 'job.failed' | 'job.cancelled') {
  return outboxRow({
    type,
    source: 'job-processor',
    userId: crypto.randomUUID(),
    occurredAt: clock(),
    data: { jobId: crypto.randomUUID(), parentId: null, name: 'chr20', serviceId: crypto.randomUUID(), previous: 'running', state: type.slice(4), message: null, errorCode: null },
  }).payload;
}

describe('service_unhealthy', () => {
  it('raises one alert and one alert.raised event after N failed probes, however many rounds follow', async () => {
    const web = uniq('svc');
    const others = [probe(uniq('svc'), 'healthy', 0), probe(uniq('svc'), 'healthy', 0)];
    const wakesBefore = wakes;
    for (const failures of [1, 2]) await engine.onProbeRound([probe(web, 'unreachable', failures), ...others]);
    expect(await alertsAbout('service_unhealthy', web)).toHaveLength(0);

    for (let failures = 3; failures <= 3 + 5; failures++) {
      nowMs += 30_000;
      await engine.onProbeRound([probe(web, 'unreachable', failures), ...others]);
    }
    const rows = await alertsAbout('service_unhealthy', web);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ state: 'active', severity: 'high', threshold: 3, resolvedAt: null });
    const events = await eventsAbout('service_unhealthy', web);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: 'alert.raised', source: 'monitoring', userId: null });
    expect(events[0]!.data).toMatchObject({ alertId: rows[0]!.id, rule: 'service_unhealthy', subject: web, severity: 'high', threshold: 3 });
    expect(events[0]!.data.title).toBe(`${web} is unreachable`);
    expect(String(events[0]!.data.message)).toContain('connection refused');
    expect(wakes).toBe(wakesBefore + 1);
  });

  it('raises one alert and one event when two replicas evaluate the same round at once', async () => {
    const web = uniq('svc');
    const replica = createAlertEngine({ db: db(), logger: createLogger({ level: 'silent' }), thresholds, now: clock });
    const round = [probe(web, 'unhealthy', 3), probe(uniq('svc'), 'healthy', 0), probe(uniq('svc'), 'healthy', 0)];
    await Promise.all([engine.onProbeRound(round), replica.onProbeRound(round), engine.onProbeRound(round), replica.onProbeRound(round)]);
    expect((await alertsAbout('service_unhealthy', web)).map((r) => r.state)).toEqual(['active']);
    expect(await eventsAbout('service_unhealthy', web)).toHaveLength(1);
  });

  it('keeps the alert while a failing service has not yet reached N failures again (e.g. after a restart)', async () => {
    const web = uniq('svc');
    await engine.onProbeRound([probe(web, 'unhealthy', 3), probe(uniq('svc'), 'healthy', 0), probe(uniq('svc'), 'healthy', 0)]);
    await engine.onProbeRound([probe(web, 'unhealthy', 1), probe(uniq('svc'), 'healthy', 0), probe(uniq('svc'), 'healthy', 0)]);
    const rows = await alertsAbout('service_unhealthy', web);
    expect(rows.map((r) => r.state)).toEqual(['active']);
    expect(await eventsAbout('service_unhealthy', web)).toHaveLength(1);
  });

  it('resolves the alert by itself when the service answers again and announces it once', async () => {
    const web = uniq('svc');
    const others = [probe(uniq('svc'), 'healthy', 0), probe(uniq('svc'), 'healthy', 0)];
    await engine.onProbeRound([probe(web, 'unhealthy', 4), ...others]);
    nowMs += 30_000;
    const recoveredAt = clock();
    const wakesBefore = wakes;
    for (let i = 0; i < 3; i++) await engine.onProbeRound([probe(web, 'healthy', 0), ...others]);

    const rows = await alertsAbout('service_unhealthy', web);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ state: 'resolved', resolvedBy: 'auto' });
    expect(rows[0]!.resolvedAt?.toISOString()).toBe(recoveredAt.toISOString());
    const events = await eventsAbout('service_unhealthy', web);
    expect(events.map((e) => e.type)).toEqual(['alert.raised', 'alert.resolved']);
    expect(events[1]!.data).toMatchObject({ alertId: rows[0]!.id, resolvedBy: 'auto', title: `${web} is unhealthy` });
    expect(events[1]!.data.message).toBe(`${web} is healthy again.`);
    expect(wakes).toBe(wakesBefore + 1);
    expect((await engine.active()).some((a) => a.subject === web)).toBe(false);
  });

  it('treats a degraded service as up: no alert, and it clears an existing one', async () => {
    const web = uniq('svc');
    const others = [probe(uniq('svc'), 'healthy', 0), probe(uniq('svc'), 'healthy', 0)];
    await engine.onProbeRound([probe(web, 'unreachable', 5), ...others]);
    await engine.onProbeRound([probe(web, 'degraded', 6), ...others]);
    expect((await alertsAbout('service_unhealthy', web)).map((r) => r.state)).toEqual(['resolved']);
  });

  it('raises critical alerts when more than half of the services are down, and lowers them again', async () => {
    const [a, b, c] = [uniq('svc'), uniq('svc'), uniq('svc')];
    await engine.onProbeRound([probe(a, 'unreachable', 3), probe(b, 'unhealthy', 3), probe(c, 'healthy', 0)]);
    expect((await alertsAbout('service_unhealthy', a))[0]!.severity).toBe('critical');
    expect((await alertsAbout('service_unhealthy', b))[0]!.severity).toBe('critical');
    expect((await eventsAbout('service_unhealthy', a))[0]!.data.severity).toBe('critical');

    await engine.onProbeRound([probe(a, 'unreachable', 4), probe(b, 'healthy', 0), probe(c, 'healthy', 0)]);
    const [row] = await alertsAbout('service_unhealthy', a);
    expect(row).toMatchObject({ state: 'active', severity: 'high' });
    // The change of severity updates the alert in place; only raise and resolve are announced.
    expect((await eventsAbout('service_unhealthy', a)).map((e) => e.type)).toEqual(['alert.raised']);
  });
});

describe('high_cpu and high_memory', () => {
  it('raises nothing while CPU is above the threshold for less than the sustained time, then one alert', async () => {
    const start = nowMs;
    for (let minute = 0; minute < 5; minute++) await engine.onHostSample(sample(start + minute * MINUTE, { cpu: 95 }));
    expect(await alertsAbout('high_cpu', 'host')).toHaveLength(0);

    nowMs = start + 5 * MINUTE;
    await engine.onHostSample(sample(nowMs, { cpu: 93 }));
    await engine.onHostSample(sample(nowMs + MINUTE, { cpu: 97 }));
    const rows = await alertsAbout('high_cpu', 'host');
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ state: 'active', severity: 'medium', threshold: 80, value: 97 });
    const events = await eventsAbout('high_cpu', 'host');
    expect(events).toHaveLength(1);
    expect(events[0]!.data).toMatchObject({ rule: 'high_cpu', severity: 'medium', value: 93, threshold: 80 });
    nowMs += 2 * MINUTE;
  });

  it('resolves the CPU alert at the first sample below the threshold and needs a new sustained run to raise again', async () => {
    await engine.onHostSample(sample(nowMs, { cpu: 40 }));
    expect((await alertsAbout('high_cpu', 'host')).map((r) => r.state)).toEqual(['resolved']);
    for (let minute = 1; minute <= 4; minute++) await engine.onHostSample(sample(nowMs + minute * MINUTE, { cpu: 99 }));
    expect((await alertsAbout('high_cpu', 'host')).map((r) => r.state)).toEqual(['resolved']);
    expect((await eventsAbout('high_cpu', 'host')).map((e) => e.type)).toEqual(['alert.raised', 'alert.resolved']);
    // A first sample without a CPU reading says nothing about the run.
    await engine.onHostSample(sample(nowMs + 5 * MINUTE, { cpu: null }));
    await engine.onHostSample(sample(nowMs + 6 * MINUTE, { cpu: 10 }));
    nowMs += 7 * MINUTE;
    expect(await engine.active()).not.toContainEqual(expect.objectContaining({ rule: 'high_cpu' }));
  });

  it('raises high_memory after the sustained time above its threshold and resolves it when memory frees up', async () => {
    const start = nowMs;
    for (let minute = 0; minute <= 5; minute++) await engine.onHostSample(sample(start + minute * MINUTE, { memory: 90 }));
    expect((await alertsAbout('high_memory', 'host')).map((r) => r.state)).toEqual(['active']);
    await engine.onHostSample(sample(start + 6 * MINUTE, { memory: 85 }));
    expect((await alertsAbout('high_memory', 'host')).map((r) => r.state)).toEqual(['resolved']);
    expect((await eventsAbout('high_memory', 'host')).map((e) => e.type)).toEqual(['alert.raised', 'alert.resolved']);
    nowMs = start + 7 * MINUTE;
  });
});

describe('high_disk', () => {
  it('raises one alert per full path at once and resolves it when space is freed', async () => {
    const data = `/${uniq('data')}`;
    const storage = `/${uniq('storage')}`;
    await engine.onHostSample(sample(nowMs, { disks: [{ path: data, percent: 95.5 }, { path: storage, percent: 50 }] }));
    await engine.onHostSample(sample(nowMs + MINUTE, { disks: [{ path: data, percent: 96 }, { path: storage, percent: 50 }] }));
    const rows = await alertsAbout('high_disk', data);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ state: 'active', severity: 'high', value: 96, threshold: 90 });
    expect(rows[0]!.title).toBe(`Disk ${data} is over 90% full`);
    expect(rows[0]!.message).toContain(`${data} is 96% full`);
    expect(await alertsAbout('high_disk', storage)).toHaveLength(0);
    expect(await eventsAbout('high_disk', data)).toHaveLength(1);

    await engine.onHostSample(sample(nowMs + 2 * MINUTE, { disks: [{ path: data, percent: 70 }, { path: storage, percent: 50 }] }));
    expect((await alertsAbout('high_disk', data)).map((r) => r.state)).toEqual(['resolved']);
    expect((await eventsAbout('high_disk', data)).map((e) => e.type)).toEqual(['alert.raised', 'alert.resolved']);
    nowMs += 3 * MINUTE;
  });
});

describe('external_service_unavailable from service.health_changed events', () => {
  it('raises an alert when the registry reports a server unreachable and resolves it when it is healthy again', async () => {
    const slug = uniq('michigan');
    const down = healthChanged(slug, 'unreachable');
    const res = await postEvent(down, registryToken);
    expect(res.status).toBe(202);
    expect(await json(res)).toEqual({ id: down.id, duplicate: false, ignored: false });
    const [row] = await alertsAbout('external_service_unavailable', slug);
    expect(row).toMatchObject({ state: 'active', severity: 'high', title: `Server ${slug} is unreachable` });
    expect(row!.message).toContain('connect ECONNREFUSED');

    nowMs += MINUTE;
    const up = healthChanged(slug, 'healthy');
    expect((await postEvent(up, registryToken)).status).toBe(202);
    expect((await alertsAbout('external_service_unavailable', slug)).map((r) => [r.state, r.resolvedBy])).toEqual([['resolved', 'auto']]);
    expect((await eventsAbout('external_service_unavailable', slug)).map((e) => e.type)).toEqual(['alert.raised', 'alert.resolved']);
    const stored = await db().select().from(receivedEvents).where(eq(receivedEvents.id, up.id));
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({ type: 'service.health_changed', source: 'service-registry', payload: up });
  });

  it('does not evaluate a redelivered event again', async () => {
    const slug = uniq('h3africa');
    const down = healthChanged(slug, 'unhealthy');
    expect((await postEvent(down, registryToken)).status).toBe(202);
    const [first] = await alertsAbout('external_service_unavailable', slug);
    expect((await patch(`/alerts/${first!.id}/resolve`, adminToken)).status).toBe(200);

    // Evaluated again, the event would raise a new alert now that none is active.
    const again = await postEvent(down, registryToken);
    expect(again.status).toBe(202);
    expect(await json(again)).toEqual({ id: down.id, duplicate: true, ignored: false });
    expect((await alertsAbout('external_service_unavailable', slug)).map((r) => r.state)).toEqual(['resolved']);
    expect(await db().select().from(receivedEvents).where(eq(receivedEvents.id, down.id))).toHaveLength(1);
  });

  it('ignores a health change older than one already received (redelivered out of order)', async () => {
    const slug = uniq('ilifu');
    const stale = healthChanged(slug, 'unreachable', new Date(nowMs - 10 * MINUTE));
    const latest = healthChanged(slug, 'healthy', new Date(nowMs - MINUTE));
    expect((await postEvent(latest, registryToken)).status).toBe(202);
    expect((await postEvent(stale, registryToken)).status).toBe(202);
    expect(await alertsAbout('external_service_unavailable', slug)).toHaveLength(0);
  });

  it('acknowledges event types no rule reads without storing them', async () => {
    const event = outboxRow({ type: 'job.status_changed', source: 'job-processor', userId: crypto.randomUUID(), data: { jobId: crypto.randomUUID() } }).payload;
    const res = await postEvent(event, jobsToken);
    expect(res.status).toBe(202);
    expect(await json(res)).toEqual({ id: event.id, duplicate: false, ignored: true });
    expect(await db().select().from(receivedEvents).where(eq(receivedEvents.id, event.id))).toHaveLength(0);
  });
});

describe('job_failure_rate and queue_age', () => {
  it('raises when more than the threshold of at least the minimum number of jobs failed in the window', async () => {
    for (const type of ['job.completed', 'job.failed', 'job.failed', 'job.failed', 'job.cancelled'] as const) {
      expect((await postEvent(jobEvent(type), jobsToken)).status).toBe(202);
    }
    // Four ended jobs (a cancellation is neither): too few to judge.
    expect(await alertsAbout('job_failure_rate', 'jobs')).toHaveLength(0);

    expect((await postEvent(jobEvent('job.failed'), jobsToken)).status).toBe(202);
    const [row] = await alertsAbout('job_failure_rate', 'jobs');
    expect(row).toMatchObject({ state: 'active', severity: 'high', value: 0.8, threshold: 0.5 });
    expect(row!.message).toBe('4 of 5 jobs that ended in the last 60 minutes failed (threshold 50%).');
    expect(await eventsAbout('job_failure_rate', 'jobs')).toHaveLength(1);
  });

  it('keeps the alert through a quiet window and resolves it once enough jobs succeed in a later one', async () => {
    nowMs += 61 * MINUTE;
    await engine.evaluateJobs();
    expect((await alertsAbout('job_failure_rate', 'jobs')).map((r) => r.state)).toEqual(['active']);

    for (let i = 0; i < 5; i++) await postEvent(jobEvent('job.completed'), jobsToken);
    const rows = await alertsAbout('job_failure_rate', 'jobs');
    expect(rows.map((r) => [r.state, r.resolvedBy])).toEqual([['resolved', 'auto']]);
    expect((await eventsAbout('job_failure_rate', 'jobs')).map((e) => e.type)).toEqual(['alert.raised', 'alert.resolved']);
  });

  it('raises queue_age when the oldest queued job waited too long and resolves it when the queue drains', async () => {
    queueAge = 59 * 60;
    await engine.evaluateJobs();
    expect(await alertsAbout('queue_age', 'queue')).toHaveLength(0);
    queueAge = 75 * 60;
    await engine.evaluateJobs();
    await engine.evaluateJobs();
    expect(await alertsAbout('queue_age', 'queue')).toEqual([expect.objectContaining({ state: 'active', severity: 'medium', value: 4500, threshold: 3600 })]);
    queueAge = null;
    await engine.evaluateJobs();
    expect((await alertsAbout('queue_age', 'queue')).map((r) => r.state)).toEqual(['resolved']);
    expect((await eventsAbout('queue_age', 'queue')).map((e) => e.type)).toEqual(['alert.raised', 'alert.resolved']);
  });

  it('skips queue_age without a queue-age source', async () => {
    queueAge = 10 * 3600;
    const withoutQueue = createAlertEngine({ db: db(), logger: createLogger({ level: 'silent' }), thresholds, now: clock });
    await withoutQueue.evaluateJobs();
    expect((await alertsAbout('queue_age', 'queue')).map((r) => r.state)).toEqual(['resolved']);
    queueAge = null;
  });
});

describe('PATCH /alerts/{id}/acknowledge and /alerts/{id}/resolve', () => {
  async function raiseServiceAlert(service: string) {
    await engine.onProbeRound([probe(service, 'unreachable', 3), probe(uniq('svc'), 'healthy', 0), probe(uniq('svc'), 'healthy', 0)]);
    const rows = await alertsAbout('service_unhealthy', service);
    return rows.find((r) => r.state === 'active')!;
  }

  it('lets an admin acknowledge an active alert; acknowledging again keeps the first', async () => {
    const row = await raiseServiceAlert(uniq('svc'));
    const res = await patch(`/alerts/${row.id}/acknowledge`, adminToken);
    expect(res.status).toBe(200);
    const body = await json(res);
    // The original `{message}`, with the alert in the original shape.
    expect(body.message).toBe('Alert acknowledged');
    expect(body.alert).toMatchObject({
      id: row.id,
      alert_type: 'service_down',
      service_name: row.subject,
      is_active: true,
      is_acknowledged: true,
      acknowledged_by: adminId,
      acknowledged_at: clock().toISOString(),
    });
    const [stored] = await db().select().from(alerts).where(eq(alerts.id, row.id));
    expect(stored).toMatchObject({ state: 'active', acknowledgedBy: adminId });
    expect(stored!.acknowledgedAt?.toISOString()).toBe(clock().toISOString());
    nowMs += MINUTE;
    const again = await json(await patch(`/alerts/${row.id}/acknowledge`, await tokenFor(crypto.randomUUID(), ['admin'])));
    expect(again.alert).toMatchObject({ acknowledged_by: adminId, acknowledged_at: body.alert.acknowledged_at });
    // Acknowledging announces nothing.
    expect((await eventsAbout('service_unhealthy', row.subject)).map((e) => e.type)).toEqual(['alert.raised']);
  });

  it('refuses a researcher with 403 and a viewer with 403, changing nothing', async () => {
    const row = await raiseServiceAlert(uniq('svc'));
    for (const token of [researcherToken, viewerToken]) {
      for (const action of ['acknowledge', 'resolve']) {
        const res = await patch(`/alerts/${row.id}/${action}`, token);
        expect(res.status).toBe(403);
        expect(res.headers.get('content-type')).toContain('application/problem+json');
      }
    }
    const [after] = await db().select().from(alerts).where(eq(alerts.id, row.id));
    expect(after).toMatchObject({ state: 'active', acknowledgedAt: null });
  });

  it('answers 404 for an unknown alert and 400 for a malformed id', async () => {
    const res = await patch(`/alerts/${crypto.randomUUID()}/resolve`, adminToken);
    expect(res.status).toBe(404);
    expect((await json(res)).code).toBe('alert_not_found');
    expect((await patch(`/alerts/${crypto.randomUUID()}/acknowledge`, adminToken)).status).toBe(404);
    expect((await patch('/alerts/not-an-id/resolve', adminToken)).status).toBe(400);
  });

  it('resolves an alert for an admin, announces it once, and answers 409 when it is resolved again', async () => {
    const service = uniq('svc');
    const row = await raiseServiceAlert(service);
    nowMs += MINUTE;
    const wakesBefore = wakes;
    const res = await patch(`/alerts/${row.id}/resolve`, adminToken);
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.message).toBe('Alert resolved');
    expect(body.alert).toMatchObject({ id: row.id, is_active: false, resolved_by: adminId, resolved_at: clock().toISOString() });
    const [stored] = await db().select().from(alerts).where(eq(alerts.id, row.id));
    expect(stored).toMatchObject({ state: 'resolved', resolvedBy: adminId });
    expect(wakes).toBe(wakesBefore + 1);

    const twice = await patch(`/alerts/${row.id}/resolve`, adminToken);
    expect(twice.status).toBe(409);
    expect((await json(twice)).code).toBe('alert_resolved');
    expect((await patch(`/alerts/${row.id}/acknowledge`, adminToken)).status).toBe(409);
    const events = await eventsAbout('service_unhealthy', service);
    expect(events.map((e) => e.type)).toEqual(['alert.raised', 'alert.resolved']);
    expect(events[1]!.data).toMatchObject({ alertId: row.id, resolvedBy: adminId });
  });

  it('raises a new alert at the next evaluation when the condition still holds after a manual resolve', async () => {
    // Resolving closes that alert, it does not silence the rule: a still-dead service is reported again.
    const service = uniq('svc');
    const first = await raiseServiceAlert(service);
    expect((await patch(`/alerts/${first.id}/resolve`, adminToken)).status).toBe(200);
    nowMs += 30_000;
    const second = await raiseServiceAlert(service);
    expect(second.id).not.toBe(first.id);
    const rows = await alertsAbout('service_unhealthy', service);
    expect(rows.map((r) => [r.id, r.state])).toEqual([
      [first.id, 'resolved'],
      [second.id, 'active'],
    ]);
    expect((await eventsAbout('service_unhealthy', service)).map((e) => e.type)).toEqual(['alert.raised', 'alert.resolved', 'alert.raised']);
  });
});

describe('GET /alerts', () => {
  const ids: string[] = [];
  const base = Date.parse('2031-01-01T00:00:00.000Z');
  const acknowledger = crypto.randomUUID();

  beforeAll(async () => {
    await db().delete(alerts);
    const specs = [
      { rule: 'high_disk', subject: '/var/lib/fip', severity: 'high', state: 'active' },
      { rule: 'high_cpu', subject: 'host', severity: 'medium', state: 'resolved' },
      { rule: 'service_unhealthy', subject: 'job-processor', severity: 'critical', state: 'active' },
      { rule: 'high_disk', subject: '/srv/storage', severity: 'high', state: 'resolved' },
      { rule: 'queue_age', subject: 'queue', severity: 'medium', state: 'active' },
      { rule: 'external_service_unavailable', subject: 'h3africa', severity: 'high', state: 'active' },
    ];
    for (const [i, spec] of specs.entries()) {
      const at = new Date(base + i * MINUTE);
      const id = Bun.randomUUIDv7();
      ids.push(id);
      await db()
        .insert(alerts)
        .values({
          id,
          ...spec,
          title: `alert ${i}`,
          message: `message ${i}`,
          value: i,
          threshold: 1,
          details: { sampledAt: at.toISOString() },
          raisedAt: at,
          updatedAt: at,
          acknowledgedAt: i === 0 ? at : null,
          acknowledgedBy: i === 0 ? acknowledger : null,
          resolvedAt: spec.state === 'resolved' ? at : null,
          resolvedBy: spec.state === 'resolved' ? 'auto' : null,
        });
    }
  });

  const get = async (query: string, token = researcherToken) => app.request(`/alerts${query}`, { headers: { authorization: `Bearer ${token}` } });
  const idsOf = async (query: string) => {
    const res = await get(query);
    expect(res.status, query).toBe(200);
    return ((await json(res)) as { id: string }[]).map((a) => a.id);
  };

  it('answers a bare array of every alert, newest first, for a signed-in researcher', async () => {
    const res = await get('');
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(Array.isArray(body)).toBe(true);
    expect(body.map((a: { id: string }) => a.id)).toEqual([...ids].reverse());
  });

  it('returns alerts in the original operators’ shape', async () => {
    const body = await json(await get('?alert_type=high_disk&is_active=true'));
    expect(body).toEqual([
      {
        id: ids[0]!,
        alert_type: 'high_disk',
        severity: 'high',
        title: 'alert 0',
        description: 'message 0',
        service_name: null,
        metric_name: 'disk_usage_percent',
        metric_value: 0,
        threshold_value: 1,
        is_active: true,
        is_acknowledged: true,
        acknowledged_by: acknowledger,
        acknowledged_at: '2031-01-01T00:00:00.000Z',
        resolved_at: null,
        alert_metadata: { sampledAt: '2031-01-01T00:00:00.000Z' },
        triggered_at: '2031-01-01T00:00:00.000Z',
        updated_at: '2031-01-01T00:00:00.000Z',
        subject: '/var/lib/fip',
        resolved_by: null,
      },
    ]);
  });

  it('names the service of service alerts and the metric of the others', async () => {
    const byId = new Map(((await json(await get(''))) as { id: string }[]).map((a) => [a.id, a]));
    expect(byId.get(ids[1]!)).toMatchObject({ alert_type: 'high_cpu', service_name: null, metric_name: 'cpu_usage_percent', is_active: false, resolved_at: '2031-01-01T00:01:00.000Z', resolved_by: 'auto' });
    expect(byId.get(ids[2]!)).toMatchObject({ alert_type: 'service_down', service_name: 'job-processor', metric_name: null, severity: 'critical', is_acknowledged: false });
    expect(byId.get(ids[4]!)).toMatchObject({ alert_type: 'queue_age', service_name: null, metric_name: 'queue_age_seconds', metric_value: 4 });
    expect(byId.get(ids[5]!)).toMatchObject({ alert_type: 'external_service_unavailable', service_name: 'h3africa', metric_name: null });
  });

  it('filters by is_active, severity and alert_type (service_down is the service rule)', async () => {
    expect(await idsOf('?is_active=true')).toEqual([ids[5]!, ids[4]!, ids[2]!, ids[0]!]);
    expect(await idsOf('?is_active=false')).toEqual([ids[3]!, ids[1]!]);
    // FastAPI's other spellings of a boolean, which the original accepted.
    expect(await idsOf('?is_active=1')).toEqual(await idsOf('?is_active=true'));
    expect(await idsOf('?is_active=False')).toEqual([ids[3]!, ids[1]!]);
    expect(await idsOf('?severity=high')).toEqual([ids[5]!, ids[3]!, ids[0]!]);
    expect(await idsOf('?alert_type=service_down')).toEqual([ids[2]!]);
    expect(await idsOf('?alert_type=high_disk&is_active=false')).toEqual([ids[3]!]);
    expect(await idsOf('?severity=low')).toEqual([]);
  });

  it('pages with skip and limit, every alert once', async () => {
    const seen: string[] = [];
    for (let skip = 0; skip < 10; skip += 4) seen.push(...(await idsOf(`?skip=${skip}&limit=4`)));
    expect(seen).toEqual([...ids].reverse());
    expect(await idsOf('?limit=2')).toEqual([ids[5]!, ids[4]!]);
    expect(await idsOf('?is_active=true&skip=1&limit=2')).toEqual([ids[4]!, ids[2]!]);
    expect(await idsOf('?skip=100')).toEqual([]);
  });

  it('documents the original query and a bare array of alerts in /openapi.json', async () => {
    const doc = await json(await app.request('/openapi.json'));
    const operation = doc.paths['/alerts'].get;
    expect(operation.parameters.map((p: { name: string }) => p.name).sort()).toEqual(['alert_type', 'is_active', 'limit', 'severity', 'skip']);
    expect(operation.responses['200'].content['application/json'].schema).toEqual({ type: 'array', items: { $ref: '#/components/schemas/MonitoringAlert' } });
  });

  it('lists the same active alerts as the engine', async () => {
    expect((await engine.active()).map((a) => a.id)).toEqual(await idsOf('?is_active=true'));
  });

  it('rejects unknown filter values and out-of-range paging with 400, and a missing token with 401', async () => {
    for (const query of ['?is_active=maybe', '?alert_type=bogus', '?alert_type=service_unhealthy', '?severity=urgent', '?limit=0', '?limit=101', '?limit=ten', '?skip=-1', '?skip=1.5']) {
      const res = await get(query);
      expect(res.status, query).toBe(400);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
    }
    expect((await app.request('/alerts')).status).toBe(401);
  });
});

describe('POST /internal/events', () => {
  it('refuses a user token with 403 and stores nothing', async () => {
    const event = healthChanged(uniq('wes'), 'unreachable');
    const res = await postEvent(event, adminToken);
    expect(res.status).toBe(403);
    expect(await db().select().from(receivedEvents).where(eq(receivedEvents.id, event.id))).toHaveLength(0);
  });

  it('refuses an event whose source is not the calling service with 403', async () => {
    const slug = uniq('wes');
    const event = healthChanged(slug, 'unreachable');
    const res = await postEvent(event, jobsToken);
    expect(res.status).toBe(403);
    expect((await json(res)).code).toBe('source_mismatch');
    expect(await db().select().from(receivedEvents).where(eq(receivedEvents.id, event.id))).toHaveLength(0);
    expect(await alertsAbout('external_service_unavailable', slug)).toHaveLength(0);
  });

  it('refuses a request without a token with 401 and a malformed envelope with 422', async () => {
    expect((await postEvent(healthChanged(uniq('wes'), 'unreachable'))).status).toBe(401);
    const res = await postEvent({ ...healthChanged(uniq('wes'), 'unreachable'), id: 'nope' }, registryToken);
    expect(res.status).toBe(422);
  });

  it('forgets an event whose evaluation failed (500), so the redelivery is evaluated', async () => {
    const broken = createServiceApp({ name: 'monitoring', version: '0.0.1', description: 'test', logger: createLogger({ level: 'silent' }), auth: { authenticator: testAuthenticator(createMemoryKv()) } });
    broken.route('/', internalEventRoutes({ db: db(), engine: { onEvent: async () => Promise.reject(new Error('database went away')) }, now: clock }));
    const slug = uniq('wes');
    const event = healthChanged(slug, 'unreachable');
    const failed = await broken.request('/internal/events', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${registryToken}` },
      body: JSON.stringify(event),
    });
    expect(failed.status).toBe(500);
    expect(await db().select().from(receivedEvents).where(eq(receivedEvents.id, event.id))).toHaveLength(0);

    const redelivered = await postEvent(event, registryToken);
    expect(await json(redelivered)).toEqual({ id: event.id, duplicate: false, ignored: false });
    expect((await alertsAbout('external_service_unavailable', slug)).map((r) => r.state)).toEqual(['active']);
  });

  it('ignores a health change whose data is not the registry’s shape, without an alert', async () => {
    const slug = uniq('wes');
    const event = { ...healthChanged(slug, 'unreachable'), data: { slug, current: 'unreachable' } };
    expect((await postEvent(event, registryToken)).status).toBe(202);
    expect(await alertsAbout('external_service_unavailable', slug)).toHaveLength(0);
  });
});
