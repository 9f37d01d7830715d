/**
 * The seven services as built by their definitions: each serves the kit's endpoints, its `/ready`
 * runs real checks (503 naming the database when it is unreachable), and the gateway routes to
 * the others and aggregates their readiness over real HTTP.
 */
import SwaggerParser from '@apidevtools/swagger-parser';
import { parseEnv, SERVICE_URL_VARIABLES, type BaseEnv } from '@shared/config.ts';
import { openDatabase, type Database } from '@shared/db.ts';
import { createMemoryKv } from '@shared/kv-memory.ts';
import { createLogger } from '@shared/log.ts';
import { startService, type RunningService } from '@shared/serve.ts';
import type { ServiceDefinition } from '@shared/service.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SERVICES } from '../../services/catalog.ts';
import { secretVariable } from '../../services/user-service/src/service.ts';
import { randomToken } from '@shared/token-hash.ts';
import { TEST_ENCRYPTION_KEY } from '../support/test-encryption-key.ts';
import { createTestDatabase, MIGRATIONS_DIR, UNREACHABLE_DATABASE_URL, type TestDatabase } from '../support/test-database.ts';
import { json } from '../support/json.ts';

const logger = createLogger({ level: 'silent' });
let testDb: TestDatabase;
let dataDir: string;

function envFor(definition: ServiceDefinition, extra: Record<string, string> = {}) {
  return parseEnv(definition.envSchema, {
    HOST: '127.0.0.1',
    PORT: '0',
    DATA_DIR: dataDir,
    MIGRATIONS_DIR,
    READY_TIMEOUT_MS: '1500',
    ENCRYPTION_KEYS: `${TEST_ENCRYPTION_KEY.id}:${Buffer.from(TEST_ENCRYPTION_KEY.key).toString('base64')}`,
    ...extra,
  }) as BaseEnv & { PORT: number };
}

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
  const running: RunningService[] = [];
  let gateway: RunningService;
  const upstreamEnv: Record<string, string> = {};

  beforeAll(async () => {
    const kv = createMemoryKv();
    const secrets = new Map(SERVICES.filter((d) => d.name !== 'user-service').map((d) => [d.name, randomToken(24)]));
    // user-service comes first among the database services, so the others can be pointed at it.
    for (const definition of SERVICES.filter((d) => d.schema !== null)) {
      const extra: Record<string, string> =
        definition.name === 'user-service'
          ? Object.fromEntries([...secrets].map(([name, secret]) => [secretVariable(name), secret]))
          : { SERVICE_SECRET: secrets.get(definition.name)!, USER_SERVICE_URL: upstreamEnv.USER_SERVICE_URL! };
      const service = await startService(definition, { env: envFor(definition, extra), kv, logger, database: testDb.database });
      running.push(service);
      upstreamEnv[SERVICE_URL_VARIABLES[definition.name]!] = service.url;
    }
    const gatewayDefinition = SERVICES.find((d) => d.name === 'api-gateway')!;
    // The gateway verifies tokens itself, so it needs its own secret for API-token introspection.
    gateway = await startService(gatewayDefinition, {
      env: envFor(gatewayDefinition, { ...upstreamEnv, HEALTH_TIMEOUT_MS: '500', SERVICE_SECRET: secrets.get('api-gateway')! }),
      kv,
      logger,
    });
  }, 60_000);

  /** Registers and signs in a user through the gateway; resolves to an access token. */
  async function signIn(username: string): Promise<string> {
    const post = (path: string, body: unknown) =>
      fetch(`${gateway.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const password = 'Edge-Checked-Passphrase-8';
    expect((await post('/api/auth/register', { username, email: `${username}@example.org`, password, firstName: 'G', lastName: 'W' })).status).toBe(201);
    const login = await post('/api/auth/login', { login: username, password });
    expect(login.status).toBe(200);
    return (await json(login)).accessToken;
  }

  afterAll(async () => {
    await Promise.all([gateway, ...running].map((s) => s?.stop(100)));
  });

  it('reports every service healthy in the original /health shape', async () => {
    const res = await fetch(`${gateway.url}/health`);
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
    const token = await signIn('monitor-reader');
    expect((await fetch(`${gateway.url}/api/monitoring/health`)).status).toBe(401);
    const res = await fetch(`${gateway.url}/api/monitoring/health`, { headers: { 'x-request-id': 'gw-test-1', authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ status: 'healthy', service: 'monitoring' });
    expect(res.headers.get('x-request-id')).toBe('gw-test-1');
  });

  it('authenticates across services: job-processor accepts an access token and an API token issued by user-service', async () => {
    const post = (path: string, body: unknown, token?: string) =>
      fetch(`${gateway.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(body),
      });
    const password = 'Cross-Service-Passphrase-9';
    expect((await post('/api/auth/register', { username: 'crossy', email: 'crossy@example.org', password, firstName: 'C', lastName: 'S' })).status).toBe(201);
    const { accessToken } = await json(await post('/api/auth/login', { login: 'crossy', password }));
    const { token: apiToken } = await json(await post('/api/users/me/api-tokens', { name: 'script' }, accessToken));

    const anonymous = await fetch(`${gateway.url}/api/jobs`);
    expect(anonymous.status).toBe(401);
    for (const token of [accessToken, apiToken]) {
      // Authenticated as the user, whatever identity header the client sends: their (empty) job list.
      const res = await fetch(`${gateway.url}/api/jobs`, { headers: { authorization: `Bearer ${token}`, 'x-user-id': 'someone-else' } });
      expect({ status: res.status, body: await json(res) }).toEqual({ status: 200, body: { items: [], nextCursor: null } });
    }
    const forged = await fetch(`${gateway.url}/api/jobs`, { headers: { authorization: `Bearer ${accessToken.slice(0, -4)}AAAA` } });
    expect(forged.status).toBe(401);
  });

  it('serves the catalogue through the gateway to a signed-in user, and keeps its writes for admins', async () => {
    const post = (path: string, body: unknown, token?: string) =>
      fetch(`${gateway.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(body),
      });
    const password = 'Catalogue-Reader-Passphrase-5';
    await post('/api/auth/register', { username: 'cataloguer', email: 'cataloguer@example.org', password, firstName: 'C', lastName: 'R' });
    const { accessToken } = await json(await post('/api/auth/login', { login: 'cataloguer', password }));
    expect((await fetch(`${gateway.url}/api/services`)).status).toBe(401);
    const auth = { authorization: `Bearer ${accessToken}` };
    const list = await fetch(`${gateway.url}/api/services?limit=100`, { headers: auth });
    expect(list.status).toBe(200);
    const { items } = await json(list);
    // The initial catalogue was loaded at start (this database's catalogue may hold other tests' rows too).
    expect(items.length).toBeGreaterThan(0);
    const info = await json(await fetch(`${gateway.url}/api/ga4gh/registry/v1/service-info`, { headers: auth }));
    expect(info.type).toEqual({ group: 'org.ga4gh', artifact: 'service-registry', version: '1.0.0' });
    const write = await post('/api/services', { slug: 'not-mine', name: 'x', protocol: 'cloudgene', baseUrl: 'https://x.example.org', supportedBuilds: ['hg19'] }, accessToken);
    expect(write.status).toBe(403);
  });

  it('streams an upload and a ranged download through the gateway to file-manager', async () => {
    const post = (path: string, body: unknown) =>
      fetch(`${gateway.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const password = 'Gateway-Upload-Passphrase-3';
    await post('/api/auth/register', { username: 'uploader', email: 'uploader@example.org', password, firstName: 'U', lastName: 'P' });
    const { accessToken } = await json(await post('/api/auth/login', { login: 'uploader', password }));
    const bytes = crypto.getRandomValues(new Uint8Array(1024 * 1024));
    const res = await fetch(`${gateway.url}/api/files?name=through-gateway.bin`, {
      method: 'POST',
      headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/octet-stream' },
      body: bytes,
    });
    expect(res.status).toBe(201);
    const file = await json(res);
    expect(file.sha256).toBe(new Bun.CryptoHasher('sha256').update(bytes).digest('hex'));
    const ranged = await fetch(`${gateway.url}/api/files/${file.id}/content`, {
      headers: { authorization: `Bearer ${accessToken}`, range: 'bytes=1000-1999' },
    });
    expect(ranged.status).toBe(206);
    expect(new Uint8Array(await ranged.arrayBuffer())).toEqual(bytes.slice(1000, 2000));
  });

  it('answers an unknown /api path with a 404 problem instead of a default route', async () => {
    const res = await fetch(`${gateway.url}/api/nowhere/at/all`);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
  });

  it('reports degraded with 503 and names the service once one stops', async () => {
    const monitoring = running.find((s) => s.name === 'monitoring')!;
    await monitoring.stop(100);
    const res = await fetch(`${gateway.url}/health`);
    expect(res.status).toBe(503);
    const body = await json(res);
    expect(body.status).toBe('degraded');
    expect(body.services.monitoring).toBe('unreachable');
    expect(body.services['user-service']).toBe('healthy');
    const proxied = await fetch(`${gateway.url}/api/monitoring/health`, { headers: { authorization: `Bearer ${await signIn('degraded-reader')}` } });
    expect(proxied.status).toBe(502);
    expect((await json(proxied)).service).toBe('monitoring');
  });
});
