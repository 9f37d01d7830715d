import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'bun:test';
import { ConfigError, parseEnv } from '@shared/config.ts';
import { createMemoryKv } from '@shared/kv-memory.ts';
import { createLogger } from '@shared/log.ts';
import { DOCS_CSP } from '../../services/api-gateway/src/security-headers.ts';
import { definition } from '../../services/api-gateway/src/service.ts';
import { json } from '../support/json.ts';
import { accessToken, startGateway, startRecordingUpstream, type Gateway, type RecordingUpstream } from './gateway-harness.ts';

const APP_ORIGIN = 'https://app.example.org';

describe('CORS', () => {
  let upstream: RecordingUpstream;
  let gateway: Gateway;

  beforeAll(() => {
    upstream = startRecordingUpstream();
    gateway = startGateway({ base: upstream.url, kv: createMemoryKv(), corsOrigins: [APP_ORIGIN, 'http://localhost:3000'] });
  });
  afterAll(() => {
    gateway.stop();
    upstream.stop();
  });
  beforeEach(() => {
    upstream.seen.length = 0;
  });

  const preflight = (origin: string, path = '/api/jobs') =>
    fetch(`${gateway.url}${path}`, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    });

  it('answers a preflight from a listed origin itself with 204, without a token and without reaching a service', async () => {
    const res = await preflight(APP_ORIGIN);
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe(APP_ORIGIN);
    expect(res.headers.get('access-control-allow-credentials')).toBe('true');
    expect(res.headers.get('access-control-allow-methods')).toContain('POST');
    expect(res.headers.get('access-control-allow-headers')).toContain('authorization');
    expect(res.headers.get('access-control-allow-headers')).toContain('content-type');
    expect(Number(res.headers.get('access-control-max-age'))).toBeGreaterThan(0);
    expect(upstream.seen).toHaveLength(0);
  });

  it('refuses a preflight from an unlisted origin with a 403 problem and no CORS headers', async () => {
    for (const origin of ['https://evil.example.org', 'https://app.example.org.evil.example', 'null']) {
      const res = await preflight(origin);
      expect(res.status).toBe(403);
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
      expect((await json(res)).code).toBe('cors_origin_denied');
    }
    expect(upstream.seen).toHaveLength(0);
  });

  it('marks responses to a listed origin readable, with the rate-limit headers exposed', async () => {
    const res = await fetch(`${gateway.url}/api/jobs`, { headers: { origin: APP_ORIGIN, authorization: `Bearer ${await accessToken()}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe(APP_ORIGIN);
    expect(res.headers.get('access-control-expose-headers')).toContain('ratelimit-remaining');
    expect(res.headers.get('access-control-expose-headers')).toContain('retry-after');
    expect(res.headers.get('vary')).toContain('Origin');
  });

  it('adds CORS headers to error responses for a listed origin too, so the page can read the problem', async () => {
    const res = await fetch(`${gateway.url}/api/jobs`, { headers: { origin: APP_ORIGIN } });
    expect(res.status).toBe(401);
    expect(res.headers.get('access-control-allow-origin')).toBe(APP_ORIGIN);
  });

  it('gives an unlisted origin no CORS headers, so its page cannot read the answer', async () => {
    const res = await fetch(`${gateway.url}/health`, { headers: { origin: 'https://evil.example.org' } });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect(res.headers.get('vary')).toContain('Origin');
  });

  it('with *, allows any origin but never with credentials', async () => {
    const open = startGateway({ base: upstream.url, kv: createMemoryKv(), corsOrigins: ['*'] });
    try {
      const res = await fetch(`${open.url}/api/jobs`, {
        method: 'OPTIONS',
        headers: { origin: 'https://anywhere.example', 'access-control-request-method': 'GET' },
      });
      expect(res.status).toBe(204);
      expect(res.headers.get('access-control-allow-origin')).toBe('*');
      expect(res.headers.get('access-control-allow-credentials')).toBeNull();
    } finally {
      open.stop();
    }
  });

  it('with no origins configured, refuses every cross-origin preflight', async () => {
    const closed = startGateway({ base: upstream.url, kv: createMemoryKv() });
    try {
      const res = await fetch(`${closed.url}/api/jobs`, { method: 'OPTIONS', headers: { origin: APP_ORIGIN, 'access-control-request-method': 'GET' } });
      expect(res.status).toBe(403);
    } finally {
      closed.stop();
    }
  });

  it('reads CORS_ORIGINS as a comma-separated list and refuses a value that is not an origin', () => {
    const env = parseEnv(definition.envSchema, { CORS_ORIGINS: ' https://App.Example.org/ , http://localhost:3000' }) as { CORS_ORIGINS: string[] };
    expect(env.CORS_ORIGINS).toEqual(['https://app.example.org', 'http://localhost:3000']);
    expect(() => parseEnv(definition.envSchema, { CORS_ORIGINS: 'not an origin' })).toThrow(ConfigError);
  });
});

describe('security headers', () => {
  let upstream: RecordingUpstream;

  beforeAll(() => {
    upstream = startRecordingUpstream();
  });
  afterAll(() => upstream.stop());

  const expectBaseline = (res: Response) => {
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
  };

  it("are set on the gateway's own answers, proxied answers and problems, without HSTS unless configured", async () => {
    const gateway = startGateway({ base: upstream.url, kv: createMemoryKv() });
    try {
      const own = await fetch(`${gateway.url}/health`);
      const proxied = await fetch(`${gateway.url}/api/jobs`, { headers: { authorization: `Bearer ${await accessToken()}` } });
      const problem = await fetch(`${gateway.url}/api/jobs`);
      expect([own.status, proxied.status, problem.status]).toEqual([200, 200, 401]);
      for (const res of [own, proxied, problem]) {
        expectBaseline(res);
        expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
        expect(res.headers.get('strict-transport-security')).toBeNull();
      }
    } finally {
      gateway.stop();
    }
  });

  it('include HSTS when the gateway is configured as served over TLS', async () => {
    const gateway = startGateway({ base: upstream.url, kv: createMemoryKv(), hstsMaxAgeSeconds: 31_536_000 });
    try {
      const res = await fetch(`${gateway.url}/health`);
      expect(res.headers.get('strict-transport-security')).toBe('max-age=31536000');
    } finally {
      gateway.stop();
    }
  });

  it('give /docs a CSP that allows only the gateway’s own assets', async () => {
    const gateway = startGateway({ base: upstream.url, kv: createMemoryKv() });
    try {
      for (const path of ['/docs', '/docs/assets/app.js']) {
        const res = await fetch(`${gateway.url}${path}`);
        expectBaseline(res);
        const csp = res.headers.get('content-security-policy')!;
        expect(csp).toBe(DOCS_CSP);
      }
      // Nothing but 'self' (and data: images/fonts) may be loaded: no CDN, no other host.
      expect(DOCS_CSP).not.toMatch(/https?:|\*|unsafe-eval/);
      expect(DOCS_CSP).toContain("script-src 'self'");
      expect(DOCS_CSP).toContain("connect-src 'self'");
    } finally {
      gateway.stop();
    }
  });
});

describe('logs', () => {
  it('never contain the Authorization, Cookie or Set-Cookie values or a download signature', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'debug', sink: (line) => lines.push(line) });
    const secretCookie = 'session=cookie-secret-4711';
    const sig = 'signature-secret-0815';
    const upstream = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch: (req) =>
        new URL(req.url).pathname.endsWith('/hang')
          ? new Promise<Response>(() => {})
          : new Response('ok', { headers: { 'set-cookie': 'upstream=set-cookie-secret-42; HttpOnly' } }),
    });
    const closed = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response('') });
    const closedUrl = `http://127.0.0.1:${closed.port}`;
    closed.stop(true);
    const gateway = startGateway({
      base: `http://127.0.0.1:${upstream.port}`,
      upstreams: { monitoring: closedUrl },
      kv: createMemoryKv(),
      logger,
      timeoutMs: 200,
    });
    try {
      const token = await accessToken();
      const headers = { authorization: `Bearer ${token}`, cookie: secretCookie };
      await fetch(`${gateway.url}/api/jobs`, { headers });
      await fetch(`${gateway.url}/api/jobs/hang?sig=${sig}`, { headers });
      await fetch(`${gateway.url}/api/files/f1/content?expires=1&sig=${sig}`, { headers: { cookie: secretCookie } });
      await fetch(`${gateway.url}/api/monitoring/health?sig=${sig}`, { headers });
      await fetch(`${gateway.url}/api/jobs`, { headers: { authorization: 'Bearer forged.token.value', cookie: secretCookie } });
      await fetch(`${gateway.url}/openapi.json`, { headers });

      // Upstream failures were logged, so the check below looked at real failure lines.
      const messages = lines.map((l) => JSON.parse(l).msg);
      expect(messages).toContain('request');
      expect(messages).toContain('upstream failed');
      const all = lines.join('\n');
      for (const secret of [token, 'forged.token.value', 'cookie-secret-4711', 'set-cookie-secret-42', sig]) expect(all).not.toContain(secret);
    } finally {
      gateway.stop();
      upstream.stop(true);
    }
  });
});
