import { createRoute, z } from '@hono/zod-openapi';
import SwaggerParser from '@apidevtools/swagger-parser';
import { createServiceApp, type ServiceApp } from '@shared/app.ts';
import { HttpProblem } from '@shared/errors.ts';
import { createLogger } from '@shared/log.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { describe, expect, it } from 'bun:test';
import { json } from '../support/json.ts';

function makeApp(readiness: Parameters<typeof createServiceApp>[0]['readiness'] = []) {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'debug', sink: (line) => lines.push(JSON.parse(line)) });
  const app: ServiceApp = createServiceApp({
    name: 'demo-service',
    version: '1.2.3',
    description: 'A service for testing the kit',
    logger,
    readiness,
    readyTimeoutMs: 200,
  });
  app.openapi(
    createRoute({
      method: 'post',
      path: '/things/{id}',
      request: {
        params: z.object({ id: z.uuid() }),
        body: { required: true, content: { 'application/json': { schema: z.object({ name: z.string().min(1), size: z.number().int() }) } } },
      },
      responses: {
        201: { description: 'Created.', content: { 'application/json': { schema: z.object({ id: z.string(), name: z.string() }) } } },
        ...problemResponses(400, 422),
      },
    }),
    (c) => c.json({ id: c.req.valid('param').id, name: c.req.valid('json').name }, 201),
  );
  app.get('/boom', () => {
    throw new Error('secret connection string postgres://admin:hunter2@db');
  });
  app.get('/db-error', () => {
    // The shape drizzle throws: the query and its parameters in the message, the driver error as cause.
    throw Object.assign(new Error('Failed query: update t set secret = $1\nparams: hunter2-token'), {
      cause: Object.assign(new Error('relation "t" does not exist'), { code: '42P01' }),
    });
  });
  app.get('/nul-text', () => {
    throw Object.assign(new Error('Failed query: insert into t values ($1)\nparams: x\u0000y'), {
      cause: Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), { code: '22021' }),
    });
  });
  app.get('/db-refused', () => {
    // What drizzle throws when postgres.js cannot connect (the database is restarting).
    throw Object.assign(new Error('Failed query: select 1'), { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }) });
  });
  app.get('/db-full', () => {
    throw Object.assign(new Error('Failed query: select 1'), { cause: Object.assign(new Error('sorry, too many clients already'), { code: '53300' }) });
  });
  app.get('/conflict', () => {
    throw new HttpProblem(409, 'already_exists', 'A thing with that name exists.');
  });
  return { app, lines };
}

const ID = '0190f0f0-0000-7000-8000-000000000001';

describe('createServiceApp request ids', () => {
  it('echoes a well-formed X-Request-ID and logs it on the access line', async () => {
    const { app, lines } = makeApp();
    const res = await app.request('/health', { headers: { 'X-Request-ID': 'abc-123' } });
    expect(res.headers.get('x-request-id')).toBe('abc-123');
    const access = lines.find((l) => l.msg === 'request');
    expect(access).toMatchObject({ requestId: 'abc-123', method: 'GET', path: '/health', route: '/health', status: 200 });
    expect(typeof access?.durationMs).toBe('number');
  });

  it('generates a UUIDv7 when none or a malformed one is sent', async () => {
    const { app } = makeApp();
    for (const headers of [{}, { 'X-Request-ID': 'bad id with spaces\n' }] as Record<string, string>[]) {
      const res = await app.request('/health', { headers });
      expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    }
  });

  it('writes exactly one access-log line per request', async () => {
    const { app, lines } = makeApp();
    await app.request(`/things/${ID}`, { method: 'POST', body: JSON.stringify({ name: 'a', size: 1 }), headers: { 'content-type': 'application/json' } });
    expect(lines.filter((l) => l.msg === 'request')).toHaveLength(1);
  });
});

describe('createServiceApp problem responses', () => {
  it('answers an unknown route with a 404 problem', async () => {
    const { app } = makeApp();
    const res = await app.request('/nope');
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    const body = await json(res);
    expect(body).toMatchObject({ status: 404, code: 'route_not_found', title: 'Not Found', instance: '/nope' });
    expect(body.requestId).toBe(res.headers.get('x-request-id'));
  });

  it('answers malformed JSON with a 400 problem', async () => {
    const { app } = makeApp();
    const res = await app.request(`/things/${ID}`, { method: 'POST', body: '{"name":', headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(400);
    expect((await json(res)).code).toBe('malformed_request');
  });

  it('answers a body that fails the schema with 422 and errors[] naming the fields', async () => {
    const { app } = makeApp();
    const res = await app.request(`/things/${ID}`, { method: 'POST', body: JSON.stringify({ name: '', size: 'big' }), headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(422);
    const body = await json(res);
    expect(body.code).toBe('validation_failed');
    expect(body.errors.map((e: { path: string }) => e.path).sort()).toEqual(['body.name', 'body.size']);
  });

  it('answers a bad path parameter with a 400 problem', async () => {
    const { app } = makeApp();
    const res = await app.request('/things/not-a-uuid', { method: 'POST', body: JSON.stringify({ name: 'a', size: 1 }), headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(400);
    expect((await json(res)).errors[0].path).toBe('param.id');
  });

  it('rejects a body sent without a JSON content type instead of skipping validation', async () => {
    const { app } = makeApp();
    const res = await app.request(`/things/${ID}`, { method: 'POST', body: 'name=a', headers: { 'content-type': 'text/plain' } });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
  });

  it('logs a database error without the query parameters drizzle puts in its message', async () => {
    const { app, lines } = makeApp();
    const res = await app.request('/db-error');
    expect(res.status).toBe(500);
    const logged = lines.find((l) => l.msg === 'unhandled error')!;
    expect(JSON.stringify(logged)).not.toContain('hunter2-token');
    expect(logged).toMatchObject({ sqlState: '42P01', err: { message: 'relation "t" does not exist' } });
  });

  it('answers text the database cannot store (NUL) with 400 invalid_text, not 500', async () => {
    const { app } = makeApp();
    const res = await app.request('/nul-text');
    expect(res.status).toBe(400);
    expect((await json(res)).code).toBe('invalid_text');
  });

  it('answers 503 database_unavailable with Retry-After when the database refuses connections or is full, not 500', async () => {
    const { app, lines } = makeApp();
    for (const path of ['/db-refused', '/db-full']) {
      const res = await app.request(path);
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('2');
      expect(await json(res)).toMatchObject({ status: 503, code: 'database_unavailable' });
    }
    expect(lines.filter((l) => l.msg === 'database unavailable')).toHaveLength(2);
    expect(lines.some((l) => l.msg === 'unhandled error')).toBe(false);
  });

  it('renders a thrown HttpProblem with its status and code', async () => {
    const { app } = makeApp();
    const res = await app.request('/conflict');
    expect(res.status).toBe(409);
    expect(await json(res)).toMatchObject({ code: 'already_exists', detail: 'A thing with that name exists.' });
  });

  it('answers an unexpected error with a generic 500 that leaks nothing, and logs it', async () => {
    const { app, lines } = makeApp();
    const res = await app.request('/boom');
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain('at ');
    expect(JSON.parse(text)).toMatchObject({ code: 'internal_error', status: 500 });
    expect(lines.some((l) => l.msg === 'unhandled error' && l.requestId === res.headers.get('x-request-id'))).toBe(true);
  });
});

describe('GET /health and /ready', () => {
  it('/health answers the original liveness shape', async () => {
    const { app } = makeApp();
    const res = await app.request('/health');
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ status: 'healthy', service: 'demo-service' });
  });

  it('/ready answers 200 with every check when all pass', async () => {
    const { app } = makeApp([{ name: 'database', run: async () => {} }]);
    const res = await app.request('/ready');
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body).toMatchObject({ status: 'ready', service: 'demo-service', checks: { database: { status: 'ok' } } });
  });

  it('/ready answers 503 naming the failed check', async () => {
    const { app } = makeApp([
      { name: 'database', run: async () => {} },
      { name: 'kv', run: async () => Promise.reject(new Error('connection refused')) },
    ]);
    const res = await app.request('/ready');
    expect(res.status).toBe(503);
    const body = await json(res);
    expect(body).toMatchObject({ code: 'not_ready', failed: ['kv'], checks: { kv: { status: 'failed', error: 'connection refused' }, database: { status: 'ok' } } });
    expect(body.detail).toContain('kv');
  });

  it('/ready fails a check that hangs once its timeout passes', async () => {
    const { app } = makeApp([{ name: 'storage', run: () => new Promise(() => {}) }]);
    const res = await app.request('/ready');
    expect(res.status).toBe(503);
    expect((await json(res)).checks.storage.error).toContain('timed out');
  });
});

describe('GET /metrics', () => {
  it('serves Prometheus text with request counts by route and status and resident memory', async () => {
    const { app } = makeApp();
    await app.request('/health');
    await app.request('/health');
    await app.request('/does-not-exist/123');
    const res = await app.request('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text).toContain('http_requests_total{service="demo-service",method="GET",route="/health",status="200"} 2');
    expect(text).toContain('route="unmatched",status="404"} 1');
    expect(text).toMatch(/http_request_duration_seconds_bucket\{service="demo-service",method="GET",route="\/health",status="200",le="\+Inf"\} 2/);
    expect(text).toMatch(/process_resident_memory_bytes\{service="demo-service"\} \d+/);
    // every non-comment line is `name{labels} value`
    for (const line of text.trim().split('\n').filter((l) => !l.startsWith('#'))) {
      expect(line).toMatch(/^[a-z_]+\{.*\} [0-9.e+-]+$/);
    }
  });
});

describe('GET /openapi.json', () => {
  it('is a valid OpenAPI 3.1 document listing the kit and service routes', async () => {
    const { app } = makeApp();
    const res = await app.request('/openapi.json');
    expect(res.status).toBe(200);
    const doc = await json(res);
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/health', '/ready', '/metrics', '/service-info', '/things/{id}']));
    await SwaggerParser.validate(structuredClone(doc));
  });

  it('is built once and served identically afterwards', async () => {
    const { app } = makeApp();
    const first = await (await app.request('/openapi.json')).text();
    const second = await (await app.request('/openapi.json')).text();
    expect(second).toBe(first);
  });
});

describe('GET /service-info', () => {
  it('answers GA4GH service-info 1.0 fields', async () => {
    const { app } = makeApp();
    const body = await json(await app.request('/service-info'));
    expect(body).toMatchObject({
      id: 'org.federated-imputation.demo-service',
      type: { group: 'org.federated-imputation', artifact: 'demo-service', version: '1.2.3' },
      version: '1.2.3',
      organization: { name: expect.any(String), url: expect.stringMatching(/^https:\/\//) },
    });
    expect(Number.isNaN(Date.parse(body.createdAt))).toBe(false);
  });
});
