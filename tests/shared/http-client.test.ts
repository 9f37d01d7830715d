import { z } from '@hono/zod-openapi';
import { createHttpClient, UpstreamError } from '@shared/http-client.ts';
import type { Server } from 'bun';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';

/** A real upstream whose behaviour each test picks by path. */
let server: Server<undefined>;
const hits = new Map<string, number>();
const seen: { requestId: string | null; auth: string | null; url: string }[] = [];

beforeAll(() => {
  server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(req) {
      const url = new URL(req.url);
      const n = (hits.get(url.pathname) ?? 0) + 1;
      hits.set(url.pathname, n);
      seen.push({ requestId: req.headers.get('x-request-id'), auth: req.headers.get('authorization'), url: req.url });
      switch (url.pathname) {
        case '/thing':
          return Response.json({ id: 'a1', size: 3 });
        case '/echo':
          return Response.json({ method: req.method, body: await req.json(), query: url.searchParams.getAll('tag') });
        case '/flaky':
          return n < 3 ? new Response('busy', { status: 503 }) : Response.json({ id: 'ok', size: 1 });
        case '/always-503':
          return new Response('down', { status: 503 });
        case '/missing':
          return Response.json({ type: 'x', title: 'Not Found', status: 404, code: 'nope', detail: 'No such thing.' }, { status: 404 });
        case '/wrong-shape':
          return Response.json({ id: 5 });
        case '/slow':
          await Bun.sleep(1000);
          return Response.json({});
        default:
          return new Response('no', { status: 404 });
      }
    },
  });
});
afterAll(() => server.stop(true));

const Thing = z.object({ id: z.string(), size: z.number() });
const noSleep = async () => {};

function client(extra: Partial<Parameters<typeof createHttpClient>[0]> = {}) {
  return createHttpClient({ service: 'things-service', baseUrl: `http://127.0.0.1:${server.port}/`, sleep: noSleep, ...extra });
}

describe('createHttpClient', () => {
  it('parses the response with the shared schema and forwards the request id and credential headers', async () => {
    const thing = await client({ headers: () => ({ authorization: 'Bearer svc' }) }).call({ path: '/thing', schema: Thing, requestId: 'req-42' });
    expect(thing).toEqual({ id: 'a1', size: 3 });
    const last = seen.at(-1)!;
    expect(last.requestId).toBe('req-42');
    expect(last.auth).toBe('Bearer svc');
  });

  it('sends JSON bodies and keeps multi-valued query parameters', async () => {
    const out = await client().call({ method: 'POST', path: '/echo', body: { a: 1 }, query: { tag: ['x', 'y'] } });
    expect(out).toEqual({ method: 'POST', body: { a: 1 }, query: ['x', 'y'] });
  });

  it('retries an idempotent call on 5xx until it succeeds', async () => {
    hits.delete('/flaky');
    const thing = await client({ retries: 2 }).call({ path: '/flaky', schema: Thing });
    expect(thing.id).toBe('ok');
    expect(hits.get('/flaky')).toBe(3);
  });

  it('does not retry a POST unless it is marked idempotent', async () => {
    hits.delete('/always-503');
    await expect(client({ retries: 2 }).call({ method: 'POST', path: '/always-503', body: {} })).rejects.toBeInstanceOf(UpstreamError);
    expect(hits.get('/always-503')).toBe(1);
    await client({ retries: 2 }).call({ method: 'POST', path: '/always-503', body: {}, idempotent: true }).catch(() => {});
    expect(hits.get('/always-503')).toBe(4);
  });

  it("turns an upstream error into an UpstreamError carrying the upstream's status and detail", async () => {
    const error = await client().call({ path: '/missing' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UpstreamError);
    const upstream = error as UpstreamError;
    expect(upstream.status).toBe(502);
    expect(upstream.upstreamStatus).toBe(404);
    expect(upstream.detail).toBe('No such thing.');
    expect(upstream.toProblem().service).toBe('things-service');
  });

  it('keeps an upstream 503 a 503 (upstream_unavailable: temporary, worth a retry), not a 502', async () => {
    const error = await client({ retries: 0 }).call({ method: 'POST', path: '/always-503', body: {} }).catch((e: unknown) => e);
    expect([(error as UpstreamError).status, (error as UpstreamError).code, (error as UpstreamError).upstreamStatus]).toEqual([503, 'upstream_unavailable', 503]);
  });

  it('rejects a response that breaks the contract', async () => {
    const error = await client().call({ path: '/wrong-shape', schema: Thing }).catch((e: unknown) => e);
    expect((error as UpstreamError).code).toBe('upstream_invalid_response');
  });

  it('gives up after the timeout with a 504 naming the service', async () => {
    const error = await client({ timeoutMs: 100, retries: 0 }).call({ path: '/slow' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UpstreamError);
    expect((error as UpstreamError).status).toBe(504);
    expect((error as UpstreamError).detail).toContain('things-service');
  });

  it('reports an unreachable service as 502 after its retries', async () => {
    const dead = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('') });
    const port = dead.port;
    dead.stop(true);
    const error = await createHttpClient({ service: 'gone', baseUrl: `http://127.0.0.1:${port}`, retries: 1, sleep: noSleep })
      .call({ path: '/x' })
      .catch((e: unknown) => e);
    expect((error as UpstreamError).code).toBe('upstream_unreachable');
    expect((error as UpstreamError).status).toBe(502);
  });
});
