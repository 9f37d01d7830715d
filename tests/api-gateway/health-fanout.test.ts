import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { createHealthFanout } from '../../services/api-gateway/src/health-fanout.ts';
import { UPSTREAM_NAMES, type UpstreamName } from '../../services/api-gateway/src/route-table.ts';

type Server = ReturnType<typeof Bun.serve>;

const TIMEOUT_MS = 300;

describe('health fan-out', () => {
  let ready: Server;
  let notReady: Server;
  let hanging: Server;
  let endlessBody: Server;
  let readyBase: string;
  let notReadyBase: string;
  let hangingBase: string;
  let endlessBodyBase: string;
  let closedBase: string;
  const readyPaths: string[] = [];

  beforeAll(() => {
    ready = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch(req) {
        const { pathname } = new URL(req.url);
        readyPaths.push(pathname);
        return pathname === '/ready' ? Response.json({ status: 'ready' }) : new Response('no', { status: 404 });
      },
    });
    notReady = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch: () => Response.json({ status: 'not ready', failing: 'database' }, { status: 503 }),
    });
    // Accepts the connection and the request, then never answers.
    hanging = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Promise<Response>(() => {}) });
    // Sends 200 headers, then a body that never ends.
    endlessBody = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch: () =>
        new Response(
          new ReadableStream({
            start(controller) {
              controller.enqueue(new TextEncoder().encode('{"status":'));
            },
          }),
          { status: 200 },
        ),
    });
    const closed = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response('gone') });
    closedBase = `http://127.0.0.1:${closed.port}`;
    closed.stop(true);

    readyBase = `http://127.0.0.1:${ready.port}`;
    notReadyBase = `http://127.0.0.1:${notReady.port}`;
    hangingBase = `http://127.0.0.1:${hanging.port}`;
    endlessBodyBase = `http://127.0.0.1:${endlessBody.port}`;
  });

  afterAll(() => {
    ready.stop(true);
    notReady.stop(true);
    hanging.stop(true);
    endlessBody.stop(true);
  });

  const upstreams = (overrides: Partial<Record<UpstreamName, string>> = {}) =>
    Object.assign(Object.fromEntries(UPSTREAM_NAMES.map((name) => [name, readyBase])), overrides) as Record<
      UpstreamName,
      string
    >;
  const allHealthyExcept = (name: UpstreamName, state: string) =>
    Object.fromEntries(UPSTREAM_NAMES.map((n) => [n, n === name ? state : 'healthy']));

  it('reports healthy when every upstream answers GET /ready with 200', async () => {
    readyPaths.length = 0;
    const report = await createHealthFanout({ upstreams: upstreams(), timeoutMs: TIMEOUT_MS })();
    expect(report).toEqual({
      status: 'healthy',
      services: Object.fromEntries(UPSTREAM_NAMES.map((n) => [n, 'healthy'])) as never,
    });
    expect(readyPaths).toEqual(UPSTREAM_NAMES.map(() => '/ready'));
  });

  it('reports degraded with the upstream answering 503 as unhealthy', async () => {
    const report = await createHealthFanout({
      upstreams: upstreams({ 'job-processor': notReadyBase }),
      timeoutMs: TIMEOUT_MS,
    })();
    expect(report).toEqual({ status: 'degraded', services: allHealthyExcept('job-processor', 'unhealthy') as never });
  });

  it('reports an upstream on a closed port as unreachable', async () => {
    const report = await createHealthFanout({
      upstreams: upstreams({ 'file-manager': closedBase }),
      timeoutMs: TIMEOUT_MS,
    })();
    expect(report).toEqual({ status: 'degraded', services: allHealthyExcept('file-manager', 'unreachable') as never });
  });

  it('reports an upstream that never answers as timeout, within about one timeout, while the others stay healthy', async () => {
    const started = performance.now();
    const report = await createHealthFanout({
      upstreams: upstreams({ monitoring: hangingBase }),
      timeoutMs: TIMEOUT_MS,
    })();
    const elapsed = performance.now() - started;
    expect(report).toEqual({ status: 'degraded', services: allHealthyExcept('monitoring', 'timeout') as never });
    expect(elapsed).toBeLessThan(TIMEOUT_MS + 1000);
  });

  it('probes concurrently: six hanging upstreams cost one timeout, not six', async () => {
    const started = performance.now();
    const report = await createHealthFanout({
      upstreams: Object.fromEntries(UPSTREAM_NAMES.map((n) => [n, hangingBase])) as Record<UpstreamName, string>,
      timeoutMs: TIMEOUT_MS,
    })();
    const elapsed = performance.now() - started;
    expect(report.status).toBe('degraded');
    expect(Object.values(report.services)).toEqual(UPSTREAM_NAMES.map(() => 'timeout'));
    expect(elapsed).toBeLessThan(TIMEOUT_MS + 1000);
  });

  it('counts a 200 whose body never finishes as timeout', async () => {
    const report = await createHealthFanout({
      upstreams: upstreams({ notification: endlessBodyBase }),
      timeoutMs: TIMEOUT_MS,
    })();
    expect(report).toEqual({ status: 'degraded', services: allHealthyExcept('notification', 'timeout') as never });
  });
});
