/**
 * service-registry's protocol-aware health probes against the faithful Cloudgene and WES fakes:
 * status mapping (healthy, maintenance, refused credentials, 5xx, malformed JSON, hung and closed
 * servers), what each outcome stores (current row, history, outbox event), history retention, the
 * outbound policy, single probes and the loop.
 */
import { healthChecks, outbox, panels, serviceHealth, services } from '@db/schema/registry.ts';
import { HttpProblem } from '@shared/errors.ts';
import { createLogger } from '@shared/log.ts';
import { outboundPolicy } from '@shared/outbound.ts';
import { EventEnvelopeSchema, ServiceHealthChangedSchema } from '@shared/schemas/events.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { and, eq, gte, lt } from 'drizzle-orm';
import { createHealthProber, type HealthProber, type HealthProberDeps } from '../../services/service-registry/src/health-prober.ts';
import { makeFakeJwt, startCloudgeneFake, type CloudgeneFake } from '../fakes/cloudgene.ts';
import { startWesFake, type WesFake } from '../fakes/wes.ts';
import { createTestDatabase, migrateAll, type TestDatabase } from '../support/test-database.ts';

const TIMEOUT_MS = 300;
const RETENTION_MS = 24 * 3_600_000;
const OPERATOR = makeFakeJwt('operator');
const WES_TOKEN = 'wes-operator-token';
const run = Math.random().toString(36).slice(2, 8);

let testDb: TestDatabase;
let clock = Date.parse('2030-01-01T00:00:00Z');
const logLines: Record<string, unknown>[] = [];
const logger = createLogger({ level: 'info', sink: (line) => logLines.push(JSON.parse(line)) });
/** Operator tokens by service slug. */
const tokens = new Map<string, string>();
let statusChangeCalls = 0;

const cloudgene: Record<string, CloudgeneFake> = {};
const wes: Record<string, WesFake> = {};
let closedPortUrl: string;
/** Service ids by short name. */
const ids: Record<string, string> = {};

function db() {
  return testDb.database.db;
}

function makeProber(overrides: Partial<HealthProberDeps> = {}): HealthProber {
  return createHealthProber({
    db: db(),
    logger,
    policy: outboundPolicy(false),
    timeoutMs: TIMEOUT_MS,
    intervalMs: 60_000,
    historyRetentionMs: RETENTION_MS,
    operatorToken: (service) => tokens.get(service.slug),
    onStatusChange: async () => {
      statusChangeCalls += 1;
    },
    now: () => clock,
    ...overrides,
  });
}

async function addService(
  name: string,
  fields: { protocol: 'cloudgene' | 'ga4gh-wes'; baseUrl: string; appId?: string; token?: string; isActive?: boolean; retiredAt?: Date },
): Promise<string> {
  const id = Bun.randomUUIDv7();
  const slug = `probe-${name}-${run}`;
  await db()
    .insert(services)
    .values({
      id,
      slug,
      name: `Probe ${name}`,
      protocol: fields.protocol,
      baseUrl: fields.baseUrl,
      appId: fields.appId ?? 'imputationserver2',
      credentialType: fields.protocol === 'cloudgene' ? 'cloudgene-token' : 'wes-bearer',
      isActive: fields.isActive ?? true,
      retiredAt: fields.retiredAt ?? null,
    });
  if (fields.token) tokens.set(slug, fields.token);
  ids[name] = id;
  return id;
}

async function healthOf(name: string) {
  const [row] = await db().select().from(serviceHealth).where(eq(serviceHealth.serviceId, ids[name]!));
  return row;
}

async function checksOf(name: string) {
  return db().select().from(healthChecks).where(eq(healthChecks.serviceId, ids[name]!));
}

async function eventsFor(name: string) {
  const rows = await db().select().from(outbox);
  return rows.filter((row) => (row.payload as { data?: { serviceId?: string } }).data?.serviceId === ids[name]);
}

/** Queues a job on a Cloudgene fake (state 1 until polled) so its counters report it. */
async function queueJob(fake: CloudgeneFake, token: string) {
  const form = new FormData();
  form.append('files', new File([new Uint8Array([0x1f, 0x8b, 8, 0])], 'chr20.vcf.gz'));
  form.append('refpanel', 'apps@hapmap-2@2.0.0');
  const res = await fetch(`${fake.url}/api/v2/jobs/submit/imputationserver2`, { method: 'POST', headers: { 'x-auth-token': token }, body: form });
  expect(res.status).toBe(200);
}

beforeAll(async () => {
  testDb = await createTestDatabase();
  await migrateAll(testDb.database);
  // probeAll reads the whole table: start from an empty catalogue (children before parents).
  for (const table of [healthChecks, serviceHealth, outbox, panels, services]) await db().delete(table);

  cloudgene.main = await startCloudgeneFake({ tokens: { [OPERATOR]: 'operator' }, maxActiveJobs: 5 });
  cloudgene.maintenance = await startCloudgeneFake({ maintenance: true, maintenanceMessage: 'Upgrading to 2.0.13 until 18:00 UTC' });
  cloudgene.failing = await startCloudgeneFake({ status500: '/api/v2/server' });
  cloudgene.malformed = await startCloudgeneFake({ malformedJson: true });
  cloudgene.hung = await startCloudgeneFake({ hang: true });
  cloudgene.noCounters = await startCloudgeneFake({ status500: '/api/v2/server/counters' });
  cloudgene.flaky = await startCloudgeneFake({ tokens: { [OPERATOR]: 'operator' } });
  wes.v11 = await startWesFake({ version: '1.1.0', systemStateCounts: { QUEUED: 2, INITIALIZING: 1, RUNNING: 3, CANCELING: 1, COMPLETE: 40 } });
  wes.v10 = await startWesFake({ version: '1.0.0', workflowTypeVersionsShape: 'array', systemStateCounts: { QUEUED: 1, PAUSED: 2 } });
  wes.empty = await startWesFake({ version: '1.1.0' });
  wes.secured = await startWesFake({ version: '1.1.0', tokens: [WES_TOKEN] });
  wes.failing = await startWesFake({ behavior: { mode: 'status500', match: '/service-info' } });
  wes.malformed = await startWesFake({ behavior: { mode: 'malformedJson' } });
  wes.hung = await startWesFake({ behavior: { mode: 'hang' } });
  const closed = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('') });
  closedPortUrl = `http://127.0.0.1:${closed.port}`;
  await closed.stop(true);

  await queueJob(cloudgene.main, OPERATOR);
  await queueJob(cloudgene.main, OPERATOR);

  await addService('cg-ok', { protocol: 'cloudgene', baseUrl: cloudgene.main.url, token: OPERATOR });
  await addService('cg-pinned', { protocol: 'cloudgene', baseUrl: `${cloudgene.main.url}/`, appId: 'imputationserver2@2.0.12', token: OPERATOR });
  await addService('cg-anonymous', { protocol: 'cloudgene', baseUrl: cloudgene.main.url });
  await addService('cg-app-missing', { protocol: 'cloudgene', baseUrl: cloudgene.main.url, appId: 'imputationserver2@9.9.9', token: OPERATOR });
  await addService('cg-bad-token', { protocol: 'cloudgene', baseUrl: cloudgene.main.url, token: makeFakeJwt('stranger') });
  await addService('cg-maintenance', { protocol: 'cloudgene', baseUrl: cloudgene.maintenance.url });
  await addService('cg-500', { protocol: 'cloudgene', baseUrl: cloudgene.failing.url });
  await addService('cg-malformed', { protocol: 'cloudgene', baseUrl: cloudgene.malformed.url });
  await addService('cg-hung', { protocol: 'cloudgene', baseUrl: cloudgene.hung.url });
  await addService('cg-no-counters', { protocol: 'cloudgene', baseUrl: cloudgene.noCounters.url });
  await addService('wes-11', { protocol: 'ga4gh-wes', baseUrl: wes.v11.url });
  await addService('wes-10', { protocol: 'ga4gh-wes', baseUrl: wes.v10.url });
  await addService('wes-empty-counts', { protocol: 'ga4gh-wes', baseUrl: wes.empty.url });
  await addService('wes-no-token', { protocol: 'ga4gh-wes', baseUrl: wes.secured.url });
  await addService('wes-with-token', { protocol: 'ga4gh-wes', baseUrl: wes.secured.url, token: WES_TOKEN });
  await addService('wes-500', { protocol: 'ga4gh-wes', baseUrl: wes.failing.url });
  await addService('wes-malformed', { protocol: 'ga4gh-wes', baseUrl: wes.malformed.url });
  await addService('wes-hung', { protocol: 'ga4gh-wes', baseUrl: wes.hung.url });
  await addService('closed-port', { protocol: 'cloudgene', baseUrl: closedPortUrl });
  await addService('inactive', { protocol: 'cloudgene', baseUrl: cloudgene.main.url, isActive: false });
  await addService('retired', { protocol: 'cloudgene', baseUrl: cloudgene.main.url, retiredAt: new Date(clock) });
  // Never contacted: the policy refuses non-loopback hosts before any request is made.
  await addService('external', { protocol: 'cloudgene', baseUrl: 'https://imputation.example.org' });
}, 60_000);

afterAll(async () => {
  await Promise.all([...Object.values(cloudgene), ...Object.values(wes)].map((fake) => fake.stop()));
  await testDb.drop();
});

describe('health prober: one round over every kind of server', () => {
  const PROBED = [
    'cg-ok',
    'cg-pinned',
    'cg-anonymous',
    'cg-app-missing',
    'cg-bad-token',
    'cg-maintenance',
    'cg-500',
    'cg-malformed',
    'cg-hung',
    'cg-no-counters',
    'wes-11',
    'wes-10',
    'wes-empty-counts',
    'wes-no-token',
    'wes-with-token',
    'wes-500',
    'wes-malformed',
    'wes-hung',
    'closed-port',
  ];
  let round: Awaited<ReturnType<HealthProber['probeAll']>>;
  let inFlight = 0;
  let maxInFlight = 0;
  /** Real fetch, counting requests that have not answered yet. */
  const countingFetch = (async (...args: Parameters<typeof fetch>) => {
    inFlight += 1;
    maxInFlight = Math.max(maxInFlight, inFlight);
    try {
      return await fetch(...args);
    } finally {
      inFlight -= 1;
    }
  }) as typeof fetch;

  beforeAll(async () => {
    statusChangeCalls = 0;
    round = await makeProber({ fetch: countingFetch }).probeAll();
  });

  it('probes all services at once rather than one after another', () => {
    // Two hung servers hold their requests until the timeout; sequential probing would never have
    // more than one service's requests (two for Cloudgene) outstanding.
    expect(maxInFlight).toBeGreaterThanOrEqual(PROBED.length);
    expect(inFlight).toBe(0);
  });

  it('reports every active service in the round and skips the ones the policy refuses', () => {
    expect(round.probed).toBe(PROBED.length);
    expect(round.skipped).toBe(1);
    expect(round.failed).toBe(0);
    expect(round.byStatus).toEqual({ healthy: 8, degraded: 2, unhealthy: 6, unreachable: 3 });
    expect(round.changed).toEqual([]);
  });

  it('stores a current row and one history row for every probed service', async () => {
    for (const name of PROBED) {
      const row = await healthOf(name);
      expect(row, name).toBeDefined();
      expect(row!.checkedAt.getTime()).toBe(clock);
      expect(row!.statusSince.getTime()).toBe(clock);
      const checks = await checksOf(name);
      expect(checks.map((c) => c.status)).toEqual([row!.status]);
    }
  });

  it('stores nothing for inactive, retired and policy-refused services', async () => {
    for (const name of ['inactive', 'retired', 'external']) {
      expect(await healthOf(name), name).toBeUndefined();
      expect(await checksOf(name), name).toEqual([]);
    }
  });

  it('marks a Cloudgene server healthy with its queue size from the counters', async () => {
    const row = await healthOf('cg-ok');
    expect(row).toMatchObject({ status: 'healthy', httpStatus: 200, error: null, queueSize: 2, runningJobs: null, consecutiveFailures: 0 });
    expect(row!.latencyMs).toBeGreaterThanOrEqual(0);
    expect(await healthOf('cg-pinned')).toMatchObject({ status: 'healthy', queueSize: 2 });
    expect(await healthOf('cg-anonymous')).toMatchObject({ status: 'healthy', error: null });
  });

  it('sends the operator token raw in X-Auth-Token, never as Bearer, and not to the counters', () => {
    const serverCalls = cloudgene.main!.control.requestsTo('/api/v2/server', 'GET').filter((r) => r.path === '/api/v2/server');
    const withToken = serverCalls.filter((r) => r.headers['x-auth-token'] === OPERATOR);
    expect(withToken.length).toBeGreaterThanOrEqual(2);
    expect(serverCalls.every((r) => r.headers.authorization === undefined)).toBe(true);
    const counters = cloudgene.main!.control.requestsTo('/api/v2/server/counters', 'GET');
    expect(counters.length).toBeGreaterThan(0);
    expect(counters.every((r) => r.headers['x-auth-token'] === undefined)).toBe(true);
  });

  it('marks a Cloudgene server degraded when the configured app version is not installed', async () => {
    const row = await healthOf('cg-app-missing');
    expect(row).toMatchObject({ status: 'degraded', httpStatus: 200 });
    expect(row!.error).toContain('app imputationserver2@9.9.9 not installed');
    expect(row!.error).toContain('imputationserver2@2.0.12');
  });

  it('marks a Cloudgene server unhealthy, not healthy, when it does not accept the operator token', async () => {
    const row = await healthOf('cg-bad-token');
    expect(row).toMatchObject({ status: 'unhealthy', consecutiveFailures: 1 });
    expect(row!.error).toContain('credential rejected');
  });

  it('marks a Cloudgene server in maintenance degraded with its maintenance message', async () => {
    const row = await healthOf('cg-maintenance');
    expect(row).toMatchObject({ status: 'degraded', httpStatus: 200, consecutiveFailures: 0 });
    expect(row!.error).toBe('maintenance: Upgrading to 2.0.13 until 18:00 UTC');
  });

  it('marks a server answering 500 unhealthy with the HTTP code', async () => {
    for (const name of ['cg-500', 'wes-500']) {
      const row = await healthOf(name);
      expect(row, name).toMatchObject({ status: 'unhealthy', httpStatus: 500, consecutiveFailures: 1 });
      expect(row!.error).toStartWith('HTTP 500');
    }
  });

  it('marks a server answering malformed JSON unhealthy', async () => {
    for (const name of ['cg-malformed', 'wes-malformed']) {
      const row = await healthOf(name);
      expect(row, name).toMatchObject({ status: 'unhealthy', httpStatus: 200 });
      expect(row!.error).toStartWith('malformed JSON');
    }
  });

  it('marks hung servers unreachable after the timeout while the rest of the round keeps its real status', async () => {
    for (const name of ['cg-hung', 'wes-hung']) {
      const row = await healthOf(name);
      expect(row, name).toMatchObject({ status: 'unreachable', httpStatus: null, latencyMs: null, consecutiveFailures: 1 });
      expect(row!.error).toMatch(/^no answer within \d+ ms$/);
    }
    expect(cloudgene.hung!.control.requestsTo('/api/v2/server').length).toBeGreaterThan(0);
  });

  it('marks a closed port unreachable', async () => {
    const row = await healthOf('closed-port');
    expect(row).toMatchObject({ status: 'unreachable', httpStatus: null, error: 'connection refused' });
  });

  it('keeps a Cloudgene server healthy when only its counters fail, without a queue size', async () => {
    expect(await healthOf('cg-no-counters')).toMatchObject({ status: 'healthy', queueSize: null, error: null });
  });

  it('reads WES 1.1 load from system_state_counts', async () => {
    // QUEUED 2 + INITIALIZING 1 waiting; RUNNING 3 + CANCELING 1 running; COMPLETE ignored.
    expect(await healthOf('wes-11')).toMatchObject({ status: 'healthy', httpStatus: 200, queueSize: 3, runningJobs: 4, error: null });
  });

  it('accepts the WES 1.0 shape with workflow types mapped straight to version arrays', async () => {
    expect(await healthOf('wes-10')).toMatchObject({ status: 'healthy', queueSize: 1, runningJobs: 2 });
  });

  it('stores no WES load when system_state_counts is empty', async () => {
    expect(await healthOf('wes-empty-counts')).toMatchObject({ status: 'healthy', queueSize: null, runningJobs: null });
  });

  it('marks a WES node that answers 401 unhealthy, and healthy with the operator bearer token', async () => {
    const refused = await healthOf('wes-no-token');
    expect(refused).toMatchObject({ status: 'unhealthy', httpStatus: 401 });
    expect(refused!.error).toStartWith('credential rejected (HTTP 401)');
    expect(await healthOf('wes-with-token')).toMatchObject({ status: 'healthy', httpStatus: 200 });
    const authorizations = wes.secured!.control.requests.map((r) => r.authorization);
    expect(authorizations).toContain(`Bearer ${WES_TOKEN}`);
  });

  it('writes no outbox row for first statuses and invalidates the cache once', async () => {
    const rows = await db().select().from(outbox);
    expect(rows.filter((r) => Object.values(ids).includes((r.payload as { data: { serviceId: string } }).data.serviceId))).toEqual([]);
    expect(statusChangeCalls).toBe(1);
  });

  it('logs one line for the round with counts by status', () => {
    const rounds = logLines.filter((l) => l.msg === 'probe round');
    expect(rounds.at(-1)).toMatchObject({ probed: PROBED.length, skipped: 1, healthy: 8, degraded: 2, unhealthy: 6, unreachable: 3, changed: 0 });
  });
});

describe('health prober: status changes and recovery', () => {
  let prober: HealthProber;

  beforeAll(async () => {
    await addService('flaky', { protocol: 'cloudgene', baseUrl: cloudgene.flaky!.url, token: OPERATOR });
    prober = makeProber();
  });

  it('writes no outbox row while the status stays the same', async () => {
    clock += 60_000;
    const first = await prober.probeOne(ids.flaky!);
    clock += 60_000;
    const second = await prober.probeOne(ids.flaky!);
    expect(first).toMatchObject({ previous: null, changed: false, health: { status: 'healthy' } });
    expect(second).toMatchObject({ previous: 'healthy', changed: false, health: { status: 'healthy' } });
    expect(await eventsFor('flaky')).toEqual([]);
    expect((await healthOf('flaky'))!.statusSince.getTime()).toBe(clock - 60_000);
  });

  it('writes exactly one service.health_changed event when the server starts failing', async () => {
    cloudgene.flaky!.control.addFault({ kind: 'status500', path: '/api/v2/server' });
    statusChangeCalls = 0;
    clock += 60_000;
    const failing = await prober.probeOne(ids.flaky!);
    const failedAt = clock;
    clock += 60_000;
    await prober.probeOne(ids.flaky!);

    expect(failing).toMatchObject({ previous: 'healthy', changed: true, health: { status: 'unhealthy', httpStatus: 500 } });
    expect(statusChangeCalls).toBe(1);
    expect(await healthOf('flaky')).toMatchObject({ status: 'unhealthy', consecutiveFailures: 2 });
    expect((await healthOf('flaky'))!.statusSince.getTime()).toBe(failedAt);

    const events = await eventsFor('flaky');
    expect(events).toHaveLength(1);
    expect(events[0]!.type).toBe('service.health_changed');
    const envelope = EventEnvelopeSchema.parse(events[0]!.payload);
    expect(envelope).toMatchObject({ id: events[0]!.id, type: 'service.health_changed', source: 'service-registry', userId: null });
    expect(envelope.occurredAt).toBe(new Date(failedAt).toISOString());
    const data = ServiceHealthChangedSchema.parse(envelope.data);
    expect(data).toEqual({
      serviceId: ids.flaky!,
      slug: `probe-flaky-${run}`,
      name: 'Probe flaky',
      previous: 'healthy',
      current: 'unhealthy',
      error: expect.stringMatching(/^HTTP 500/),
      checkedAt: new Date(failedAt).toISOString(),
    });
    expect(logLines.filter((l) => l.msg === 'service health changed' && l.serviceId === ids.flaky)).toHaveLength(1);
  });

  it('recovers to healthy when the fault clears: failures reset, status_since moves, one more event', async () => {
    cloudgene.flaky!.control.clearFaults();
    clock += 60_000;
    const recovered = await prober.probeOne(ids.flaky!);
    expect(recovered).toMatchObject({ previous: 'unhealthy', changed: true });
    expect(await healthOf('flaky')).toMatchObject({ status: 'healthy', consecutiveFailures: 0, error: null, httpStatus: 200 });
    expect((await healthOf('flaky'))!.statusSince.getTime()).toBe(clock);
    const events = await eventsFor('flaky');
    expect(events.map((e) => (e.payload as { data: { current: string } }).data.current).sort()).toEqual(['healthy', 'unhealthy']);
    expect((await checksOf('flaky')).map((c) => c.status).sort()).toEqual(['healthy', 'healthy', 'healthy', 'unhealthy', 'unhealthy']);
  });

  it('lists a change in the round report', async () => {
    cloudgene.flaky!.control.maintenance = true;
    clock += 60_000;
    const round = await prober.probeAll();
    cloudgene.flaky!.control.maintenance = false;
    expect(round.changed).toEqual([{ serviceId: ids.flaky!, previous: 'healthy', current: 'degraded' }]);
  });
});

describe('health prober: history retention', () => {
  it('prunes health checks older than the retention window after a round', async () => {
    const before = clock;
    clock += RETENTION_MS + 60_000;
    const cutoff = new Date(clock - RETENTION_MS);
    const round = await makeProber().probeAll();
    const old = await db().select().from(healthChecks).where(lt(healthChecks.checkedAt, cutoff));
    expect(old).toEqual([]);
    const fresh = await db().select().from(healthChecks).where(gte(healthChecks.checkedAt, cutoff));
    expect(fresh).toHaveLength(round.probed);
    // The current rows are not history: they stay, now from this round.
    const flaky = await healthOf('flaky');
    expect(flaky!.checkedAt.getTime()).toBe(clock);
    expect(before).toBeLessThan(cutoff.getTime());
  });
});

describe('health prober: probeOne', () => {
  it('answers null for an unknown id, a malformed id and a retired service', async () => {
    const prober = makeProber();
    expect(await prober.probeOne(Bun.randomUUIDv7())).toBeNull();
    expect(await prober.probeOne('not-a-uuid')).toBeNull();
    expect(await prober.probeOne(ids.retired!)).toBeNull();
    expect(await healthOf('retired')).toBeUndefined();
  });

  it('refuses with a 409 problem when the outbound policy forbids the URL, storing nothing', async () => {
    const error = await makeProber()
      .probeOne(ids.external!)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HttpProblem);
    expect(error).toMatchObject({ status: 409, code: 'external_calls_disabled' });
    expect(await healthOf('external')).toBeUndefined();
  });

  it('probes an inactive service on request and stores the outcome', async () => {
    clock += 60_000;
    const result = await makeProber().probeOne(ids.inactive!);
    expect(result).toMatchObject({ previous: null, changed: false, health: { status: 'healthy', serviceId: ids.inactive } });
    expect(await healthOf('inactive')).toMatchObject({ status: 'healthy', checkedAt: new Date(clock) });
  });

  it('stores the outcome of a single probe of a hung server as unreachable', async () => {
    const before = await healthOf('wes-hung');
    clock += 60_000;
    const result = await makeProber().probeOne(ids['wes-hung']!);
    expect(result).toMatchObject({ changed: false, health: { status: 'unreachable', consecutiveFailures: before!.consecutiveFailures + 1 } });
    const checks = await db()
      .select()
      .from(healthChecks)
      .where(and(eq(healthChecks.serviceId, ids['wes-hung']!), eq(healthChecks.checkedAt, new Date(clock))));
    expect(checks).toHaveLength(1);
  });
});

describe('health prober: the loop', () => {
  it('runs a first round soon after start, and stop() waits for the round in flight', async () => {
    const lines: Record<string, unknown>[] = [];
    const prober = makeProber({
      logger: createLogger({ level: 'info', sink: (line) => lines.push(JSON.parse(line)) }),
      initialDelayMs: 0,
    });
    const requestsBefore = wes.v11!.control.requests.length;
    clock += 60_000;
    prober.start();
    // The round is in flight once a fake has been asked; it lasts at least the hung servers' timeout.
    for (let i = 0; i < 200 && wes.v11!.control.requests.length === requestsBefore; i++) await Bun.sleep(10);
    expect(wes.v11!.control.requests.length).toBeGreaterThan(requestsBefore);
    await prober.stop();
    expect(lines.filter((l) => l.msg === 'probe round')).toHaveLength(1);
    expect((await healthOf('wes-11'))!.checkedAt.getTime()).toBe(clock);
  });

  it('logs a failed round and keeps going', async () => {
    const lines: Record<string, unknown>[] = [];
    let calls = 0;
    const prober = makeProber({
      logger: createLogger({ level: 'info', sink: (line) => lines.push(JSON.parse(line)) }),
      initialDelayMs: 0,
      intervalMs: 20,
      jitter: 0,
      // A clock that throws fails the round before anything is probed.
      now: () => {
        calls += 1;
        if (calls === 1) throw new Error('clock broke');
        return clock;
      },
    });
    prober.start();
    for (let i = 0; i < 500 && !lines.some((l) => l.msg === 'probe round'); i++) await Bun.sleep(10);
    await prober.stop();
    expect(lines.find((l) => l.msg === 'probe round failed')).toMatchObject({ level: 'error' });
    expect(lines.some((l) => l.msg === 'probe round')).toBe(true);
  });
});
