/**
 * A service stops, and the platform notices and says so: monitoring's probe rounds see it go, the
 * overall health turns degraded, an alert is raised, its alert.raised event travels through
 * monitoring's outbox relay over HTTP to notification, and the admin finds it in their inbox. The
 * service comes back and the alert resolves by itself, with a second notification.
 */
import { alerts, outbox } from '@db/schema/monitor.ts';
import { notifications } from '@db/schema/notify.ts';
import { createServiceApp } from '@shared/app.ts';
import { httpEventSink } from '@shared/event-sink.ts';
import { createHttpClient } from '@shared/http-client.ts';
import { createMemoryKv } from '@shared/kv-memory.ts';
import { createLogger } from '@shared/log.ts';
import { outboundPolicy } from '@shared/outbound.ts';
import { createOutboxRelay } from '@shared/outbox-relay.ts';
import { createSecretBox } from '@shared/secret-box.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { eq } from 'drizzle-orm';
import { createAlertEngine } from '../../services/monitoring/src/alert-engine.ts';
import { alertThresholds } from '../../services/monitoring/src/alert-rules.ts';
import { createApp as createMonitoringApp } from '../../services/monitoring/src/app.ts';
import { createHostSampler } from '../../services/monitoring/src/host-sampler.ts';
import { createServiceProber } from '../../services/monitoring/src/service-prober.ts';
import { statsClients } from '../../services/monitoring/src/stats-clients.ts';
import { createApp as createNotificationApp } from '../../services/notification/src/app.ts';
import { createWebhookSender } from '../../services/notification/src/webhook-sender.ts';
import { json } from '../support/json.ts';
import { createTestDatabase, migrateAll, type TestDatabase } from '../support/test-database.ts';
import { serviceTokenFor, testAuthenticator, tokenFor } from '../support/test-identity.ts';

const logger = createLogger({ level: 'silent' });
const admin = { id: crypto.randomUUID(), email: 'ops@example.org', displayName: 'Ops' };
let testDb: TestDatabase;
let notificationServer: ReturnType<typeof Bun.serve>;
let relay: ReturnType<typeof createOutboxRelay>;
let prober: ReturnType<typeof createServiceProber>;
let monitoring: ReturnType<typeof createMonitoringApp>;
let target: ReturnType<typeof Bun.serve> | undefined;
let targetPort = 0;

/** A platform service as the prober sees it: the kit's real /ready. */
function startTarget(): void {
  const app = createServiceApp({ name: 'file-manager', version: 'test', description: 'probe target', logger, readiness: [] });
  target = Bun.serve({ port: targetPort, hostname: '127.0.0.1', fetch: app.fetch });
  targetPort = target.port!;
}

beforeAll(async () => {
  testDb = await createTestDatabase();
  await migrateAll(testDb.database);
  const db = testDb.database.db;
  await db.delete(alerts);
  await db.delete(outbox);
  const kv = createMemoryKv();

  // notification, with one admin in its directory, reached over HTTP by monitoring's relay.
  const box = await createSecretBox([{ id: 't', key: crypto.getRandomValues(new Uint8Array(32)) }]);
  const targets = { outbound: outboundPolicy(false) };
  const notification = createNotificationApp({
    logger,
    readyTimeoutMs: 1000,
    organization: { name: 'test', url: 'https://example.org' },
    authenticator: testAuthenticator(kv),
    database: testDb.database,
    kv,
    users: { user: async () => null, admins: async () => [admin] },
    publicUrl: 'https://imputation.example.org',
    webhooks: { box, sender: createWebhookSender({ db, box, logger, ...targets }), ...targets },
  });
  notificationServer = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: notification.fetch });
  relay = createOutboxRelay({
    db,
    table: outbox,
    logger,
    deliver: httpEventSink({
      client: createHttpClient({ service: 'notification', baseUrl: `http://127.0.0.1:${notificationServer.port}`, retries: 0 }),
      credential: { authorization: async () => `Bearer ${await serviceTokenFor('monitoring')}` },
    }),
  });

  startTarget();
  const engine = createAlertEngine({ db, logger, thresholds: alertThresholds({ ALERT_SERVICE_FAILURES: 2 }) });
  prober = createServiceProber({
    db,
    logger,
    // Two services: one that stops, and notification itself, which stays up (one of two down is degraded, not critical).
    targets: [
      { service: 'file-manager', url: `http://127.0.0.1:${targetPort}` },
      { service: 'notification', url: `http://127.0.0.1:${notificationServer.port}` },
    ],
    timeoutMs: 500,
    intervalMs: 60_000,
    retentionMs: 8 * 86_400_000,
    onRound: (probes) => engine.onProbeRound(probes),
  });
  const unreachable = createHttpClient({ service: 'nowhere', baseUrl: 'http://127.0.0.1:9', retries: 0 });
  monitoring = createMonitoringApp({
    logger,
    readyTimeoutMs: 1000,
    organization: { name: 'test', url: 'https://example.org' },
    authenticator: testAuthenticator(kv),
    database: testDb.database,
    prober,
    hostSampler: createHostSampler({ db, logger, paths: [], intervalMs: 60_000, retentionMs: 86_400_000 }),
    engine,
    stats: statsClients({ jobs: unreachable, users: unreachable, files: unreachable, registry: unreachable }, { authorization: async () => 'Bearer none' }),
  });
}, 60_000);

afterAll(async () => {
  target?.stop(true);
  await notificationServer.stop(true);
  await testDb.drop();
});

async function overall(): Promise<any> {
  const res = await monitoring.request('/health/overall', { headers: { authorization: `Bearer ${await tokenFor(crypto.randomUUID())}` } });
  return json(res);
}

async function inbox(): Promise<string[]> {
  const rows = await testDb.database.db.select().from(notifications).where(eq(notifications.userId, admin.id));
  return rows.map((n) => n.title).sort();
}

describe('a platform service that stops and comes back', () => {
  it('is reported healthy while it answers', async () => {
    await prober.probeAll();
    const health = await overall();
    expect(health.overall_status).toBe('healthy');
    expect(health.services.map((s: any) => [s.service_name, s.status]).sort()).toEqual([
      ['file-manager', 'healthy'],
      ['notification', 'healthy'],
    ]);
  });

  it('turns overall health degraded, raises one alert and notifies the admin once it stays down', async () => {
    target!.stop(true);
    await prober.probeAll();
    expect((await overall()).overall_status).toBe('degraded');
    expect((await testDb.database.db.select().from(alerts)).length).toBe(0); // one failure is not yet an alert
    await prober.probeAll();
    await prober.probeAll();
    const raised = await testDb.database.db.select().from(alerts);
    expect(raised.map((a) => [a.rule, a.subject, a.state])).toEqual([['service_unhealthy', 'file-manager', 'active']]);
    const down = await overall();
    expect(down.active_alerts).toHaveLength(1);
    expect(down.active_alerts[0]).toMatchObject({ alert_type: 'service_down', service_name: 'file-manager', is_active: true, severity: 'high' });
    expect(down.services.find((s: any) => s.service_name === 'file-manager')).toMatchObject({ status: 'unhealthy', probe_status: 'unreachable', consecutive_failures: 3 });
    expect((await relay.runOnce()).delivered).toBe(1);
    const titles = await inbox();
    expect(titles).toHaveLength(1);
    expect(titles[0]).toStartWith('Alert:');
  });

  it('resolves the alert by itself when the service is back, and says so', async () => {
    startTarget();
    await prober.probeAll();
    const [alert] = await testDb.database.db.select().from(alerts);
    expect(alert).toMatchObject({ state: 'resolved', resolvedBy: 'auto' });
    expect((await overall()).overall_status).toBe('healthy');
    expect((await relay.runOnce()).delivered).toBe(1);
    const titles = await inbox();
    expect(titles).toHaveLength(2);
    expect(titles.some((t) => t.startsWith('Resolved:'))).toBe(true);
  });
});
