import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { createMemoryKv } from '@shared/kv-memory.ts';
import type { Kv } from '@shared/kv.ts';
import { createLogger } from '@shared/log.ts';
import { parseLimit } from '../../services/api-gateway/src/rate-limits.ts';
import { json } from '../support/json.ts';
import {
  accessToken,
  downKv,
  hungKv,
  randomIp,
  startGateway,
  startRecordingUpstream,
  testKv,
  type Gateway,
  type RecordingUpstream,
} from './gateway-harness.ts';

// Long enough that three quick requests fall well inside one emission interval (window / limit) on a loaded machine.
const WINDOW_MS = 3_000;

describe('parseLimit', () => {
  it('reads <requests>/<window> with units, and off', () => {
    expect(parseLimit('600/1m')).toEqual({ limit: 600, windowMs: 60_000 });
    expect(parseLimit('20/30s')).toEqual({ limit: 20, windowMs: 30_000 });
    expect(parseLimit('100/1h')).toEqual({ limit: 100, windowMs: 3_600_000 });
    expect(parseLimit('5/500ms')).toEqual({ limit: 5, windowMs: 500 });
    expect(parseLimit('10/m')).toEqual({ limit: 10, windowMs: 60_000 });
    expect(parseLimit('7/90')).toEqual({ limit: 7, windowMs: 90_000 });
    expect(parseLimit('OFF')).toBeNull();
  });

  it('rejects what is not a limit', () => {
    for (const bad of ['', '600', '0/1m', '-1/1m', '10/0s', 'ten/1m', '10/1w', '10 per minute']) expect(parseLimit(bad)).toBeUndefined();
  });
});

describe('rate limits through the KV', () => {
  let kv: Kv;
  let upstream: RecordingUpstream;
  let gateway: Gateway;

  beforeAll(async () => {
    kv = await testKv();
    upstream = startRecordingUpstream();
    gateway = startGateway({
      base: upstream.url,
      kv,
      // Every client address in these tests is random, so runs sharing one Redis never share a bucket.
      trustForwardedFor: true,
      limits: {
        user: { limit: 3, windowMs: WINDOW_MS },
        anonymous: { limit: 2, windowMs: WINDOW_MS },
        auth: { limit: 2, windowMs: WINDOW_MS },
        uploads: { limit: 1, windowMs: WINDOW_MS },
      },
    });
  });
  afterAll(async () => {
    gateway.stop();
    upstream.stop();
    await kv.close();
  });

  const call = (path: string, init: RequestInit & { ip?: string; token?: string } = {}) =>
    fetch(`${gateway.url}${path}`, {
      ...init,
      headers: {
        ...(init.headers as Record<string, string>),
        'x-forwarded-for': init.ip ?? randomIp(),
        ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
      },
    });

  it('counts a user down with RateLimit headers, answers 429 with Retry-After once empty, and admits again after the window', async () => {
    const token = await accessToken();
    const remaining: string[] = [];
    for (let i = 0; i < 3; i++) {
      // A new address each time: a signed-in user is limited per user, not per address.
      const res = await call('/api/jobs', { token });
      expect(res.status).toBe(200);
      expect(res.headers.get('ratelimit-limit')).toBe('3');
      expect(Number(res.headers.get('ratelimit-reset'))).toBeGreaterThan(0);
      remaining.push(res.headers.get('ratelimit-remaining')!);
    }
    expect(remaining).toEqual(['2', '1', '0']);

    const limited = await call('/api/jobs', { token });
    expect(limited.status).toBe(429);
    expect(limited.headers.get('content-type')).toBe('application/problem+json');
    const retryAfter = Number(limited.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(limited.headers.get('ratelimit-limit')).toBe('3');
    expect(limited.headers.get('ratelimit-remaining')).toBe('0');
    expect(Number(limited.headers.get('ratelimit-reset'))).toBeGreaterThan(0);
    const body = await json(limited);
    expect(body.code).toBe('rate_limited');
    expect(body.bucket).toBe('user');

    await Bun.sleep(WINDOW_MS);
    const again = await call('/api/jobs', { token });
    expect(again.status).toBe(200);
    expect(again.headers.get('ratelimit-remaining')).toBe('2');
  });

  it('keeps each user in their own bucket', async () => {
    const [alice, bob] = await Promise.all([accessToken(), accessToken()]);
    for (let i = 0; i < 3; i++) expect((await call('/api/jobs', { token: alice })).status).toBe(200);
    expect((await call('/api/jobs', { token: alice })).status).toBe(429);
    expect((await call('/api/jobs', { token: bob })).status).toBe(200);
  });

  it('limits anonymous requests per client address', async () => {
    const ip = randomIp();
    const link = '/api/files/f1/content?expires=1&sig=s';
    expect((await call(link, { ip })).status).toBe(200);
    expect((await call(link, { ip })).status).toBe(200);
    const limited = await call(link, { ip });
    expect(limited.status).toBe(429);
    expect((await json(limited)).bucket).toBe('anonymous');
    expect((await call(link, { ip: randomIp() })).status).toBe(200);
  });

  it('gives login and register their own stricter bucket per address', async () => {
    const ip = randomIp();
    const post = (path: string) => call(path, { ip, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect((await post('/api/auth/login')).status).toBe(200);
    expect((await post('/api/auth/register')).status).toBe(200);
    const limited = await post('/api/auth/login');
    expect(limited.status).toBe(429);
    expect((await json(limited)).bucket).toBe('auth');
    // The address's general anonymous bucket is untouched.
    expect((await post('/api/auth/refresh')).status).toBe(200);
  });

  it('counts a percent-encoded login path in the auth bucket too', async () => {
    const ip = randomIp();
    const post = () => call('/api/auth/log%69n', { ip, method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect((await post()).status).toBe(200);
    expect((await post()).status).toBe(200);
    const limited = await post();
    expect(limited.status).toBe(429);
    expect((await json(limited)).bucket).toBe('auth');
  });

  it('gives uploads their own bucket per user, leaving the rest of the API open', async () => {
    const token = await accessToken();
    const upload = () => call('/api/files', { token, method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(10) });
    expect((await upload()).status).toBe(201);
    const limited = await upload();
    expect(limited.status).toBe(429);
    expect((await json(limited)).bucket).toBe('uploads');
    expect((await call('/api/files', { token })).status).toBe(200);
  });

  it('charges refused tokens to the address, so guessing tokens ends in 429', async () => {
    const ip = randomIp();
    const forged = { ip, headers: { authorization: 'Bearer guessed.token.value' } };
    expect((await call('/api/jobs', forged)).status).toBe(401);
    expect((await call('/api/jobs', forged)).status).toBe(401);
    expect((await call('/api/jobs', forged)).status).toBe(429);
  });
});

describe('client address', () => {
  it('ignores a client-sent X-Forwarded-For unless the proxy in front is trusted', async () => {
    const upstream = startRecordingUpstream();
    const gateway = startGateway({ base: upstream.url, kv: createMemoryKv(), limits: { anonymous: { limit: 2, windowMs: 60_000 } } });
    try {
      const link = `${gateway.url}/api/files/f1/content?sig=s`;
      // A new claimed address per request does not buy a new bucket.
      const statuses = [];
      for (let i = 0; i < 3; i++) statuses.push((await fetch(link, { headers: { 'x-forwarded-for': randomIp() } })).status);
      expect(statuses).toEqual([200, 200, 429]);
      expect(upstream.seen.map((r) => r.headers['x-forwarded-for'])).toEqual(['127.0.0.1', '127.0.0.1']);
    } finally {
      gateway.stop();
      upstream.stop();
    }
  });

  it('takes the last X-Forwarded-For hop from a trusted proxy and forwards only that', async () => {
    const upstream = startRecordingUpstream();
    const gateway = startGateway({ base: upstream.url, kv: createMemoryKv(), trustForwardedFor: true });
    try {
      await fetch(`${gateway.url}/api/files/f1/content?sig=s`, { headers: { 'x-forwarded-for': '203.0.113.1, 198.51.100.7' } });
      expect(upstream.seen[0]!.headers['x-forwarded-for']).toBe('198.51.100.7');
    } finally {
      gateway.stop();
      upstream.stop();
    }
  });
});

describe('rate limits when the KV is down', () => {
  const lines: string[] = [];
  const logger = createLogger({ level: 'warn', sink: (line) => lines.push(line) });
  let upstream: RecordingUpstream;

  beforeAll(() => {
    upstream = startRecordingUpstream();
  });
  afterAll(() => upstream.stop());

  const login = (gateway: Gateway) => fetch(`${gateway.url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  const jobs = async (gateway: Gateway) => fetch(`${gateway.url}/api/jobs`, { headers: { authorization: `Bearer ${await accessToken()}` } });

  it('by default fails open for the API (no RateLimit headers, a warning, a metric) and closed for login and register', async () => {
    lines.length = 0;
    // Tokens are verified against a working KV; only the rate-limit store is down.
    const gateway = startGateway({ base: upstream.url, kv: downKv(), authKv: createMemoryKv(), logger });
    try {
      const res = await jobs(gateway);
      expect(res.status).toBe(200);
      expect(res.headers.get('ratelimit-limit')).toBeNull();
      expect((await fetch(`${gateway.url}/api/files/f1/content?sig=s`)).status).toBe(200);

      const refused = await login(gateway);
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('5');
      expect((await json(refused)).code).toBe('rate_limit_unavailable');

      // One warning for the burst, not one per request.
      const warnings = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'rate-limit store unavailable');
      expect(warnings).toHaveLength(1);
      expect(warnings[0].policy).toBe('closed-for-auth');
      const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
      expect(metrics).toMatch(/gateway_rate_limit_store_failures\{service="api-gateway"\} 3\n/);
    } finally {
      gateway.stop();
    }
  });

  it('admits login too when the policy is open', async () => {
    const gateway = startGateway({ base: upstream.url, kv: downKv(), authKv: createMemoryKv(), kvDown: 'open', logger });
    try {
      expect((await login(gateway)).status).toBe(200);
      expect((await jobs(gateway)).status).toBe(200);
    } finally {
      gateway.stop();
    }
  });

  it('refuses everything with 503 when the policy is closed', async () => {
    const gateway = startGateway({ base: upstream.url, kv: downKv(), authKv: createMemoryKv(), kvDown: 'closed', logger });
    try {
      expect((await login(gateway)).status).toBe(503);
      expect((await jobs(gateway)).status).toBe(503);
    } finally {
      gateway.stop();
    }
  });

  it('treats a KV that never answers as down once its timeout passes', async () => {
    const gateway = startGateway({ base: upstream.url, kv: hungKv(), authKv: createMemoryKv(), kvTimeoutMs: 50, logger });
    try {
      expect((await jobs(gateway)).status).toBe(200);
      expect((await login(gateway)).status).toBe(503);
    } finally {
      gateway.stop();
    }
  });
});
