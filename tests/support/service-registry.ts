/**
 * service-registry built in-process on real dependencies: a test database with every schema migrated,
 * the KV from REDIS_URL (or in memory) for the catalogue cache, the real prober and sync pointed at
 * whatever the test's catalogue names (the local fakes), and real token verification.
 */
import { healthChecks, outbox, panels, serviceHealth, services } from '@db/schema/registry.ts';
import type { ServiceApp } from '@shared/app.ts';
import type { Kv } from '@shared/kv.ts';
import { createKv } from '@shared/kv-factory.ts';
import { createLogger } from '@shared/log.ts';
import { outboundPolicy } from '@shared/outbound.ts';
import { createApp } from '../../services/service-registry/src/app.ts';
import { createCatalogue, type Catalogue } from '../../services/service-registry/src/catalogue-store.ts';
import { createHealthProber } from '../../services/service-registry/src/health-prober.ts';
import { syncService } from '../../services/service-registry/src/panel-sync.ts';
import { createTestDatabase, migrateAll, type TestDatabase } from './test-database.ts';
import { testAuthenticator, tokenFor } from './test-identity.ts';

export interface RegistryHarness {
  app: ServiceApp;
  testDb: TestDatabase;
  kv: Kv;
  catalogue: Catalogue;
  prober: ReturnType<typeof createHealthProber>;
  tokens: { admin: string; researcher: string; viewer: string };
  adminId: string;
  /** A JSON request with a bearer token. */
  call(method: string, path: string, token: string | null, body?: unknown): Promise<Response>;
  /** Removes every registry row (tests share one PGlite per process). */
  clear(): Promise<void>;
  close(): Promise<void>;
}

export async function createRegistryHarness(options: { externalCalls?: boolean; operatorTokens?: Record<string, string>; probeTimeoutMs?: number } = {}): Promise<RegistryHarness> {
  const testDb = await createTestDatabase();
  await migrateAll(testDb.database);
  const kv = await createKv({ url: process.env.REDIS_URL });
  const db = testDb.database.db;
  const logger = createLogger({ level: 'silent' });
  const policy = outboundPolicy(options.externalCalls ?? false);
  // Its own cache key: test files share one Redis but not one database.
  const catalogue = createCatalogue({ db, kv, cacheTtlMs: 60_000, cacheKey: `registry:catalogue:test:${crypto.randomUUID()}` });
  const operatorTokens = options.operatorTokens ?? {};
  const prober = createHealthProber({
    db,
    logger,
    policy,
    timeoutMs: options.probeTimeoutMs ?? 2_000,
    intervalMs: 60_000,
    historyRetentionMs: 30 * 86_400_000,
    operatorToken: (service) => operatorTokens[service.slug],
    onStatusChange: () => catalogue.invalidate(),
  });
  const adminId = crypto.randomUUID();
  const app = createApp({
    logger,
    readyTimeoutMs: 1000,
    organization: { name: 'Test Org', url: 'https://example.org' },
    authenticator: testAuthenticator(kv),
    database: testDb.database,
    catalogue,
    policy,
    probe: async (id) => {
      await prober.probeOne(id);
      await catalogue.invalidate();
    },
    sync: (service) => syncService({ db, policy, timeoutMs: options.probeTimeoutMs ?? 2_000 }, service, operatorTokens[service.slug] ?? null),
    platform: [{ name: 'service-registry', url: 'http://127.0.0.1:8002', version: '0.2.0' }],
  });
  const tokens = {
    admin: await tokenFor(adminId, ['admin']),
    researcher: await tokenFor(crypto.randomUUID(), ['researcher']),
    viewer: await tokenFor(crypto.randomUUID(), ['viewer']),
  };
  return {
    app,
    testDb,
    kv,
    catalogue,
    prober,
    tokens,
    adminId,
    async call(method, path, token, body) {
      const headers: Record<string, string> = {};
      if (token) headers.authorization = `Bearer ${token}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      return app.request(path, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
    },
    async clear() {
      await db.delete(outbox);
      await db.delete(healthChecks);
      await db.delete(serviceHealth);
      await db.delete(panels);
      await db.delete(services);
      await catalogue.invalidate();
    },
    async close() {
      await prober.stop();
      await kv.close();
      await testDb.drop();
    },
  };
}
