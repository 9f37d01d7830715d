import SwaggerParser from '@apidevtools/swagger-parser';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { parseEnv, type BaseEnv } from '@shared/config.ts';
import { createMemoryKv } from '@shared/kv-memory.ts';
import { createLogger } from '@shared/log.ts';
import type { ServiceDefinition } from '@shared/service.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SERVICES } from '../../services/catalog.ts';
import { edgeSecurity } from '../../services/api-gateway/src/app.ts';
import { createOpenApiAggregator } from '../../services/api-gateway/src/openapi-aggregate.ts';
import { mergeOpenApi, type OpenApiDocument } from '../../services/api-gateway/src/openapi-merge.ts';
import { UPSTREAM_NAMES, type UpstreamName } from '../../services/api-gateway/src/route-table.ts';
import { TEST_ENCRYPTION_KEY } from '../support/test-encryption-key.ts';
import { createTestDatabase, MIGRATIONS_DIR, type TestDatabase } from '../support/test-database.ts';
import { json } from '../support/json.ts';
import { startGateway, type Gateway } from './gateway-harness.ts';

type Server = ReturnType<typeof Bun.serve>;

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const ok = (schema: unknown) => ({ description: 'ok', content: { 'application/json': { schema } } });

/** A small service document in the kit's shape. */
function doc(title: string, paths: Record<string, unknown>, schemas: Record<string, unknown> = {}, securitySchemes: Record<string, unknown> = {}): OpenApiDocument {
  return {
    openapi: '3.1.0',
    info: { title, version: '1.0.0', description: `${title} things` },
    paths: paths as OpenApiDocument['paths'],
    components: { schemas, securitySchemes, parameters: {} },
    webhooks: {},
  };
}

const problem = { type: 'object', properties: { code: { type: 'string' } }, required: ['code'] };

const users = doc(
  'user-service',
  {
    '/auth/login': { post: { tags: ['Auth'], responses: { 200: ok(ref('Session')), 401: ok(ref('Problem')) } } },
    '/users/me': { get: { tags: ['Me'], security: [{ bearerAuth: [] }], responses: { 200: ok(ref('User')) } } },
    '/internal/service-token': { post: { security: [{ basicAuth: [] }], responses: { 200: ok(ref('ServiceToken')) } } },
    '/.well-known/jwks.json': { get: { responses: { 200: ok({ type: 'object' }) } } },
    '/health': { get: { responses: { 200: ok(ref('Liveness')) } } },
  },
  {
    Problem: problem,
    Session: { type: 'object', properties: { user: ref('User') } },
    User: { type: 'object', properties: { id: { type: 'string' } } },
    ServiceToken: { type: 'object' },
    Liveness: { type: 'object' },
  },
  { bearerAuth: { type: 'http', scheme: 'bearer' }, basicAuth: { type: 'http', scheme: 'basic' } },
);

const jobs = doc(
  'job-processor',
  {
    '/jobs': { get: { tags: ['Jobs'], responses: { 200: ok(ref('Page')), 401: ok(ref('Problem')) } } },
    '/jobs/{id}': {
      parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
      get: { tags: ['Jobs'], responses: { 200: ok(ref('User')) } },
    },
    '/metrics': { get: { responses: { 200: ok({ type: 'string' }) } } },
  },
  {
    Problem: problem,
    // Same name as user-service's User, different content.
    User: { type: 'object', properties: { jobOwner: { type: 'string' } } },
    // Same text in both services would be `Page`, but here only job-processor has it; it refers to User.
    Page: { type: 'object', properties: { items: { type: 'array', items: ref('User') } } },
  },
  { bearerAuth: { type: 'http', scheme: 'bearer' } },
);

const monitoring = doc('monitoring', {
  '/health': { get: { responses: { 200: ok({ type: 'object' }) } } },
  '/health/overall': { get: { responses: { 200: ok({ type: 'object' }) } } },
  '/dashboard/stats': { get: { responses: { 200: ok({ type: 'object' }) } } },
  '/': { get: { responses: { 200: ok({ type: 'object' }) } } },
});

const files = doc('file-manager', {
  '/files/{id}/content': {
    get: {
      parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
      responses: { 200: { description: 'bytes', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } } },
    },
  },
});

const merge = (sources: { service: UpstreamName; document: OpenApiDocument }[], missing: string[] = []) =>
  mergeOpenApi(sources, { title: 'Platform', version: '1.0.0', securityFor: edgeSecurity, missing });

describe('mergeOpenApi', () => {
  const merged = merge([
    { service: 'user-service', document: users },
    { service: 'job-processor', document: jobs },
    { service: 'monitoring', document: monitoring },
    { service: 'file-manager', document: files },
  ]);

  it('moves every path to its public /api form and drops internal, operational and unrouted ones', () => {
    expect(Object.keys(merged.paths!).sort()).toEqual(
      ['/api/auth/login', '/api/dashboard/stats', '/api/files/{id}/content', '/api/jobs', '/api/jobs/{id}', '/api/monitoring', '/api/monitoring/health/overall', '/api/users/me'].sort(),
    );
  });

  it('keeps one copy of a component that is the same everywhere and prefixes same-named ones that differ', () => {
    const schemas = merged.components!.schemas!;
    expect(schemas.Problem).toEqual(problem);
    expect(schemas['user-service.User']).toEqual({ type: 'object', properties: { id: { type: 'string' } } });
    expect(schemas['job-processor.User']).toEqual({ type: 'object', properties: { jobOwner: { type: 'string' } } });
    expect(schemas.User).toBeUndefined();
    // References follow the rename, in paths and inside other components.
    const paths = merged.paths as any;
    expect(paths['/api/users/me'].get.responses[200].content['application/json'].schema).toEqual(ref('user-service.User'));
    expect(paths['/api/jobs/{id}'].get.responses[200].content['application/json'].schema).toEqual(ref('job-processor.User'));
    expect((schemas.Page as any).properties.items.items).toEqual(ref('job-processor.User'));
    expect((schemas.Session as any).properties.user).toEqual(ref('user-service.User'));
  });

  it('drops components only dropped paths used', () => {
    expect(merged.components!.schemas!.ServiceToken).toBeUndefined();
    expect(merged.components!.schemas!.Liveness).toBeUndefined();
    expect(merged.components!.parameters).toBeUndefined();
  });

  it('declares one bearerAuth scheme and the edge’s security per operation', () => {
    expect(Object.keys(merged.components!.securitySchemes!)).toEqual(['bearerAuth']);
    expect(merged.security).toEqual([{ bearerAuth: [] }]);
    const paths = merged.paths as any;
    expect(paths['/api/auth/login'].post.security).toEqual([]);
    expect(paths['/api/jobs'].get.security).toEqual([{ bearerAuth: [] }]);
    expect(paths['/api/files/{id}/content'].get.security).toEqual([{ bearerAuth: [] }, {}]);
  });

  it('tags every operation with its service and lists one tag per service', () => {
    const paths = merged.paths as any;
    expect(paths['/api/users/me'].get.tags).toEqual(['user-service']);
    expect(paths['/api/jobs/{id}'].get.tags).toEqual(['job-processor']);
    expect(merged.tags).toEqual([
      { name: 'user-service', description: 'user-service things' },
      { name: 'job-processor', description: 'job-processor things' },
      { name: 'monitoring', description: 'monitoring things' },
      { name: 'file-manager', description: 'file-manager things' },
    ]);
  });

  it('serves from the gateway root and names missing services', async () => {
    expect(merged.servers).toEqual([{ url: '/' }]);
    expect(merged['x-missing-services']).toBeUndefined();
    const partial = merge([{ service: 'job-processor', document: jobs }], ['user-service']);
    expect(partial['x-missing-services']).toEqual(['user-service']);
    expect(partial.components!.schemas!.User).toEqual({ type: 'object', properties: { jobOwner: { type: 'string' } } });
  });

  it('produces a document the OpenAPI validator accepts', async () => {
    await SwaggerParser.validate(structuredClone(merged) as never);
  });
});

describe('the merged document aggregator', () => {
  const served = new Map<UpstreamName, { status: number; body: string; fetches: number }>();
  let server: Server;
  let clock = 0;
  const aggregatorFor = () =>
    createOpenApiAggregator({
      upstreams: Object.fromEntries(UPSTREAM_NAMES.map((name) => [name, `http://127.0.0.1:${server.port}/${name}`])) as Record<UpstreamName, string>,
      timeoutMs: 500,
      refreshMs: 60_000,
      retryMs: 5_000,
      logger: createLogger({ level: 'silent' }),
      now: () => clock,
      merge: { title: 'Platform', version: '1.0.0', securityFor: edgeSecurity },
    });
  const setDoc = (service: UpstreamName, document: OpenApiDocument | null) => {
    const fetches = served.get(service)?.fetches ?? 0;
    served.set(service, document ? { status: 200, body: JSON.stringify(document), fetches } : { status: 503, body: 'down', fetches });
  };

  beforeAll(() => {
    server = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch(req) {
        const service = new URL(req.url).pathname.split('/')[1] as UpstreamName;
        const entry = served.get(service);
        if (!entry) return new Response('no', { status: 404 });
        entry.fetches += 1;
        return new Response(entry.body, { status: entry.status, headers: { 'content-type': 'application/json' } });
      },
    });
  });
  afterAll(() => server.stop(true));

  it('leaves out a service that never answered, names it, and adds it once it answers', async () => {
    for (const name of UPSTREAM_NAMES) setDoc(name, doc(name, {}));
    setDoc('user-service', null);
    setDoc('job-processor', jobs);
    const aggregator = aggregatorFor();
    const first = JSON.parse((await aggregator.document()).json);
    expect(first['x-missing-services']).toEqual(['user-service']);
    expect(first.paths['/api/auth/login']).toBeUndefined();

    setDoc('user-service', users);
    const second = JSON.parse((await aggregator.refresh()).json);
    expect(second['x-missing-services']).toBeUndefined();
    expect(second.paths['/api/auth/login']).toBeDefined();
  });

  it('keeps the last good document of a service that goes down', async () => {
    for (const name of UPSTREAM_NAMES) setDoc(name, doc(name, {}));
    setDoc('job-processor', jobs);
    const aggregator = aggregatorFor();
    await aggregator.document();
    setDoc('job-processor', null);
    const after = JSON.parse((await aggregator.refresh()).json);
    expect(after.paths['/api/jobs']).toBeDefined();
    expect(after['x-missing-services']).toBeUndefined();
  });

  it('rebuilds only when a document changed, and refreshes a stale one in the background', async () => {
    for (const name of UPSTREAM_NAMES) setDoc(name, doc(name, {}));
    setDoc('job-processor', jobs);
    clock = 0;
    const aggregator = aggregatorFor();
    const first = await aggregator.document();
    expect(await aggregator.refresh()).toBe(first);

    const changed = structuredClone(jobs);
    changed.paths!['/jobs/{id}/cancel'] = { post: { responses: { 202: ok({ type: 'object' }) } } };
    setDoc('job-processor', changed);
    // Still fresh: no fetch, the same document.
    const fetchesBefore = served.get('job-processor')!.fetches;
    expect(await aggregator.document()).toBe(first);
    expect(served.get('job-processor')!.fetches).toBe(fetchesBefore);

    // Stale: served as is while the refresh runs, then the new one.
    clock += 60_000;
    expect(await aggregator.document()).toBe(first);
    const next = await aggregator.refresh();
    expect(next.etag).not.toBe(first.etag);
    expect(JSON.parse(next.json).paths['/api/jobs/{id}/cancel']).toBeDefined();
    expect(await aggregator.document()).toBe(next);
  });
});

describe('GET /openapi.json on the gateway, merged from the six real services', () => {
  const logger = createLogger({ level: 'silent' });
  let testDb: TestDatabase;
  let dataDir: string;
  const servers: Server[] = [];
  let gateway: Gateway;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    dataDir = await mkdtemp(join(tmpdir(), 'fip-gateway-openapi-'));
    const upstreams: Partial<Record<UpstreamName, string>> = {};
    for (const definition of SERVICES.filter((d) => d.schema !== null) as ServiceDefinition[]) {
      const env = parseEnv(definition.envSchema, {
        HOST: '127.0.0.1',
        DATA_DIR: dataDir,
        MIGRATIONS_DIR,
        ENCRYPTION_KEYS: `${TEST_ENCRYPTION_KEY.id}:${Buffer.from(TEST_ENCRYPTION_KEY.key).toString('base64')}`,
      }) as BaseEnv & { PORT: number };
      const built = await definition.build(env as never, { database: testDb.database, kv: createMemoryKv(), logger } as never);
      const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: (request, srv) => built.app.fetch(request, srv) });
      servers.push(server);
      upstreams[definition.name as UpstreamName] = `http://127.0.0.1:${server.port}`;
    }
    gateway = startGateway({ base: 'http://127.0.0.1:1', upstreams, kv: createMemoryKv() });
  }, 60_000);

  afterAll(async () => {
    gateway?.stop();
    for (const server of servers) server.stop(true);
    await testDb?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('validates with swagger-parser', async () => {
    const res = await fetch(`${gateway.url}/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('application/json');
    const document = await json(res);
    expect(document.openapi).toBe('3.1.0');
    await SwaggerParser.validate(structuredClone(document));
  });

  it('holds the public API at its /api paths, with the jobs and files operations, and nothing internal', async () => {
    const document = await json(await fetch(`${gateway.url}/openapi.json`));
    const paths = Object.keys(document.paths);
    for (const expected of ['/api/auth/login', '/api/users/me', '/api/services', '/api/panels', '/api/ga4gh/registry/v1/services', '/api/jobs', '/api/jobs/{id}', '/api/files', '/api/files/{id}/content', '/health']) {
      expect(paths).toContain(expected);
    }
    expect(paths.filter((p) => p.includes('/internal'))).toEqual([]);
    for (const operational of ['/api/health', '/api/ready', '/api/metrics', '/api/service-info', '/api/openapi.json', '/openapi.json']) {
      expect(paths).not.toContain(operational);
    }
    expect(paths.every((p) => p.startsWith('/api/') || ['/health', '/ready', '/metrics', '/service-info'].includes(p))).toBe(true);
    expect(document.paths['/api/jobs'].post.tags).toEqual(['job-processor']);
    expect(document.paths['/api/auth/login'].post.security).toEqual([]);
    expect(document.paths['/api/jobs'].get.security).toEqual([{ bearerAuth: [] }]);
    expect(Object.keys(document.components.securitySchemes)).toEqual(['bearerAuth']);
    expect(document.servers).toEqual([{ url: '/' }]);
    expect(document['x-missing-services']).toBeUndefined();
    // The kit's shared schemas are identical in every service, so they appear once, unprefixed.
    expect(document.components.schemas.Problem).toBeDefined();
    expect(Object.keys(document.components.schemas).filter((name) => name.endsWith('.Problem'))).toEqual([]);
  });

  it('answers a matching If-None-Match with 304', async () => {
    const first = await fetch(`${gateway.url}/openapi.json`);
    const etag = first.headers.get('etag')!;
    expect(etag).toBeTruthy();
    const again = await fetch(`${gateway.url}/openapi.json`, { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
  });
});
