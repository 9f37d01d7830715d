import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'bun:test';
import { createMemoryKv } from '@shared/kv-memory.ts';
import { revokeUserAccessTokens } from '@shared/auth.ts';
import { edgeAccessFor } from '../../services/api-gateway/src/edge-auth.ts';
import { json } from '../support/json.ts';
import {
  accessToken,
  API_TOKENS,
  downKv,
  serviceToken,
  startGateway,
  startRecordingUpstream,
  tamperedToken,
  unsignedToken,
  type Gateway,
  type RecordingUpstream,
} from './gateway-harness.ts';

describe('edge authentication', () => {
  let upstream: RecordingUpstream;
  let gateway: Gateway;
  const authKv = createMemoryKv();

  beforeAll(() => {
    upstream = startRecordingUpstream();
    gateway = startGateway({ base: upstream.url, kv: createMemoryKv(), authKv });
  });
  afterAll(() => {
    gateway.stop();
    upstream.stop();
  });
  beforeEach(() => {
    upstream.seen.length = 0;
  });

  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${gateway.url}${path}`, { headers });
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  it('answers a request without a token with a 401 problem and a Bearer challenge, forwarding nothing', async () => {
    const res = await get('/api/jobs');
    expect(res.status).toBe(401);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(res.headers.get('www-authenticate')).toContain('Bearer');
    expect((await json(res)).code).toBe('unauthorized');
    expect(upstream.seen).toHaveLength(0);
  });

  it('stops a token whose payload was edited after signing with 401, without reaching the upstream', async () => {
    const res = await get('/api/jobs', bearer(await tamperedToken()));
    expect(res.status).toBe(401);
    expect(upstream.seen).toHaveLength(0);
  });

  it('stops an expired token with 401, without reaching the upstream', async () => {
    const res = await get('/api/jobs', bearer(await accessToken({ expiresIn: -120 })));
    expect(res.status).toBe(401);
    expect(upstream.seen).toHaveLength(0);
  });

  it('stops an alg:none token with 401, without reaching the upstream', async () => {
    const res = await get('/api/admin/users', bearer(unsignedToken()));
    expect(res.status).toBe(401);
    expect(upstream.seen).toHaveLength(0);
  });

  it('stops garbage, a Basic credential and an unknown API token with 401', async () => {
    for (const authorization of ['Bearer not.a.jwt', 'Basic YWRtaW46YWRtaW4=', 'Bearer fip_unknown', 'Bearer']) {
      const res = await get('/api/files', { authorization });
      expect(res.status).toBe(401);
    }
    expect(upstream.seen).toHaveLength(0);
  });

  it('stops an access token revoked after it was issued with 401', async () => {
    const sub = crypto.randomUUID();
    const token = await accessToken({ sub });
    await revokeUserAccessTokens(authKv, sub, 60_000, Date.now() + 1000);
    const res = await get('/api/jobs', bearer(token));
    expect(res.status).toBe(401);
    expect(upstream.seen).toHaveLength(0);
  });

  it('refuses a service token at the public edge with a 403 problem', async () => {
    const res = await get('/api/jobs', bearer(await serviceToken('job-processor')));
    expect(res.status).toBe(403);
    expect((await json(res)).code).toBe('service_token_not_accepted');
    expect(upstream.seen).toHaveLength(0);
  });

  it('forwards a request with a valid access token, its Authorization unchanged', async () => {
    const token = await accessToken();
    const res = await get('/api/jobs/echo', bearer(token));
    expect(res.status).toBe(200);
    const seen = await json(res);
    expect(seen.path).toBe('/jobs/echo');
    expect(seen.headers.authorization).toBe(`Bearer ${token}`);
  });

  it('forwards a request with a live API token', async () => {
    API_TOKENS.set('fip_live-token-1', { userId: crypto.randomUUID(), roles: ['researcher'], tokenId: 't1' });
    const res = await get('/api/files/echo', bearer('fip_live-token-1'));
    expect(res.status).toBe(200);
    expect((await json(res)).headers.authorization).toBe('Bearer fip_live-token-1');
  });

  it('drops every client-sent identity header before forwarding', async () => {
    const res = await get('/api/users/echo', {
      ...bearer(await accessToken()),
      'x-user-id': 'admin',
      'x-user-roles': 'admin',
      'x-user-email': 'root@example.org',
      'x-identity': '{"sub":"admin"}',
      'x-identity-roles': 'admin',
      'x-forwarded-user': 'admin',
      'x-authenticated-user': 'admin',
      'x-remote-user': 'admin',
      'x-service-name': 'job-processor',
      'x-internal-caller': 'monitoring',
      'x-real-ip': '10.0.0.1',
      'x-forwarded-for': '10.0.0.1',
      forwarded: 'for=10.0.0.1',
    });
    const seen = await json(res);
    const names = Object.keys(seen.headers);
    for (const spoofed of [
      'x-user-id',
      'x-user-roles',
      'x-user-email',
      'x-identity',
      'x-identity-roles',
      'x-forwarded-user',
      'x-authenticated-user',
      'x-remote-user',
      'x-service-name',
      'x-internal-caller',
      'x-real-ip',
      'forwarded',
    ]) {
      expect(names).not.toContain(spoofed);
    }
    // The address the gateway saw, not the one the client claimed.
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
  });

  it('lets the public auth routes through without a token', async () => {
    for (const path of ['/api/auth/login', '/api/auth/register', '/api/auth/refresh', '/api/auth/logout', '/api/auth/login/']) {
      const res = await fetch(`${gateway.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      expect(res.status).toBe(200);
    }
    expect((await get('/api/auth/jwks')).status).toBe(200);
    expect(upstream.seen.map((r) => `${r.method} ${r.path}`)).toEqual([
      'POST /auth/login',
      'POST /auth/register',
      'POST /auth/refresh',
      'POST /auth/logout',
      'POST /auth/login',
      'GET /auth/jwks',
    ]);
  });

  it('keeps the public routes to their method: GET /api/auth/login needs a token', async () => {
    expect((await get('/api/auth/login')).status).toBe(401);
    expect((await fetch(`${gateway.url}/api/auth/jwks`, { method: 'POST' })).status).toBe(401);
    expect(upstream.seen).toHaveLength(0);
  });

  it('lets a signed download link through without a token and leaves the signature check to file-manager', async () => {
    const link = '/api/files/0190f0f0-0000-7000-8000-000000000001/content?expires=9999999999&sig=abc123';
    const res = await get(link);
    expect(res.status).toBe(200);
    expect(upstream.seen.map((r) => r.path + r.query)).toEqual(['/files/0190f0f0-0000-7000-8000-000000000001/content?expires=9999999999&sig=abc123']);
  });

  it('needs a token for the download route without a signature, and for other methods or paths with one', async () => {
    expect((await get('/api/files/f1/content?expires=1')).status).toBe(401);
    expect((await fetch(`${gateway.url}/api/files/f1/content?sig=x`, { method: 'DELETE' })).status).toBe(401);
    expect((await get('/api/files/f1?sig=x')).status).toBe(401);
    expect((await get('/api/jobs/j1/content?sig=x')).status).toBe(401);
    expect(upstream.seen).toHaveLength(0);
  });

  it('checks a percent-encoded or dot-segment path as the route it resolves to', async () => {
    expect((await get('/api/%6Aobs')).status).toBe(401);
    expect((await get('/api/auth/../jobs')).status).toBe(401);
    expect((await get('/api/files/%2e%2e/content?sig=x')).status).not.toBe(200);
    expect(upstream.seen).toHaveLength(0);
  });

  it('serves its own operational endpoints without a token', async () => {
    for (const path of ['/health', '/ready', '/metrics', '/service-info']) expect((await get(path)).status).toBe(200);
  });

  it('answers an unrouted /api path with 404 before asking for a token', async () => {
    const res = await get('/api/nowhere');
    expect(res.status).toBe(404);
    expect((await json(res)).code).toBe('route_not_found');
  });
});

describe('edge authentication when verification cannot run', () => {
  it('answers 503 auth_unavailable, not 401 or 500, when the revocation store is down', async () => {
    const upstream = startRecordingUpstream();
    // Rate limits on a working KV; the authenticator's revocation check on one that is down.
    const gateway = startGateway({ base: upstream.url, kv: createMemoryKv(), authKv: downKv() });
    try {
      const res = await fetch(`${gateway.url}/api/jobs`, { headers: { authorization: `Bearer ${await accessToken()}` } });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('5');
      expect((await json(res)).code).toBe('auth_unavailable');
      expect(upstream.seen).toHaveLength(0);
    } finally {
      gateway.stop();
      upstream.stop();
    }
  });
});

describe('edgeAccessFor', () => {
  it('classifies public, signed-link and protected requests', () => {
    expect(edgeAccessFor('POST', '/api/auth/login', false)).toBe('public');
    expect(edgeAccessFor('GET', '/api/auth/jwks/', false)).toBe('public');
    expect(edgeAccessFor('GET', '/api/files/abc/content', true)).toBe('signed-link');
    expect(edgeAccessFor('HEAD', '/api/files/abc/content', true)).toBe('signed-link');
    expect(edgeAccessFor('GET', '/api/files/abc/content', false)).toBe('protected');
    expect(edgeAccessFor('GET', '/api/files/a/b/content', true)).toBe('protected');
    expect(edgeAccessFor('POST', '/api/auth/change-password', false)).toBe('protected');
    expect(edgeAccessFor('GET', '/api/users/me', false)).toBe('protected');
  });
});
