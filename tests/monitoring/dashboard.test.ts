/**
 * monitoring's `GET /dashboard/stats` over real HTTP to the services that own the numbers:
 * job-processor, file-manager and user-service's stats routes and the registry, each on its own
 * loopback port, all verifying tokens with the test identity, monitoring calling them with a
 * monitoring service token. A researcher sees only their own jobs; an admin sees the platform with
 * accounts and storage; a service that is down, hangs or answers out of contract leaves its section
 * null and is named, and the dashboard still answers.
 */
import { storedFiles } from '@db/schema/files.ts';
import { jobs } from '@db/schema/jobs.ts';
import { serviceHealth } from '@db/schema/registry.ts';
import { accounts } from '@db/schema/users.ts';
import { createServiceApp, type ServiceApp } from '@shared/app.ts';
import type { Authenticator, ServiceCredential } from '@shared/auth.ts';
import { createHttpClient, type HttpClient } from '@shared/http-client.ts';
import { createMemoryKv } from '@shared/kv-memory.ts';
import { createLogger } from '@shared/log.ts';
import { createSecretBox } from '@shared/secret-box.ts';
import { JOB_STATE_VALUES } from '@shared/schemas/jobs.ts';
import { DashboardStatsSchema } from '@shared/schemas/stats.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { isNull } from 'drizzle-orm';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp as createJobProcessorApp } from '../../services/job-processor/src/app.ts';
import { filesClient, registryClient, vaultClient } from '../../services/job-processor/src/platform-clients.ts';
import { dashboardRoutes } from '../../services/monitoring/src/routes/dashboard.ts';
import { statsClients, type StatsHttpClients } from '../../services/monitoring/src/stats-clients.ts';
import { internalStatsRoutes as userStatsRoutes } from '../../services/user-service/src/routes/internal-stats.ts';
import { buildFileManager } from '../support/file-manager.ts';
import { insertJob } from '../support/job-rows.ts';
import { json } from '../support/json.ts';
import { createRegistryHarness, type RegistryHarness } from '../support/service-registry.ts';
import { createTestDatabase, migrateAll, type TestDatabase } from '../support/test-database.ts';
import { serviceTokenFor, testAuthenticator, tokenFor } from '../support/test-identity.ts';

const logger = createLogger({ level: 'silent' });
const kit = { logger, readyTimeoutMs: 1000, organization: { name: 'test', url: 'https://example.org' } };
const NOW = Date.now();

let testDb: TestDatabase;
let registry: RegistryHarness;
let storageDir: string;
let authenticator: Authenticator;
const servers: { stop(closeActiveConnections?: boolean): Promise<void> | void }[] = [];
const urls: Record<'jobs' | 'files' | 'users' | 'registry', string> = { jobs: '', files: '', users: '', registry: '' };
let monitoring: ServiceApp;

const alice = crypto.randomUUID();
const bob = crypto.randomUUID();
const adminId = crypto.randomUUID();
const aliceJobs: string[] = [];

/** Monitoring's token toward the other services, as user-service would mint it. */
const credential: ServiceCredential = { authorization: async () => `Bearer ${await serviceTokenFor('monitoring')}` };

function serve(fetch: (req: Request) => Response | Promise<Response>): string {
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch });
  servers.push(server);
  return `http://127.0.0.1:${server.port}`;
}

/** monitoring's dashboard on the kit, its clients pointed at `overrides` or the running services. */
function monitoringApp(overrides: Partial<Record<keyof typeof urls, string>> = {}, timeoutMs = 5_000): ServiceApp {
  const client = (service: string, baseUrl: string): HttpClient => createHttpClient({ service, baseUrl, timeoutMs, retries: 0 });
  const at = { ...urls, ...overrides };
  const clients: StatsHttpClients = {
    jobs: client('job-processor', at.jobs),
    users: client('user-service', at.users),
    files: client('file-manager', at.files),
    registry: client('service-registry', at.registry),
  };
  const app = createServiceApp({ ...kit, name: 'monitoring', version: 'test', description: 'dashboard under test', auth: { authenticator } });
  app.route('/', dashboardRoutes({ stats: statsClients(clients, credential) }));
  return app;
}

async function dashboard(token: string | null, query = '', app = monitoring): Promise<Response> {
  return app.request(`/dashboard/stats${query}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
}

/** An address nothing listens on (a server started and stopped). */
async function deadUrl(): Promise<string> {
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response('') });
  const url = `http://127.0.0.1:${server.port}`;
  await server.stop(true);
  return url;
}

const zeroStates = () => Object.fromEntries(JOB_STATE_VALUES.map((s) => [s, 0]));

beforeAll(async () => {
  testDb = await createTestDatabase();
  await migrateAll(testDb.database);
  const db = testDb.database.db;
  authenticator = testAuthenticator(createMemoryKv());

  // job-processor: the real app; the stats route calls nobody, so its own clients point nowhere.
  const nowhere = (service: string) => createHttpClient({ service, baseUrl: 'http://127.0.0.1:1', retries: 0 });
  const jpCredential = { authorization: async () => `Bearer ${await serviceTokenFor('job-processor')}` };
  const jobProcessor = createJobProcessorApp({
    ...kit,
    authenticator,
    database: testDb.database,
    box: await createSecretBox([{ id: 'dashboard-test', key: crypto.getRandomValues(new Uint8Array(32)) }]),
    registry: registryClient(nowhere('service-registry'), jpCredential),
    files: filesClient(nowhere('file-manager'), jpCredential, 'http://127.0.0.1:1'),
    vault: vaultClient(nowhere('user-service'), jpCredential),
  });
  urls.jobs = serve(jobProcessor.fetch);

  storageDir = await mkdtemp(join(tmpdir(), 'fip-dashboard-'));
  urls.files = serve(buildFileManager({ database: testDb.database, storageDir, authenticator }).fetch);

  // user-service's stats route on the kit with the test identity (its own app verifies its own keys).
  const users = createServiceApp({ ...kit, name: 'user-service', version: 'test', description: 'stats under test', auth: { authenticator } });
  users.route('/', userStatsRoutes({ db }));
  urls.users = serve(users.fetch);

  registry = await createRegistryHarness();
  await registry.clear();
  const add = async (slug: string, extra: Record<string, unknown> = {}) => {
    const res = await registry.call('POST', '/services', registry.tokens.admin, {
      slug,
      name: slug.replace('dash-', 'Dash '),
      protocol: 'cloudgene',
      baseUrl: 'http://127.0.0.1:1',
      supportedBuilds: ['hg19'],
      ...extra,
    });
    if (res.status !== 201) throw new Error(`registry refused ${slug}: ${await res.text()}`);
    return (await json(res)).id as string;
  };
  const health = (serviceId: string, status: string) =>
    registry.testDb.database.db.insert(serviceHealth).values({ serviceId, status, statusSince: new Date(NOW), checkedAt: new Date(NOW) });
  await health(await add('dash-healthy'), 'healthy');
  await health(await add('dash-slow'), 'degraded');
  await health(await add('dash-down'), 'unhealthy');
  await health(await add('dash-off', { isActive: false }), 'healthy');
  await add('dash-new');
  const retired = await add('dash-retired');
  await health(retired, 'healthy');
  expect((await registry.call('DELETE', `/services/${retired}`, registry.tokens.admin)).status).toBe(204);
  await registry.catalogue.invalidate();
  urls.registry = serve(registry.app.fetch);

  const job = (seed: Parameters<typeof insertJob>[2]) => insertJob(db, NOW, seed);
  aliceJobs.push(await job({ userId: alice, state: 'completed', ageSeconds: 900, service: 'dash-healthy' }));
  aliceJobs.push(await job({ userId: alice, state: 'failed', ageSeconds: 800, service: 'dash-slow' }));
  const parent = await job({ userId: alice, state: 'running', ageSeconds: 700 });
  aliceJobs.push(parent);
  await job({ userId: alice, state: 'running', ageSeconds: 700, service: 'dash-healthy', parentId: parent });
  await job({ userId: alice, state: 'queued', ageSeconds: 700, service: 'dash-slow', parentId: parent });
  for (const age of [600, 500, 400]) await job({ userId: bob, state: 'completed', ageSeconds: age, service: 'dash-healthy' });
  await job({ userId: bob, state: 'queued', ageSeconds: 300, service: 'dash-healthy' });
  await job({ userId: adminId, state: 'completed', ageSeconds: 200, service: 'dash-healthy' });

  const file = (userId: string, kind: string, sizeBytes: number) => {
    const id = Bun.randomUUIDv7();
    return { id, userId, kind, originalName: 'a.vcf.gz', contentType: 'application/gzip', sizeBytes, sha256: '0'.repeat(64), md5: '0'.repeat(32), storageKey: `dash-${id}` };
  };
  await db.insert(storedFiles).values([file(alice, 'input', 1000), file(bob, 'result', 2000)]);
  const account = (roles: string[], isActive = true) => {
    const name = `dash${crypto.randomUUID().slice(0, 8)}`;
    return { id: Bun.randomUUIDv7(), username: name, email: `${name}@example.org`, passwordHash: 'x', firstName: 'A', lastName: 'B', roles, isActive };
  };
  await db.insert(accounts).values([account(['researcher']), account(['admin']), account(['viewer'], false)]);

  monitoring = monitoringApp();
}, 60_000);

afterAll(async () => {
  for (const server of servers) await server.stop(true);
  await registry.close();
  await rm(storageDir, { recursive: true, force: true });
  await testDb.drop();
});

const expectedServices = {
  total: 5,
  active: 4,
  healthy: 1,
  available: [
    { slug: 'dash-healthy', name: 'Dash healthy', status: 'healthy' },
    { slug: 'dash-slow', name: 'Dash slow', status: 'degraded' },
  ],
};

describe('GET /dashboard/stats for a researcher', () => {
  it('counts only their own jobs, and the active services that can take one', async () => {
    const res = await dashboard(await tokenFor(alice));
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(DashboardStatsSchema.strict().parse(body)).toEqual(body);
    expect(body.scope).toBe('user');
    expect(body.jobs.byState).toEqual({ ...zeroStates(), completed: 1, failed: 1, running: 1 });
    expect(body.jobs.total).toBe(3);
    expect(body.jobs.successRate).toBe(0.5);
    expect(body.jobs.recent.map((j: { id: string }) => j.id)).toEqual([...aliceJobs].reverse());
    expect(body.jobs.recent[0].service).toBe('federated');
    // Her own queue: the federated job's queued child, created 700 s ago.
    expect(body.jobs.oldestQueuedAgeSeconds).toBeGreaterThanOrEqual(700);
    expect(body.services).toEqual(expectedServices);
    expect(body).not.toContainKey('users');
    expect(body).not.toContainKey('storage');
    expect(body.unavailable).toEqual([]);
    expect(Date.parse(body.generatedAt)).toBeGreaterThanOrEqual(NOW);
  });

  it('stays on their own numbers when they ask for the platform', async () => {
    const body = await json(await dashboard(await tokenFor(bob), '?scope=platform'));
    expect(body.scope).toBe('user');
    expect(body.jobs.byState).toEqual({ ...zeroStates(), completed: 3, queued: 1 });
    expect(body.jobs.successRate).toBe(1);
    expect(body).not.toContainKey('users');
  });

  it('shows a viewer without jobs zeros, not the platform', async () => {
    const body = await json(await dashboard(await tokenFor(crypto.randomUUID(), ['viewer'])));
    expect(body.scope).toBe('user');
    expect(body.jobs).toEqual({ byState: zeroStates(), total: 0, successRate: null, recent: [], oldestQueuedAgeSeconds: null });
  });
});

describe('GET /dashboard/stats for an admin', () => {
  it('counts every user’s jobs, with accounts and storage', async () => {
    const res = await dashboard(await tokenFor(adminId, ['admin']));
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(DashboardStatsSchema.strict().parse(body)).toEqual(body);
    expect(body.scope).toBe('platform');
    const db = testDb.database.db;
    // Independent tallies of the same rows (other suites may share this database).
    const topLevel = await db.select({ state: jobs.state }).from(jobs).where(isNull(jobs.parentId));
    expect(body.jobs.byState).toEqual(Object.fromEntries(JOB_STATE_VALUES.map((s) => [s, topLevel.filter((r) => r.state === s).length])));
    expect(body.jobs.total).toBe(topLevel.length);
    expect(body.jobs.total).toBeGreaterThanOrEqual(8);
    const files = await db.select().from(storedFiles);
    expect(body.storage.totalFiles).toBe(files.length);
    expect(body.storage.totalBytes).toBe(files.reduce((sum, f) => sum + f.sizeBytes, 0));
    expect(body.storage.usersWithFiles).toBe(new Set(files.map((f) => f.userId)).size);
    const people = await db.select().from(accounts);
    expect(body.users.total).toBe(people.length);
    expect(body.users.active).toBe(people.filter((p) => p.isActive).length);
    expect(body.users.byRole.admin).toBe(people.filter((p) => p.isActive && p.roles.includes('admin')).length);
    expect(body.services).toEqual(expectedServices);
    expect(body.unavailable).toEqual([]);
  });

  it('shows an admin only their own jobs with ?scope=user', async () => {
    const body = await json(await dashboard(await tokenFor(adminId, ['admin']), '?scope=user'));
    expect(body.scope).toBe('user');
    expect(body.jobs.byState).toEqual({ ...zeroStates(), completed: 1 });
    expect(body).not.toContainKey('users');
    expect(body).not.toContainKey('storage');
  });
});

describe('GET /dashboard/stats with a service down', () => {
  it('leaves the jobs section null and names job-processor when it is unreachable', async () => {
    const app = monitoringApp({ jobs: await deadUrl() });
    const res = await dashboard(await tokenFor(alice), '', app);
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.jobs).toBeNull();
    expect(body.unavailable).toEqual(['job-processor']);
    expect(body.services).toEqual(expectedServices);
  });

  it('leaves each failed admin section null and still answers the rest', async () => {
    const failing = serve(() => Response.json({ status: 503, code: 'not_ready' }, { status: 503 }));
    const app = monitoringApp({ files: await deadUrl(), users: failing });
    const body = await json(await dashboard(await tokenFor(adminId, ['admin']), '', app));
    expect(body.scope).toBe('platform');
    expect(body.storage).toBeNull();
    expect(body.users).toBeNull();
    expect(body.unavailable).toEqual(['file-manager', 'user-service']);
    expect(body.jobs.total).toBeGreaterThanOrEqual(8);
  });

  it('does not wait past its timeout for a registry that never answers', async () => {
    const hanging = serve(() => new Promise<Response>(() => {}));
    const app = monitoringApp({ registry: hanging }, 300);
    const body = await json(await dashboard(await tokenFor(alice), '', app));
    expect(body.services).toBeNull();
    expect(body.unavailable).toEqual(['service-registry']);
    expect(body.jobs.total).toBe(3);
  });

  it('drops job numbers answered for the wrong scope rather than show a researcher the platform', async () => {
    // A job-processor that ignores userId and answers platform numbers.
    const wrong = serve(() => Response.json({ scope: 'platform', byState: { ...zeroStates(), completed: 99 }, total: 99, successRate: 1, recent: [], oldestQueuedAgeSeconds: null }));
    const body = await json(await dashboard(await tokenFor(alice), '', monitoringApp({ jobs: wrong })));
    expect(body.jobs).toBeNull();
    expect(body.unavailable).toEqual(['job-processor']);
  });
});

describe('GET /dashboard/stats access', () => {
  it('refuses a request without a token with 401', async () => {
    expect((await dashboard(null)).status).toBe(401);
  });

  it('refuses a service token with 403', async () => {
    const res = await dashboard(await serviceTokenFor('notification'));
    expect(res.status).toBe(403);
    expect((await json(res)).code).toBe('users_only');
  });

  it('rejects an unknown scope with 400', async () => {
    expect((await dashboard(await tokenFor(alice), '?scope=everyone')).status).toBe(400);
  });

  it('is described in the OpenAPI document', async () => {
    const doc = await json(await monitoring.request('/openapi.json'));
    expect(doc.paths['/dashboard/stats'].get).toBeDefined();
    expect(doc.components.schemas.DashboardStats).toBeDefined();
  });
});
