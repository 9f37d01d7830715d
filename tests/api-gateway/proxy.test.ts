import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { gzipSync } from 'node:zlib';
import { createProxy, type ProxyOutcome } from '../../services/api-gateway/src/proxy.ts';
import type { UpstreamName } from '../../services/api-gateway/src/route-table.ts';

type Server = ReturnType<typeof Bun.serve>;

const TIMEOUT_MS = 300;
const MiB = 1024 * 1024;

const sha256 = (bytes: ArrayBuffer | Uint8Array) => new Bun.CryptoHasher('sha256').update(bytes).digest('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function randomBytes(size: number): Uint8Array {
  const out = new Uint8Array(size);
  // getRandomValues fills at most 64 KiB per call.
  for (let offset = 0; offset < size; offset += 65536) crypto.getRandomValues(out.subarray(offset, offset + 65536));
  return out;
}

function allUpstreams(base: string, overrides: Partial<Record<UpstreamName, string>> = {}): Record<UpstreamName, string> {
  return {
    'user-service': base,
    'service-registry': base,
    'job-processor': base,
    'file-manager': base,
    notification: base,
    monitoring: base,
    ...overrides,
  };
}

/** Rejects if `promise` has not settled within `ms`, so a deadlock fails the test instead of hanging it. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([promise, sleep(ms).then(() => Promise.reject(new Error(`${what} did not happen within ${ms} ms`)))]);
}

describe('proxy', () => {
  const download = randomBytes(5 * MiB);
  const plainText = Buffer.from('gzip me, but only once. '.repeat(500));
  const gzipped = gzipSync(plainText);

  // Test-controlled gates for the streaming upstream routes.
  let releaseFirstChunk: () => void = () => {};
  let firstChunkFinished = false;
  let uploadChunkSeen: () => void = () => {};
  let upstreamSawAbort = false;
  const outcomes: ProxyOutcome[] = [];

  let upstream: Server;
  let gateway: Server;
  let gatewayBase: string;
  let deadPort: number;

  beforeAll(() => {
    upstream = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      async fetch(req) {
        const url = new URL(req.url);
        switch (url.pathname) {
          case '/jobs/echo': {
            const headers: Record<string, string> = {};
            req.headers.forEach((value, name) => {
              headers[name] = value;
            });
            const q = req.url.indexOf('?');
            return Response.json({
              method: req.method,
              path: url.pathname,
              query: q === -1 ? '' : req.url.slice(q),
              headers,
            });
          }
          case '/jobs/upload': {
            const body = new Uint8Array(await req.arrayBuffer());
            return Response.json({ bytes: body.byteLength, sha256: sha256(body) });
          }
          case '/jobs/upload-streamed': {
            // Answers only after the whole body arrived, but signals the test on the first chunk:
            // the client withholds its second chunk until then, so a buffering proxy deadlocks.
            let bytes = 0;
            for await (const chunk of req.body!) {
              if (bytes === 0) uploadChunkSeen();
              bytes += chunk.byteLength;
            }
            return Response.json({ bytes });
          }
          case '/jobs/download':
            return new Response(download, { headers: { 'content-type': 'application/octet-stream' } });
          case '/jobs/gzip':
            return new Response(gzipped, { headers: { 'content-type': 'text/plain', 'content-encoding': 'gzip' } });
          case '/jobs/empty':
            return new Response(null, { status: 204, headers: { 'x-upstream-marker': 'empty' } });
          case '/jobs/fail':
            return new Response('upstream broke', {
              status: 500,
              headers: { 'content-type': 'text/plain', 'x-upstream-marker': 'fail' },
            });
          case '/jobs/redirect':
            return new Response(null, { status: 302, headers: { location: '/jobs/echo' } });
          case '/jobs/response-headers': {
            const headers = new Headers({ 'x-upstream-hop': 'drop me', 'keep-alive': 'timeout=5', 'x-kept': 'yes' });
            headers.append('connection', 'x-upstream-hop');
            headers.append('set-cookie', 'a=1; Path=/');
            headers.append('set-cookie', 'b=2; Path=/');
            return new Response('ok', { headers });
          }
          case '/jobs/hang':
            return new Promise<Response>(() => {});
          case '/jobs/until-aborted':
            return new Promise<Response>((resolve) => {
              req.signal.addEventListener('abort', () => {
                upstreamSawAbort = true;
                resolve(new Response('aborted'));
              });
            });
          case '/jobs/first-chunk': {
            firstChunkFinished = false;
            const released = new Promise<void>((resolve) => {
              releaseFirstChunk = resolve;
            });
            const stream = new ReadableStream<Uint8Array>({
              async start(controller) {
                controller.enqueue(new TextEncoder().encode('first;'));
                await released;
                controller.enqueue(new TextEncoder().encode('last'));
                firstChunkFinished = true;
                controller.close();
              },
            });
            return new Response(stream, { headers: { 'content-type': 'text/plain' } });
          }
          case '/jobs/slow': {
            // Ten chunks 100 ms apart: the body takes over three times the header timeout.
            const stream = new ReadableStream<Uint8Array>({
              async start(controller) {
                for (let i = 0; i < 10; i++) {
                  controller.enqueue(new TextEncoder().encode(`chunk${i};`));
                  await sleep(100);
                }
                controller.close();
              },
            });
            return new Response(stream, { headers: { 'content-type': 'text/plain' } });
          }
          default:
            return new Response('upstream has no such path', { status: 404 });
        }
      },
    });

    const dead = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response('gone') });
    deadPort = dead.port!;
    dead.stop(true);

    const proxy = createProxy({
      upstreams: allUpstreams(`http://127.0.0.1:${upstream.port}`, { 'file-manager': `http://127.0.0.1:${deadPort}` }),
      timeoutMs: TIMEOUT_MS,
      onOutcome: (outcome) => outcomes.push(outcome),
    });
    gateway = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch: (req, server) =>
        proxy(req, {
          requestId: req.headers.get('x-test-request-id') ?? 'req-test',
          clientIp: server.requestIP(req)?.address,
          // Set, so chunked uploads below go through the byte counter and must still stream.
          maxBodyBytes: 64 * MiB,
        }),
    });
    gatewayBase = `http://127.0.0.1:${gateway.port}`;
  });

  afterAll(() => {
    gateway.stop(true);
    upstream.stop(true);
  });

  it('answers an unrouted /api path with a 404 route_not_found problem', async () => {
    const res = await fetch(`${gatewayBase}/api/alerts`);
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    const body = await res.json();
    expect(body).toMatchObject({ status: 404, code: 'route_not_found', instance: '/api/alerts', requestId: 'req-test' });
  });

  it('forwards method, upstream path and a multi-valued raw query string unchanged', async () => {
    const query = '?a=1&a=2&b=x%20y&c=&flag&plus=1+2';
    const res = await fetch(`${gatewayBase}/api/jobs/echo${query}`, { method: 'DELETE' });
    expect(res.status).toBe(200);
    const echo = await res.json();
    expect(echo).toMatchObject({ method: 'DELETE', path: '/jobs/echo', query });
  });

  it('streams a 5 MiB binary upload byte-identical', async () => {
    const upload = randomBytes(5 * MiB);
    const res = await fetch(`${gatewayBase}/api/jobs/upload`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: upload,
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ bytes: upload.byteLength, sha256: sha256(upload) });
  });

  it('streams a request body to the upstream before the client has finished sending it', async () => {
    const seen = new Promise<void>((resolve) => {
      uploadChunkSeen = resolve;
    });
    let pulls = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        pulls++;
        if (pulls === 1) controller.enqueue(new Uint8Array(64 * 1024).fill(1));
        else if (pulls === 2) {
          await within(seen, 3000, 'the upstream receiving the first upload chunk');
          controller.enqueue(new Uint8Array(64 * 1024).fill(2));
        } else controller.close();
      },
    });
    const res = await within(
      fetch(`${gatewayBase}/api/jobs/upload-streamed`, { method: 'POST', body, duplex: 'half' }),
      5000,
      'the streamed upload',
    );
    expect(await res.json()).toEqual({ bytes: 128 * 1024 });
  });

  it('applies a per-request timeout policy: a long wait for one route, the short one for the rest', async () => {
    const policy = createProxy({
      upstreams: allUpstreams(`http://127.0.0.1:${upstream.port}`),
      timeoutMs: (service, method) => (service === 'job-processor' && method === 'POST' ? 5_000 : TIMEOUT_MS),
    });
    const hang = (method: string) => policy(new Request('http://gateway.example/api/jobs/hang', { method }), { requestId: 'policy' });
    const started = performance.now();
    expect((await hang('GET')).status).toBe(504);
    expect(performance.now() - started).toBeLessThan(2_000);
    const slow = await Promise.race([hang('POST').then(() => 'answered'), Bun.sleep(1_000).then(() => 'still waiting')]);
    expect(slow).toBe('still waiting');
  });

  it('streams a 5 MiB binary download byte-identical', async () => {
    const res = await fetch(`${gatewayBase}/api/jobs/download`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    const body = new Uint8Array(await res.arrayBuffer());
    expect(body.byteLength).toBe(download.byteLength);
    expect(sha256(body)).toBe(sha256(download));
  });

  it('strips hop-by-hop and client-sent identity headers, and sets request id and forwarding headers', async () => {
    const direct = createProxy({ upstreams: allUpstreams(`http://127.0.0.1:${upstream.port}`), timeoutMs: TIMEOUT_MS });
    const request = new Request('http://gateway.example/api/jobs/echo', {
      headers: {
        host: 'gateway.example',
        connection: 'keep-alive, X-Custom-Hop',
        'x-custom-hop': 'named by Connection',
        'keep-alive': 'timeout=5',
        'proxy-authorization': 'Basic abc',
        te: 'trailers',
        trailer: 'x-checksum',
        upgrade: 'websocket',
        'X-User-Id': 'forged-admin',
        'X-USER-EMAIL': 'root@example.org',
        'x-user-roles': 'admin',
        'X-User-Name': 'root',
        'X-Forwarded-User': 'root',
        'x-authenticated-user': 'root',
        'X-Service-Identity': 'job-processor',
        'x-identity': '{"sub":"root"}',
        'x-auth-request-user': 'root',
        'x-real-ip': '203.0.113.9',
        forwarded: 'for=203.0.113.10',
        'x-forwarded-port': '443',
        'x-http-method-override': 'DELETE',
        'x-request-id': 'client-chosen',
        'x-forwarded-for': '203.0.113.7',
        authorization: 'Bearer token-for-the-service',
        'x-kept': 'kept',
      },
    });
    const res = await direct(request, { requestId: 'req-abc', clientIp: '198.51.100.2' });
    const { headers } = (await res.json()) as { headers: Record<string, string> };

    for (const name of ['x-custom-hop', 'keep-alive', 'proxy-authorization', 'te', 'trailer', 'upgrade']) {
      expect(headers[name]).toBeUndefined();
    }
    for (const name of [
      'x-user-id',
      'x-user-email',
      'x-user-roles',
      'x-user-name',
      'x-forwarded-user',
      'x-authenticated-user',
      'x-service-identity',
      'x-identity',
      'x-auth-request-user',
      'x-real-ip',
      'forwarded',
      'x-forwarded-port',
      'x-http-method-override',
    ]) {
      expect(headers[name]).toBeUndefined();
    }
    expect(headers['host']).toBe(`127.0.0.1:${upstream.port}`);
    expect(headers['x-request-id']).toBe('req-abc');
    // The client's own chain is unverified: only the address the gateway determined goes on.
    expect(headers['x-forwarded-for']).toBe('198.51.100.2');
    expect(headers['x-forwarded-proto']).toBe('http');
    expect(headers['x-forwarded-host']).toBe('gateway.example');
    expect(headers['authorization']).toBe('Bearer token-for-the-service');
    expect(headers['x-kept']).toBe('kept');
    // The client asked for no compression, so the upstream must not be offered any.
    expect(headers['accept-encoding']).toBe('identity');
  });

  it('forwards X-Request-ID through a real client connection', async () => {
    const res = await fetch(`${gatewayBase}/api/jobs/echo`, { headers: { 'x-test-request-id': 'req-42' } });
    const { headers } = (await res.json()) as { headers: Record<string, string> };
    expect(headers['x-request-id']).toBe('req-42');
    expect(headers['x-forwarded-for']).toBe('127.0.0.1');
  });

  it('drops hop-by-hop response headers and keeps the rest, including every Set-Cookie', async () => {
    const res = await fetch(`${gatewayBase}/api/jobs/response-headers`);
    expect(await res.text()).toBe('ok');
    expect(res.headers.get('x-upstream-hop')).toBeNull();
    expect(res.headers.get('x-kept')).toBe('yes');
    expect(res.headers.getSetCookie()).toEqual(['a=1; Path=/', 'b=2; Path=/']);
  });

  it('passes a gzip-encoded upstream body through byte-for-byte with its Content-Encoding', async () => {
    const res = await fetch(`${gatewayBase}/api/jobs/gzip`, {
      headers: { 'accept-encoding': 'gzip' },
      decompress: false,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-encoding')).toBe('gzip');
    const body = new Uint8Array(await res.arrayBuffer());
    expect(sha256(body)).toBe(sha256(gzipped));
    expect(res.headers.get('content-length')).toBe(String(gzipped.byteLength));
  });

  it('passes a 204 through with no body', async () => {
    const res = await fetch(`${gatewayBase}/api/jobs/empty`, { method: 'DELETE' });
    expect(res.status).toBe(204);
    expect(res.headers.get('x-upstream-marker')).toBe('empty');
    expect(await res.text()).toBe('');
  });

  it('does not follow upstream redirects', async () => {
    const res = await fetch(`${gatewayBase}/api/jobs/redirect`, { redirect: 'manual' });
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/jobs/echo');
  });

  it("passes an upstream 500 through as the upstream's own answer", async () => {
    const res = await fetch(`${gatewayBase}/api/jobs/fail`);
    expect(res.status).toBe(500);
    expect(res.headers.get('content-type')).toBe('text/plain');
    expect(res.headers.get('x-upstream-marker')).toBe('fail');
    expect(await res.text()).toBe('upstream broke');
  });

  it('answers an upstream that never sends headers with a 504 upstream_timeout problem naming the service', async () => {
    const res = await fetch(`${gatewayBase}/api/jobs/hang`);
    expect(res.status).toBe(504);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    const text = await res.text();
    const body = JSON.parse(text);
    expect(body).toMatchObject({ status: 504, code: 'upstream_timeout', service: 'job-processor' });
    expect(body.detail).toContain('job-processor');
    expect(text).not.toMatch(/\n\s+at /);
    expect(outcomes.some((o) => o.kind === 'timeout' && o.service === 'job-processor' && o.path === '/jobs/hang')).toBe(true);
  });

  it('answers an upstream on a closed port with a 502 upstream_unreachable problem naming the service', async () => {
    const res = await fetch(`${gatewayBase}/api/files/abc`);
    expect(res.status).toBe(502);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    const text = await res.text();
    const body = JSON.parse(text);
    expect(body).toMatchObject({ status: 502, code: 'upstream_unreachable', service: 'file-manager' });
    expect(body.detail).toContain('file-manager');
    expect(text).not.toMatch(/\n\s+at /);
  });

  it('delivers the first chunk of a response before the upstream has finished it', async () => {
    const res = await within(fetch(`${gatewayBase}/api/jobs/first-chunk`), 3000, 'the response headers');
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const first = await within(reader.read(), 3000, 'the first response chunk');
    expect(new TextDecoder().decode(first.value)).toBe('first;');
    expect(firstChunkFinished).toBe(false);

    releaseFirstChunk();
    let rest = '';
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest += new TextDecoder().decode(r.value);
    expect(rest).toBe('last');
    expect(firstChunkFinished).toBe(true);
  });

  it('does not cut a slowly streamed response that outlasts the header timeout', async () => {
    const res = await fetch(`${gatewayBase}/api/jobs/slow`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toBe(Array.from({ length: 10 }, (_, i) => `chunk${i};`).join(''));
  });

  it('releases the upstream request when the client goes away before headers arrive', async () => {
    const client = new AbortController();
    const pending = fetch(`${gatewayBase}/api/jobs/until-aborted`, { signal: client.signal });
    await sleep(50);
    client.abort();
    await expect(pending).rejects.toThrow();
    await within(
      (async () => {
        while (!upstreamSawAbort) await sleep(10);
      })(),
      2000,
      'the upstream request being aborted',
    );
    await within(
      (async () => {
        while (!outcomes.some((o) => o.path === '/jobs/until-aborted')) await sleep(10);
      })(),
      2000,
      'the outcome being reported',
    );
    expect(outcomes.find((o) => o.path === '/jobs/until-aborted')?.kind).toBe('client_aborted');
  });
});
