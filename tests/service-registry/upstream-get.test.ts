/**
 * service-registry's shared GET to external servers (probes and panel sync), against a real
 * Bun.serve on a loopback port: every result kind, redirects refused, the body cap, and that it
 * never throws.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { upstreamGet, type UpstreamGetOptions } from '../../services/service-registry/src/upstream-get.ts';

const MAX_BYTES = 1024;
let server: ReturnType<typeof Bun.serve>;
let base: string;
let closedPortUrl: string;
/** Releases handlers that hang, so the server can stop. */
const hung: Array<() => void> = [];
const seen: { path: string; accept: string | null; token: string | null }[] = [];

function hang(): Promise<void> {
  return new Promise((resolve) => hung.push(resolve));
}

function get(path: string, options: Partial<UpstreamGetOptions> = {}) {
  return upstreamGet(`${base}${path}`, { signal: AbortSignal.timeout(5_000), maxBytes: MAX_BYTES, ...options });
}

beforeAll(async () => {
  server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(req) {
      const path = new URL(req.url).pathname;
      seen.push({ path, accept: req.headers.get('accept'), token: req.headers.get('x-auth-token') });
      switch (path) {
        case '/json':
          return Response.json({ apps: [], loggedIn: true });
        case '/denied':
          return Response.json({ success: false, message: '  Your token has expired.  ' }, { status: 401 });
        case '/wes-error':
          return Response.json({ msg: 'run store unavailable', status_code: 503 }, { status: 503 });
        case '/html-error':
          return new Response('<html><body><h1>502 Bad Gateway</h1></body></html>', { status: 502, headers: { 'content-type': 'text/html' } });
        case '/quiet-error':
          return Response.json({ success: false }, { status: 500 });
        case '/moved':
          return new Response(null, { status: 301, headers: { location: `${base}/json` } });
        case '/hang':
          await hang();
          return new Response('late');
        case '/hang-mid-body':
          return new Response(
            new ReadableStream({
              async start(controller) {
                controller.enqueue(new TextEncoder().encode('{"apps": ['));
                await hang();
                controller.close();
              },
            }),
            { headers: { 'content-type': 'application/json' } },
          );
        case '/big':
          return Response.json({ padding: 'x'.repeat(MAX_BYTES * 4) });
        case '/broken':
          return new Response('{"apps": [ {"id": "imputationserver2"', { headers: { 'content-type': 'application/json' } });
        default:
          return new Response('not here', { status: 404 });
      }
    },
  });
  base = `http://127.0.0.1:${server.port}`;
  const closed = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('') });
  closedPortUrl = `http://127.0.0.1:${closed.port}`;
  await closed.stop(true);
});

afterAll(async () => {
  for (const release of hung.splice(0)) release();
  await server.stop(true);
});

describe('upstreamGet', () => {
  it('answers json for a 2xx JSON body, asking for JSON and sending the given headers', async () => {
    const answer = await get('/json', { headers: { 'x-auth-token': 'operator-token' } });
    expect(answer).toEqual({ kind: 'json', httpStatus: 200, latencyMs: expect.any(Number), body: { apps: [], loggedIn: true } });
    expect(seen.findLast((r) => r.path === '/json')).toEqual({ path: '/json', accept: 'application/json', token: 'operator-token' });
  });

  it("answers http_error for a 4xx with the server's trimmed Cloudgene message", async () => {
    expect(await get('/denied')).toEqual({ kind: 'http_error', httpStatus: 401, latencyMs: expect.any(Number), message: 'Your token has expired.' });
  });

  it('reads a WES {msg} error, and a snippet of an error body that is not JSON', async () => {
    expect(await get('/wes-error')).toMatchObject({ kind: 'http_error', httpStatus: 503, message: 'run store unavailable' });
    const html = await get('/html-error');
    expect(html).toMatchObject({ kind: 'http_error', httpStatus: 502, snippet: '<html><body><h1>502 Bad Gateway</h1></body></html>' });
    expect(html).not.toHaveProperty('message');
  });

  it('answers http_error without a message when the JSON error body has none', async () => {
    expect(await get('/quiet-error')).toEqual({ kind: 'http_error', httpStatus: 500, latencyMs: expect.any(Number) });
  });

  it('does not follow a 3xx: http_error with the location, and the target is never asked', async () => {
    const before = seen.filter((r) => r.path === '/json').length;
    expect(await get('/moved')).toEqual({ kind: 'http_error', httpStatus: 301, latencyMs: expect.any(Number), location: `${base}/json` });
    expect(seen.filter((r) => r.path === '/json').length).toBe(before);
  });

  it('answers timeout when the server never answers before the signal times out', async () => {
    expect(await get('/hang', { signal: AbortSignal.timeout(100) })).toEqual({ kind: 'timeout', elapsedMs: expect.any(Number) });
  });

  it('answers timeout when the body stops arriving halfway', async () => {
    expect(await get('/hang-mid-body', { signal: AbortSignal.timeout(100) })).toEqual({ kind: 'timeout', elapsedMs: expect.any(Number) });
  });

  it('answers aborted when the signal is aborted for another reason than a timeout', async () => {
    const controller = new AbortController();
    const pending = get('/hang', { signal: controller.signal });
    // Abort once the server has the request, so the abort hits the request in flight.
    const asked = seen.filter((r) => r.path === '/hang').length;
    for (let i = 0; i < 200 && seen.filter((r) => r.path === '/hang').length === asked; i++) await Bun.sleep(5);
    controller.abort();
    expect(await pending).toEqual({ kind: 'aborted' });
  });

  it('answers network with the runtime code when nothing listens on the port', async () => {
    const answer = await upstreamGet(`${closedPortUrl}/json`, { signal: AbortSignal.timeout(5_000), maxBytes: MAX_BYTES });
    expect(answer).toMatchObject({ kind: 'network', code: expect.stringMatching(/^(ECONNREFUSED|ConnectionRefused)$/) });
  });

  it('answers too_large for a 2xx body over maxBytes instead of reading it all', async () => {
    expect(await get('/big')).toEqual({ kind: 'too_large', httpStatus: 200, latencyMs: expect.any(Number), maxBytes: MAX_BYTES });
    expect(await get('/big', { maxBytes: MAX_BYTES * 8 })).toMatchObject({ kind: 'json', httpStatus: 200 });
  });

  it('answers malformed with the start of a 2xx body that is not JSON', async () => {
    expect(await get('/broken')).toEqual({ kind: 'malformed', httpStatus: 200, latencyMs: expect.any(Number), snippet: '{"apps": [ {"id": "imputationserver2"' });
  });

  it('never throws for an injected fetch that rejects with a plain error', async () => {
    const failing = (async () => {
      throw new Error('socket hang up');
    }) as unknown as typeof fetch;
    expect(await get('/json', { fetch: failing })).toEqual({ kind: 'network', code: '', message: 'socket hang up' });
  });
});
