/**
 * The seven services as built by their definitions: each serves the kit's endpoints, its `/ready`
 * runs real checks (503 naming the database when it is unreachable), and the gateway routes to
 * the others and aggregates their readiness over real HTTP.
 */
import SwaggerParser from '@apidevtools/swagger-parser';
import { parseEnv, type BaseEnv } from '@shared/config.ts';
import { openDatabase, type Database } from '@shared/db.ts';
import { createMemoryKv } from '@shared/kv-memory.ts';
import { createLogger } from '@shared/log.ts';
import type { ServiceDefinition } from '@shared/service.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SERVICES } from '../../services/catalog.ts';
import { readCatalogueFile } from '../../services/service-registry/src/catalogue-seed.ts';
import { definition as registry } from '../../services/service-registry/src/service.ts';
import { startPlatform, testServiceEnv, type Platform } from '../support/platform.ts';
import { createTestDatabase, MIGRATIONS_DIR, UNREACHABLE_DATABASE_URL, type TestDatabase } from '../support/test-database.ts';
import { json } from '../support/json.ts';

const logger = createLogger({ level: 'silent' });
let testDb: TestDatabase;
let dataDir: string;

const envFor = (definition: ServiceDefinition) => testServiceEnv(definition, dataDir);

async function buildApp(definition: ServiceDefinition, database: Database) {
  const env = envFor(definition);
  const infra = { database, kv: createMemoryKv(), logger };
  return (await definition.build(env, infra)).app;
}

beforeAll(async () => {
  testDb = await createTestDatabase();
  dataDir = await mkdtemp(join(tmpdir(), 'fip-services-'));
}, 60_000);

afterAll(async () => {
  await testDb.drop();
  await rm(dataDir, { recursive: true, force: true });
});

describe('every service', () => {
  for (const definition of SERVICES.filter((d) => d.schema !== null)) {
    describe(definition.name, () => {
      it('answers /health with its name', async () => {
        const app = await buildApp(definition, testDb.database);
        const res = await app.request('/health');
        expect(res.status).toBe(200);
        expect(await json(res)).toEqual({ status: 'healthy', service: definition.name });
      });

      it('is ready when its database answers, listing each check', async () => {
        const app = await buildApp(definition, testDb.database);
        const res = await app.request('/ready');
        const body = await json(res);
        expect(res.status).toBe(200);
        expect(body.checks.database.status).toBe('ok');
      });

      it('answers /ready 503 naming the database when it is unreachable', async () => {
        const unreachable = await openDatabase({ url: UNREACHABLE_DATABASE_URL, connectTimeoutSeconds: 1 });
        try {
          const app = await buildApp(definition, unreachable);
          const res = await app.request('/ready');
          expect(res.status).toBe(503);
          const body = await json(res);
          expect(body.code).toBe('not_ready');
          expect(body.failed).toContain('database');
          expect(body.checks.database.status).toBe('failed');
        } finally {
          await unreachable.close();
        }
      });

      it('serves a valid OpenAPI 3.1 document and GA4GH service-info', async () => {
        const app = await buildApp(definition, testDb.database);
        const doc = await json(await app.request('/openapi.json'));
        expect(doc.openapi).toBe('3.1.0');
        expect(doc.info.title).toBe(definition.name);
        await SwaggerParser.validate(structuredClone(doc));
        const info = await json(await app.request('/service-info'));
        expect(info.id).toBe(`org.federated-imputation.${definition.name}`);
      });
    });
  }

  it('file-manager is not ready when its storage directory cannot be written', async () => {
    const definition = SERVICES.find((d) => d.name === 'file-manager')!;
    const env = parseEnv(definition.envSchema, { STORAGE_DIR: '/proc/fip-not-writable', MIGRATIONS_DIR, READY_TIMEOUT_MS: '1500' }) as BaseEnv & {
      PORT: number;
    };
    if (definition.schema === null) throw new Error('file-manager owns a schema');
    const { app } = await definition.build(env, { database: testDb.database, kv: createMemoryKv(), logger });
    const res = await app.request('/ready');
    expect(res.status).toBe(503);
    expect((await json(res)).failed).toEqual(['storage']);
  });
});

describe('api-gateway over the six running services', () => {
  let platform: Platform;

  beforeAll(async () => {
    platform = await startPlatform({ gatewayEnv: { HEALTH_TIMEOUT_MS: '500' } });
  }, 60_000);

  afterAll(async () => {
    await platform?.stop();
  }, 30_000);

  const post = (path: string, body: unknown, token?: string) =>
    fetch(`${platform.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });

  it('reports every service healthy in the original /health shape', async () => {
    const res = await fetch(`${platform.url}/health`);
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({
      status: 'healthy',
      service: 'api-gateway',
      services: {
        'user-service': 'healthy',
        'service-registry': 'healthy',
        'job-processor': 'healthy',
        'file-manager': 'healthy',
        notification: 'healthy',
        monitoring: 'healthy',
      },
    });
  });

  it('routes /api/monitoring/* to monitoring with the prefix removed', async () => {
    const { accessToken } = await platform.signIn('monitor-reader');
    expect((await fetch(`${platform.url}/api/monitoring/health`)).status).toBe(401);
    const res = await fetch(`${platform.url}/api/monitoring/health`, { headers: { 'x-request-id': 'gw-test-1', authorization: `Bearer ${accessToken}` } });
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ status: 'healthy', service: 'monitoring' });
    expect(res.headers.get('x-request-id')).toBe('gw-test-1');
  });

  it('authenticates across services: job-processor accepts an access token and an API token issued by user-service', async () => {
    const { accessToken } = await platform.signIn('crossy');
    const issued = await post('/api/users/me/api-tokens', { name: 'script' }, accessToken);
    expect(issued.status).toBe(201);
    const { token: apiToken } = await json(issued);

    const anonymous = await fetch(`${platform.url}/api/jobs`);
    expect(anonymous.status).toBe(401);
    for (const token of [accessToken, apiToken]) {
      // Authenticated as the user, whatever identity header the client sends: their (empty) job list.
      const res = await fetch(`${platform.url}/api/jobs`, { headers: { authorization: `Bearer ${token}`, 'x-user-id': 'someone-else' } });
      expect({ status: res.status, body: await json(res) }).toEqual({ status: 200, body: { items: [], nextCursor: null } });
    }
    const forged = await fetch(`${platform.url}/api/jobs`, { headers: { authorization: `Bearer ${accessToken.slice(0, -4)}AAAA` } });
    expect(forged.status).toBe(401);
  });

  it('serves the catalogue through the gateway to a signed-in user, and keeps its writes for admins', async () => {
    const { accessToken } = await platform.signIn('cataloguer');
    expect((await fetch(`${platform.url}/api/services`)).status).toBe(401);
    const auth = { authorization: `Bearer ${accessToken}` };
    const list = await fetch(`${platform.url}/api/services?limit=100`, { headers: auth });
    expect(list.status).toBe(200);
    const { items } = await json(list);
    if (process.env.DATABASE_URL) {
      // On PostgreSQL the platform's database is its own: the catalogue is exactly the initial one loaded at start.
      const initial = await readCatalogueFile(parseEnv(registry.envSchema, { MIGRATIONS_DIR }).CATALOGUE_FILE);
      expect(items.map((s: { slug: string }) => s.slug).sort()).toEqual(initial.services.map((s) => s.slug).sort());
    } else {
      // The embedded database is shared with every other test file, whose catalogue rows came first (so the
      // initial catalogue is not loaded): the gateway serves what is there.
      expect(items.length).toBeGreaterThan(0);
    }
    const info = await json(await fetch(`${platform.url}/api/ga4gh/registry/v1/service-info`, { headers: auth }));
    expect(info.type).toEqual({ group: 'org.ga4gh', artifact: 'service-registry', version: '1.0.0' });
    const write = await post('/api/services', { slug: 'not-mine', name: 'x', protocol: 'cloudgene', baseUrl: 'https://x.example.org', supportedBuilds: ['hg19'] }, accessToken);
    expect(write.status).toBe(403);
  });

  it('streams an upload and a ranged download through the gateway to file-manager', async () => {
    const { accessToken } = await platform.signIn('uploader');
    const bytes = crypto.getRandomValues(new Uint8Array(1024 * 1024));
    const res = await fetch(`${platform.url}/api/files?name=through-gateway.bin`, {
      method: 'POST',
      headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/octet-stream' },
      body: bytes,
    });
    expect(res.status).toBe(201);
    const file = await json(res);
    expect(file.sha256).toBe(new Bun.CryptoHasher('sha256').update(bytes).digest('hex'));
    const ranged = await fetch(`${platform.url}/api/files/${file.id}/content`, {
      headers: { authorization: `Bearer ${accessToken}`, range: 'bytes=1000-1999' },
    });
    expect(ranged.status).toBe(206);
    expect(new Uint8Array(await ranged.arrayBuffer())).toEqual(bytes.slice(1000, 2000));
  });

  it('answers an unknown /api path with a 404 problem instead of a default route', async () => {
    const res = await fetch(`${platform.url}/api/nowhere/at/all`);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
  });

  it('reports degraded with 503 and names the service once one stops', async () => {
    const monitoring = platform.services.find((s) => s.name === 'monitoring')!;
    await monitoring.stop(100);
    const res = await fetch(`${platform.url}/health`);
    expect(res.status).toBe(503);
    const body = await json(res);
    expect(body.status).toBe('degraded');
    expect(body.services.monitoring).toBe('unreachable');
    expect(body.services['user-service']).toBe('healthy');
    const proxied = await fetch(`${platform.url}/api/monitoring/health`, { headers: { authorization: `Bearer ${(await platform.signIn('degraded-reader')).accessToken}` } });
    expect(proxied.status).toBe(502);
    expect((await json(proxied)).service).toBe('monitoring');
  });
});
