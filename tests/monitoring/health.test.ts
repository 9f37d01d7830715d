/**
 * monitoring's service health: the prober against real HTTP services on loopback (the kit's own
 * `/ready`, ready or naming failed checks, plus services that hang, stall their body, fail, answer
 * slowly or are closed), what each round stores and keeps in memory, failure streaks, retention and
 * uptime; the `/health/overall` and `/health/services` routes in the original operators' snake_case
 * shapes, `/health/history`; and the platform gauges on `/metrics`.
 */
import { probes } from '@db/schema/monitor.ts';
import { createServiceApp, type ServiceApp } from '@shared/app.ts';
import type { Kv } from '@shared/kv.ts';
import { createKv } from '@shared/kv-factory.ts';
import { createLogger } from '@shared/log.ts';
import { createMetrics } from '@shared/metrics.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { asc, inArray } from 'drizzle-orm';
import type { AlertView } from '../../services/monitoring/src/alert-engine.ts';
import type { HostSample, ServiceProbe } from '../../services/monitoring/src/domain.ts';
import { operatorAlertView } from '../../services/monitoring/src/routes/alerts.ts';
import { healthRoutes, overallStatus, registerHealthGauges, type ServiceHealth } from '../../services/monitoring/src/routes/health.ts';
import { systemMetricsView } from '../../services/monitoring/src/system-metrics-view.ts';
import { createServiceProber, type ProbeTarget, type ServiceProber, type ServiceProberDeps } from '../../services/monitoring/src/service-prober.ts';
import { json } from '../support/json.ts';
import { createTestDatabase, migrateAll, type TestDatabase } from '../support/test-database.ts';
import { testAuthenticator, tokenFor } from '../support/test-identity.ts';

const TIMEOUT_MS = 300;
const RETENTION_MS = 8 * 86_400_000;
const run = Math.random().toString(36).slice(2, 8);
const logger = createLogger({ level: 'silent' });

type Mode = 'ready' | 'hang' | 'stall' | 'error' | 'slow';

/** A platform service on loopback: the kit's real `/ready` over two checks, plus fault modes. */
interface PlatformService {
  name: string;
  url: string;
  mode: Mode;
  /** Readiness checks that currently fail. */
  failing: Set<string>;
  stop(): Promise<void>;
}

const started: PlatformService[] = [];
/** Requests hung services hold open right now, and the most at once: probes in parallel overlap. */
const held = { now: 0, max: 0 };

async function startService(short: string, mode: Mode = 'ready'): Promise<PlatformService> {
  const name = `${short}-${run}`;
  const hanging = new Set<() => void>();
  const stalled = new Set<ReadableStreamDefaultController<Uint8Array>>();
  const self: PlatformService = { name, url: '', mode, failing: new Set(), stop: async () => {} };
  const check = (checkName: string) => ({
    name: checkName,
    run: async () => {
      if (self.failing.has(checkName)) throw new Error(`${checkName} refused the connection`);
    },
  });
  const app = createServiceApp({ name, version: '1.0.0', description: 'probe target', logger, readiness: [check('database'), check('kv')], readyTimeoutMs: 200 });
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    idleTimeout: 0, // let `hang` really hang
    async fetch(req) {
      switch (self.mode) {
        case 'hang':
          return new Promise<Response>((resolve) => {
            const release = () => {
              if (!hanging.delete(release)) return;
              held.now -= 1;
              resolve(new Response('released', { status: 503 }));
            };
            hanging.add(release);
            held.now += 1;
            held.max = Math.max(held.max, held.now);
            // The prober gave up: the request is no longer held.
            req.signal.addEventListener('abort', release);
          });
        case 'stall':
          // Headers and the start of a ready body, then nothing more.
          return new Response(
            new ReadableStream<Uint8Array>({
              start(controller) {
                controller.enqueue(new TextEncoder().encode('{"status":"ready",'));
                stalled.add(controller);
              },
            }),
            { status: 200, headers: { 'content-type': 'application/json' } },
          );
        case 'error':
          return new Response('upstream exploded', { status: 500 });
        case 'slow':
          await Bun.sleep(200);
          return app.fetch(req);
        default:
          return app.fetch(req);
      }
    },
  });
  self.url = `http://127.0.0.1:${server.port}`;
  self.stop = async () => {
    for (const release of [...hanging]) release();
    for (const controller of stalled) {
      try {
        controller.close();
      } catch {
        // already closed by the client's abort
      }
    }
    await server.stop(true);
  };
  started.push(self);
  return self;
}

/** A URL on loopback where nothing listens any more. */
async function closedUrl(): Promise<string> {
  const server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('') });
  const url = `http://127.0.0.1:${server.port}`;
  await server.stop(true);
  return url;
}

let testDb: TestDatabase;
let kv: Kv;
let clock = Date.now();
const tick = (ms = 60_000) => (clock += ms);

function db() {
  return testDb.database.db;
}

function target(service: PlatformService): ProbeTarget {
  return { service: service.name, url: service.url };
}

function makeProber(targets: ProbeTarget[], overrides: Partial<ServiceProberDeps> = {}): ServiceProber {
  return createServiceProber({
    db: db(),
    logger,
    targets,
    timeoutMs: TIMEOUT_MS,
    intervalMs: 60_000,
    retentionMs: RETENTION_MS,
    now: () => clock,
    ...overrides,
  });
}

async function rowsOf(...services: string[]) {
  return db().select().from(probes).where(inArray(probes.service, services)).orderBy(asc(probes.checkedAt), asc(probes.id));
}

function byService(list: ServiceProbe[]): Record<string, ServiceProbe> {
  return Object.fromEntries(list.map((p) => [p.service, p]));
}

beforeAll(async () => {
  testDb = await createTestDatabase();
  await migrateAll(testDb.database);
  kv = await createKv({ url: process.env.REDIS_URL });
}, 60_000);

afterAll(async () => {
  for (const service of started) await service.stop();
  await kv.close();
  await testDb.drop();
});

describe('service prober', () => {
  it('maps ready, not-ready, failing, stalled, hung and closed services in one round and stores a row for each', async () => {
    const ready = await startService('ready');
    const notReady = await startService('not-ready');
    notReady.failing.add('database').add('kv');
    const failing = await startService('failing', 'error');
    const hung = await startService('hung', 'hang');
    const hung2 = await startService('hung-too', 'hang');
    const stalled = await startService('stalled', 'stall');
    const closed = { service: `closed-${run}`, url: await closedUrl() };
    const targets = [target(ready), target(notReady), target(failing), target(hung), target(hung2), target(stalled), closed];
    const prober = makeProber(targets);

    tick();
    held.max = 0;
    const round = await prober.probeAll();
    // Both hung services held a request at the same time: they were probed in parallel, not one after the other.
    expect(held.max).toBe(2);

    expect(round.map((p) => p.service)).toEqual(targets.map((t) => t.service));
    const seen = byService(round);
    expect(seen[ready.name]).toMatchObject({ status: 'healthy', httpStatus: 200, failedCheck: null, consecutiveFailures: 0, url: ready.url });
    expect(seen[ready.name]!.latencyMs).toBeGreaterThanOrEqual(0);
    expect(seen[notReady.name]).toMatchObject({ status: 'unhealthy', httpStatus: 503, failedCheck: 'database,kv', consecutiveFailures: 1 });
    expect(seen[failing.name]).toMatchObject({ status: 'unhealthy', httpStatus: 500, failedCheck: 'HTTP 500' });
    expect(seen[hung.name]).toMatchObject({ status: 'unreachable', httpStatus: null, latencyMs: null, failedCheck: `no answer within ${TIMEOUT_MS} ms` });
    expect(seen[stalled.name]).toMatchObject({ status: 'unreachable', httpStatus: null, latencyMs: null });
    expect(seen[closed.service]).toMatchObject({ status: 'unreachable', httpStatus: null, latencyMs: null });
    expect(seen[closed.service]!.failedCheck).not.toContain('no answer within');

    // The hung service did not keep the others from being stored in the same round.
    const rows = await rowsOf(...targets.map((t) => t.service));
    expect(rows).toHaveLength(targets.length);
    const stored = Object.fromEntries(rows.map((r) => [r.service, r]));
    expect(stored[ready.name]).toMatchObject({ status: 'healthy', httpStatus: 200, failedCheck: null });
    expect(stored[notReady.name]).toMatchObject({ status: 'unhealthy', httpStatus: 503, failedCheck: 'database,kv' });
    expect(stored[failing.name]).toMatchObject({ status: 'unhealthy', httpStatus: 500 });
    expect(stored[hung.name]).toMatchObject({ status: 'unreachable', httpStatus: null, latencyMs: null });
    expect(stored[hung2.name]!.status).toBe('unreachable');
    expect(stored[stalled.name]!.status).toBe('unreachable');
    expect(stored[closed.service]!.status).toBe('unreachable');
    for (const row of rows) expect(row.checkedAt.getTime()).toBe(clock);

    expect(prober.latest()).toEqual(round);
  });

  it('names the single readiness check that failed', async () => {
    const service = await startService('kv-down');
    service.failing.add('kv');
    tick();
    const [probe] = await makeProber([target(service)]).probeAll();
    expect(probe).toMatchObject({ status: 'unhealthy', httpStatus: 503, failedCheck: 'kv' });
  });

  it('marks a service that is ready but slower than the threshold degraded, and counts it as up', async () => {
    const slow = await startService('slow', 'slow');
    const prober = makeProber([target(slow)], { degradedLatencyMs: 50, timeoutMs: 5_000 });
    tick();
    const [probe] = await prober.probeAll();
    expect(probe).toMatchObject({ status: 'degraded', httpStatus: 200, consecutiveFailures: 0 });
    expect(probe!.latencyMs!).toBeGreaterThan(50);
    expect(await prober.uptime(slow.name, clock - 1000)).toBe(100);
  });

  it('counts consecutive failures, resets them on recovery, and hands every round to onRound', async () => {
    const flaky = await startService('flaky');
    const rounds: ServiceProbe[][] = [];
    const prober = makeProber([target(flaky)], { onRound: (round) => void rounds.push(round) });

    tick();
    expect((await prober.probeAll())[0]!.consecutiveFailures).toBe(0);
    flaky.failing.add('database');
    const streak: number[] = [];
    for (let i = 0; i < 3; i++) {
      tick();
      streak.push((await prober.probeAll())[0]!.consecutiveFailures);
    }
    expect(streak).toEqual([1, 2, 3]);
    flaky.mode = 'hang';
    tick();
    expect((await prober.probeAll())[0]).toMatchObject({ status: 'unreachable', consecutiveFailures: 4 });
    expect(prober.latest()[0]!.consecutiveFailures).toBe(4);

    flaky.mode = 'ready';
    flaky.failing.clear();
    tick();
    expect((await prober.probeAll())[0]).toMatchObject({ status: 'healthy', consecutiveFailures: 0 });
    expect(rounds.map((r) => r[0]!.status)).toEqual(['healthy', 'unhealthy', 'unhealthy', 'unhealthy', 'unreachable', 'healthy']);
    expect((await rowsOf(flaky.name)).map((r) => r.status)).toEqual(['healthy', 'unhealthy', 'unhealthy', 'unhealthy', 'unreachable', 'healthy']);
  });

  it('keeps the round stored when the onRound hook throws', async () => {
    const service = await startService('hooked');
    const prober = makeProber([target(service)], {
      onRound: () => {
        throw new Error('alert engine down');
      },
    });
    tick();
    const [probe] = await prober.probeAll();
    expect(probe!.status).toBe('healthy');
    expect(await rowsOf(service.name)).toHaveLength(1);
  });

  it('rebuilds the latest probes and failure streaks from stored rows on load', async () => {
    const steady = await startService('steady');
    const broken = await startService('broken');
    const never = { service: `never-probed-${run}`, url: 'http://127.0.0.1:9' };
    const first = makeProber([target(steady), target(broken)]);
    tick();
    await first.probeAll();
    broken.failing.add('database');
    for (let i = 0; i < 2; i++) {
      tick();
      await first.probeAll();
    }
    const before = first.latest();

    const restarted = makeProber([target(steady), target(broken), never]);
    expect(restarted.latest()).toEqual([]);
    await restarted.load();
    expect(restarted.latest()).toEqual(before);
    expect(byService(restarted.latest())[broken.name]).toMatchObject({ status: 'unhealthy', consecutiveFailures: 2, failedCheck: 'database' });
    expect(restarted.uptimes().get(broken.name)).toEqual({ uptime24h: 33.33, uptime7d: 33.33 });
    expect(restarted.uptimes().get(never.service)).toEqual({ uptime24h: null, uptime7d: null });

    // The streak goes on from the stored one.
    tick();
    expect(byService(await restarted.probeAll())[broken.name]!.consecutiveFailures).toBe(3);
  });

  it('prunes probes older than the retention in every round', async () => {
    const service = await startService('pruned');
    const other = `retired-${run}`;
    await db()
      .insert(probes)
      .values([
        { service: service.name, status: 'healthy', checkedAt: new Date(clock - RETENTION_MS - 60_000) },
        { service: other, status: 'unhealthy', checkedAt: new Date(clock - RETENTION_MS - 1) },
        { service: service.name, status: 'unhealthy', checkedAt: new Date(clock - RETENTION_MS + 60_000) },
      ]);
    await makeProber([target(service)]).probeAll();
    const left = await rowsOf(service.name, other);
    expect(left.map((r) => [r.service, r.checkedAt.getTime()])).toEqual([
      [service.name, clock - RETENTION_MS + 60_000],
      [service.name, clock],
    ]);
  });

  it('computes uptime as the share of up probes over 24 hours and 7 days', async () => {
    const service = await startService('uptime');
    const at = (hoursAgo: number) => new Date(clock - hoursAgo * 3_600_000);
    await db()
      .insert(probes)
      .values([
        { service: service.name, status: 'unreachable', checkedAt: at(100) },
        { service: service.name, status: 'unhealthy', checkedAt: at(50) },
        { service: service.name, status: 'healthy', checkedAt: at(30) },
        { service: service.name, status: 'unhealthy', checkedAt: at(3) },
        { service: service.name, status: 'degraded', checkedAt: at(2) },
      ]);
    const prober = makeProber([target(service)]);
    expect(await prober.uptime(service.name, clock - 24 * 3_600_000)).toBe(50);
    expect(await prober.uptime(service.name, clock - 7 * 24 * 3_600_000)).toBe(40);
    expect(await prober.uptime(`nobody-${run}`, clock - 24 * 3_600_000)).toBeNull();
    // A round adds a healthy probe and refreshes the cached figures.
    await prober.probeAll();
    expect(prober.uptimes().get(service.name)).toEqual({ uptime24h: 66.67, uptime7d: 50 });
  });

  it('runs rounds on its own once started and stops', async () => {
    const service = await startService('looped');
    let resolveRound!: (round: ServiceProbe[]) => void;
    const firstRound = new Promise<ServiceProbe[]>((resolve) => (resolveRound = resolve));
    const prober = makeProber([target(service)], { initialDelayMs: 0, onRound: (round) => resolveRound(round) });
    prober.start();
    const round = await firstRound;
    await prober.stop();
    expect(round[0]!.status).toBe('healthy');
    expect((await rowsOf(service.name)).length).toBeGreaterThanOrEqual(1);
  });
});

describe('overallStatus', () => {
  const up = { status: 'healthy' as const };
  const slow = { status: 'degraded' as const };
  const down = { status: 'unreachable' as const };
  const sick = { status: 'unhealthy' as const };

  it('is healthy when every service is healthy and no alert is active', () => {
    expect(overallStatus([up, up, up], [])).toBe('healthy');
  });
  it('is degraded when any service is not healthy or any alert is active', () => {
    expect(overallStatus([up, slow, up], [])).toBe('degraded');
    expect(overallStatus([up, sick, up], [])).toBe('degraded');
    expect(overallStatus([up, up], [{ severity: 'medium' }])).toBe('degraded');
    // Exactly half down is not more than half.
    expect(overallStatus([up, up, sick, down], [])).toBe('degraded');
  });
  it('is critical when more than half the services are down or an alert is critical', () => {
    expect(overallStatus([up, sick, down], [])).toBe('critical');
    expect(overallStatus([up, up, up], [{ severity: 'critical' }])).toBe('critical');
  });
});

describe('health routes', () => {
  let app: ServiceApp;
  let prober: ServiceProber;
  let alpha: PlatformService;
  let beta: PlatformService;
  let gamma: PlatformService;
  let alerts: AlertView[] = [];
  let host: HostSample | null = null;
  let researcher: string;
  let viewer: string;
  /** An active alert as the engine lists it. */
  const activeAlert = (severity: AlertView['severity'], overrides: Partial<AlertView> = {}): AlertView => ({
    id: crypto.randomUUID(),
    rule: 'high_cpu',
    subject: 'host',
    severity,
    title: 'High CPU usage on the host',
    message: 'CPU usage has been above 80% for 6 minutes (now 93%).',
    value: 93,
    threshold: 80,
    details: { since: '2030-01-01T00:00:00.000Z' },
    state: 'active',
    raisedAt: '2030-01-01T00:06:00.000Z',
    acknowledgedAt: null,
    acknowledgedBy: null,
    resolvedAt: null,
    resolvedBy: null,
    updatedAt: '2030-01-01T00:06:00.000Z',
    ...overrides,
  });
  const hostSample: HostSample = {
    sampledAt: new Date(clock).toISOString(),
    cpuPercent: 12.5,
    cpuCount: 2,
    load: { one: 0.4, five: 0.3, fifteen: 0.2 },
    memory: { totalBytes: 8e9, availableBytes: 6e9, percent: 25 },
    disks: [{ path: '/data', totalBytes: 1e11, usedBytes: 4e10, freeBytes: 6e10, percent: 40 }],
    network: { rxBytesPerSec: 1000, txBytesPerSec: 500 },
  };

  /** monitoring's kit app with the health routes and gauges, wired as the service wires them. */
  function buildApp(source: ServiceProber): ServiceApp {
    const metrics = createMetrics({ service: 'monitoring' });
    const activeAlerts = async () => alerts;
    registerHealthGauges(metrics, { prober: source, activeAlerts, logger });
    const built = createServiceApp({
      name: 'monitoring',
      version: '0.1.0',
      description: 'test',
      logger,
      metrics,
      auth: { authenticator: testAuthenticator(kv) },
    });
    built.route('/', healthRoutes({ db: db(), prober: source, host: () => host, activeAlerts, now: () => clock }));
    return built;
  }

  const get = (path: string, token: string | null = researcher) =>
    app.request(path, { headers: token ? { authorization: `Bearer ${token}` } : {} });

  beforeAll(async () => {
    alpha = await startService('alpha');
    beta = await startService('beta');
    gamma = await startService('gamma');
    prober = makeProber([target(alpha), target(beta), target(gamma)]);
    app = buildApp(prober);
    researcher = await tokenFor(crypto.randomUUID(), ['researcher']);
    viewer = await tokenFor(crypto.randomUUID(), ['viewer']);
  });

  function reset() {
    for (const service of [alpha, beta, gamma]) {
      service.mode = 'ready';
      service.failing.clear();
    }
    alerts = [];
    host = null;
  }

  describe('GET /health/overall', () => {
    it('answers from the last round while every service is hung or closed, without probing', async () => {
      const hungA = await startService('still-a');
      const hungB = await startService('still-b');
      const gone = await startService('still-c');
      const own = makeProber([target(hungA), target(hungB), target(gone)]);
      const ownApp = buildApp(own);
      host = hostSample;
      alerts = [];
      tick();
      await own.probeAll();
      const roundAt = new Date(clock).toISOString();
      hungA.mode = 'hang';
      hungB.mode = 'hang';
      await gone.stop();
      tick();

      const res = await ownApp.request('/health/overall', { headers: { authorization: `Bearer ${viewer}` } });
      expect(res.status).toBe(200);
      const body = await json(res);
      expect(body.overall_status).toBe('healthy');
      expect(body.services.map((s: ServiceHealth) => [s.service_name, s.status, s.checked_at])).toEqual([
        [hungA.name, 'healthy', roundAt],
        [hungB.name, 'healthy', roundAt],
        [gone.name, 'healthy', roundAt],
      ]);
      // The original service_health row, with the platform's additions in the same case.
      expect(Object.keys(body.services[0]).sort()).toEqual(
        [
          'service_name',
          'status',
          'response_time_ms',
          'error_message',
          'endpoint_url',
          'http_status_code',
          'checked_at',
          'probe_status',
          'consecutive_failures',
          'uptime_24h',
          'uptime_7d',
        ].sort(),
      );
      expect(body.services[0]).toMatchObject({
        endpoint_url: `${hungA.url}/ready`,
        http_status_code: 200,
        error_message: null,
        probe_status: 'healthy',
        consecutive_failures: 0,
        uptime_24h: 100,
        uptime_7d: 100,
      });
      expect(body.services[0].response_time_ms).toBeGreaterThanOrEqual(0);
      expect(body.system_metrics).toEqual(systemMetricsView(hostSample));
      expect(body.system_metrics).toMatchObject({
        cpu_usage_percent: 12.5,
        cpu_count: 2,
        load_average_1m: 0.4,
        memory_usage_percent: 25,
        disk_usage_percent: 40,
        network_rx_bytes_per_sec: 1000,
        collected_at: hostSample.sampledAt,
      });
      expect(body.active_alerts).toEqual([]);
      expect(body.last_updated).toBe(roundAt);
      // Nothing was probed or stored for the request.
      expect(await rowsOf(hungA.name, hungB.name, gone.name)).toHaveLength(3);
    });

    it('follows the status rule: degraded for one failing service or any alert, critical for a critical alert or most services down', async () => {
      reset();
      tick();
      await prober.probeAll();
      expect((await json(await get('/health/overall'))).overall_status).toBe('healthy');

      alerts = [activeAlert('medium')];
      let body = await json(await get('/health/overall'));
      expect(body.overall_status).toBe('degraded');
      // Active alerts in the original Alert shape, as GET /alerts lists them.
      expect(body.active_alerts).toEqual([operatorAlertView(alerts[0]!)]);
      expect(body.active_alerts[0]).toMatchObject({
        id: alerts[0]!.id,
        alert_type: 'high_cpu',
        severity: 'medium',
        description: alerts[0]!.message,
        metric_name: 'cpu_usage_percent',
        metric_value: 93,
        threshold_value: 80,
        is_active: true,
        is_acknowledged: false,
        triggered_at: '2030-01-01T00:06:00.000Z',
      });

      alerts = [activeAlert('critical', { rule: 'service_unhealthy', subject: 'job-processor' })];
      body = await json(await get('/health/overall'));
      expect(body.overall_status).toBe('critical');
      expect(body.active_alerts[0]).toMatchObject({ alert_type: 'service_down', service_name: 'job-processor', metric_name: null });

      alerts = [];
      beta.failing.add('database');
      tick();
      await prober.probeAll();
      body = await json(await get('/health/overall'));
      expect(body.overall_status).toBe('degraded');
      expect(body.services[1]).toMatchObject({
        service_name: beta.name,
        status: 'unhealthy',
        probe_status: 'unhealthy',
        http_status_code: 503,
        error_message: 'database',
        consecutive_failures: 1,
      });
      expect(body.system_metrics).toBeNull();
      expect(body.last_updated).toBe(new Date(clock).toISOString());

      alpha.mode = 'hang';
      tick();
      await prober.probeAll();
      body = await json(await get('/health/overall'));
      expect(body.overall_status).toBe('critical');
      // No answer at all is still `unhealthy` in the original vocabulary; probe_status tells which.
      expect(body.services[0]).toMatchObject({ service_name: alpha.name, status: 'unhealthy', probe_status: 'unreachable', response_time_ms: null, http_status_code: null });
      expect(body.services[0].error_message).toContain('no answer within');
    });

    it('needs a signed-in caller, while the kit’s /health stays public', async () => {
      expect((await get('/health/overall', null)).status).toBe(401);
      expect((await get('/health/overall', 'not-a-token')).status).toBe(401);
      const live = await get('/health', null);
      expect(live.status).toBe(200);
      expect(await json(live)).toEqual({ status: 'healthy', service: 'monitoring' });
    });
  });

  describe('GET /health/services', () => {
    it('probes every service now, stores the results and updates the overall view', async () => {
      reset();
      gamma.mode = 'error';
      const before = (await rowsOf(alpha.name, beta.name, gamma.name)).length;
      tick();
      const res = await get('/health/services', viewer);
      expect(res.status).toBe(200);
      const body: ServiceHealth[] = await json(res);
      expect(Array.isArray(body)).toBe(true);
      expect(body.map((p) => [p.service_name, p.status, p.http_status_code])).toEqual([
        [alpha.name, 'healthy', 200],
        [beta.name, 'healthy', 200],
        [gamma.name, 'unhealthy', 500],
      ]);
      expect(body[0]).toMatchObject({ endpoint_url: `${alpha.url}/ready`, error_message: null, checked_at: new Date(clock).toISOString(), consecutive_failures: 0 });
      expect(body[0]!.uptime_24h).toBeNumber();
      expect(body[2]).toMatchObject({ probe_status: 'unhealthy', error_message: 'HTTP 500', consecutive_failures: 1 });
      const rows = await rowsOf(alpha.name, beta.name, gamma.name);
      expect(rows).toHaveLength(before + 3);
      expect(rows.slice(-3).every((r) => r.checkedAt.getTime() === clock)).toBe(true);
      const overall = await json(await get('/health/overall'));
      expect(overall.services[2]).toMatchObject({ service_name: gamma.name, status: 'unhealthy', error_message: 'HTTP 500' });
    });

    it('reports a slow but ready service as healthy in the original status and degraded in probe_status', async () => {
      const slow = await startService('slow-route', 'slow');
      const slowApp = buildApp(makeProber([target(slow)], { degradedLatencyMs: 50, timeoutMs: 5_000 }));
      tick();
      const [row] = await json(await slowApp.request('/health/services', { headers: { authorization: `Bearer ${viewer}` } }));
      expect(row).toMatchObject({ service_name: slow.name, status: 'healthy', probe_status: 'degraded', http_status_code: 200, consecutive_failures: 0 });
      expect(row.response_time_ms).toBeGreaterThan(50);
      const overall = await json(await slowApp.request('/health/overall', { headers: { authorization: `Bearer ${viewer}` } }));
      expect(overall.overall_status).toBe('degraded');
      expect(overall.services).toEqual([row]);
    });

    it('answers 401 without a token and probes nothing', async () => {
      const before = (await rowsOf(alpha.name)).length;
      expect((await get('/health/services', null)).status).toBe(401);
      expect(await rowsOf(alpha.name)).toHaveLength(before);
    });
  });

  describe('GET /health/history', () => {
    const service = `history-${run}`;
    const base = Date.parse('2031-03-01T00:00:00.000Z');
    const at = (minutes: number) => new Date(base + minutes * 60_000);

    beforeAll(async () => {
      await db()
        .insert(probes)
        .values([0, 10, 20, 30, 40, 50].map((m, i) => ({ service, status: i % 2 ? 'unhealthy' : 'healthy', latencyMs: m, httpStatus: i % 2 ? 503 : 200, failedCheck: i % 2 ? 'kv' : null, checkedAt: at(m) })));
      // Same instant, another service: filtered out by ?service=.
      await db().insert(probes).values({ service: `history-other-${run}`, status: 'healthy', checkedAt: at(20) });
    });

    it('returns the probes in the range, newest first, paged with a cursor', async () => {
      const q = `service=${service}&from=${at(10).toISOString()}&to=${at(40).toISOString()}&limit=3`;
      const first = await get(`/health/history?${q}`);
      expect(first.status).toBe(200);
      const page1 = await json(first);
      expect(page1.items.map((p: { checkedAt: string }) => p.checkedAt)).toEqual([at(40), at(30), at(20)].map((d) => d.toISOString()));
      expect(page1.items[1]).toEqual({ service, status: 'unhealthy', latencyMs: 30, httpStatus: 503, failedCheck: 'kv', checkedAt: at(30).toISOString() });
      expect(page1.nextCursor).toBeString();

      const page2 = await json(await get(`/health/history?${q}&cursor=${page1.nextCursor}`));
      expect(page2.items.map((p: { checkedAt: string }) => p.checkedAt)).toEqual([at(10).toISOString()]);
      expect(page2.nextCursor).toBeNull();
    });

    it('includes every service without ?service= and accepts offsets in the dates', async () => {
      const from = '2031-03-01T01:20:00+01:00'; // = 00:20Z
      const body = await json(await get(`/health/history?from=${encodeURIComponent(from)}&to=${encodeURIComponent(at(20).toISOString())}`));
      expect(body.items.map((p: { service: string }) => p.service).sort()).toEqual([service, `history-other-${run}`].sort());
    });

    it('rejects a range that ends before it starts with 400', async () => {
      const res = await get(`/health/history?from=${at(40).toISOString()}&to=${at(10).toISOString()}`);
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect((await json(res)).code).toBe('invalid_range');
    });

    it('rejects malformed dates, limits and cursors with 400', async () => {
      for (const query of ['from=yesterday', 'to=2031-13-45T00:00:00Z', 'limit=0', 'limit=1000', 'cursor=bm9wZQ', `service=${'x'.repeat(101)}`]) {
        const res = await get(`/health/history?${query}`);
        expect([query, res.status]).toEqual([query, 400]);
        expect((await json(res)).code).toMatch(/validation_failed|invalid_cursor/);
      }
    });

    it('answers 401 without a token', async () => {
      expect((await get('/health/history', null)).status).toBe(401);
    });
  });

  describe('GET /openapi.json', () => {
    it('documents the health routes with their query and response schemas', async () => {
      const res = await get('/openapi.json', null);
      expect(res.status).toBe(200);
      const doc = await json(res);
      expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/health', '/health/overall', '/health/services', '/health/history']));
      expect(doc.paths['/health/history'].get.parameters.map((p: { name: string }) => p.name).sort()).toEqual(['cursor', 'from', 'limit', 'service', 'to']);
      expect(Object.keys(doc.components.schemas.OverallHealth.properties).sort()).toEqual(['active_alerts', 'last_updated', 'overall_status', 'services', 'system_metrics']);
      expect(doc.components.schemas.PlatformServiceHealth.properties).toHaveProperty('service_name');
      expect(doc.components.schemas.PlatformServiceHealth.properties).toHaveProperty('http_status_code');
      expect(doc.components.schemas.SystemMetrics.properties).toHaveProperty('cpu_usage_percent');
      expect(doc.components.schemas.MonitoringAlert.properties).toHaveProperty('alert_type');
      const servicesItems = doc.paths['/health/services'].get.responses['200'].content['application/json'].schema;
      expect(servicesItems).toEqual({ type: 'array', items: { $ref: '#/components/schemas/PlatformServiceHealth' } });
    });
  });

  describe('GET /metrics', () => {
    it('carries service_up, probe latency and active alerts, labelled by the probed service', async () => {
      reset();
      gamma.failing.add('database');
      tick();
      await prober.probeAll();
      alerts = [activeAlert('high'), activeAlert('medium')];
      const res = await get('/metrics', null);
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(text).toContain(`service_up{service="${alpha.name}"} 1`);
      expect(text).toContain(`service_up{service="${gamma.name}"} 0`);
      expect(text).toMatch(new RegExp(`service_probe_latency_ms\\{service="${beta.name}"\\} [0-9.]+\\n`));
      expect(text).toContain('alerts_active{service="monitoring"} 2');
      expect(text).toContain('# TYPE service_up gauge');
      // Prometheus refuses a label given twice on one sample.
      expect(text).not.toMatch(/service="[^"]*",service=/);
    });
  });
});
