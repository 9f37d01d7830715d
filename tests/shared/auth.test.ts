/**
 * shared/auth.ts on its own: the service credential cache, the authenticator's cache bounds under an
 * injected clock (how long a revoked API token or access token keeps working in a service that is not
 * user-service), token checks, and the default-deny middleware with its viewer rule.
 */
import { createServiceApp, type ServiceApp } from '@shared/app.ts';
import {
  authMiddleware,
  createAuthenticator,
  createServiceCredential,
  requireRole,
  requireService,
  revokeUserAccessTokens,
  SERVICE_AUDIENCE,
  USER_AUDIENCE,
  type Authenticator,
  type Identity,
  type IntrospectionResult,
} from '@shared/auth.ts';
import { HttpProblem } from '@shared/errors.ts';
import { createMemoryKv } from '@shared/kv-memory.ts';
import { createLogger } from '@shared/log.ts';
import { beforeAll, describe, expect, it } from 'bun:test';
import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { json } from '../support/json.ts';

const ISSUER = 'unit-issuer';
const START = Date.UTC(2030, 0, 1, 12, 0, 0);

/** A clock tests move by hand. */
function clock(start = START) {
  let t = start;
  return { now: () => t, set: (ms: number) => void (t = ms), advance: (ms: number) => void (t += ms) };
}

/** A promise resolved from outside, to hold a call in flight. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

async function rejection(promise: Promise<unknown>): Promise<HttpProblem> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof HttpProblem) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}

describe('createServiceCredential', () => {
  const TTL = 15 * 60_000;

  it('caches the token until one minute before it expires, then asks for a new one', async () => {
    const time = clock();
    let issued = 0;
    const credential = createServiceCredential(async () => {
      issued += 1;
      return { token: `token-${issued}`, expiresAt: time.now() + TTL };
    }, time.now);
    expect(await credential.authorization()).toBe('Bearer token-1');
    time.set(START + TTL - 60_000 - 1);
    expect(await credential.authorization()).toBe('Bearer token-1');
    expect(issued).toBe(1);
    time.set(START + TTL - 60_000);
    expect(await credential.authorization()).toBe('Bearer token-2');
    expect(await credential.authorization()).toBe('Bearer token-2');
    expect(issued).toBe(2);
  });

  it('shares one in-flight request between concurrent callers', async () => {
    const time = clock();
    const pending = deferred<{ token: string; expiresAt: number }>();
    let calls = 0;
    const credential = createServiceCredential(() => {
      calls += 1;
      return pending.promise;
    }, time.now);
    const waiting = Promise.all([credential.authorization(), credential.authorization(), credential.authorization()]);
    await Bun.sleep(0);
    expect(calls).toBe(1);
    pending.resolve({ token: 'shared', expiresAt: time.now() + TTL });
    expect(await waiting).toEqual(['Bearer shared', 'Bearer shared', 'Bearer shared']);
    expect(calls).toBe(1);
  });

  it('rejects every waiter when the request fails, and tries again on the next call', async () => {
    const time = clock();
    const first = deferred<{ token: string; expiresAt: number }>();
    let calls = 0;
    const credential = createServiceCredential(() => {
      calls += 1;
      return calls === 1 ? first.promise : Promise.resolve({ token: 'second', expiresAt: time.now() + TTL });
    }, time.now);
    const both = Promise.allSettled([credential.authorization(), credential.authorization()]);
    first.reject(new Error('user-service down'));
    const outcomes = await both;
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected']);
    for (const outcome of outcomes) expect((outcome as PromiseRejectedResult).reason).toBeInstanceOf(Error);
    expect(calls).toBe(1);
    expect(await credential.authorization()).toBe('Bearer second');
    expect(calls).toBe(2);
  });
});

describe('createAuthenticator', () => {
  let privateKey: CryptoKey;
  let keys: ReturnType<typeof createLocalJWKSet>;
  const KID = 'unit-key';

  beforeAll(async () => {
    const pair = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    privateKey = pair.privateKey;
    keys = createLocalJWKSet({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: KID, alg: 'EdDSA' }] });
  });

  /** A token like user-service's, issued at `issuedMs`. */
  function sign(sub: string, issuedMs: number, options: { audience?: string; roles?: string[]; withIatMs?: boolean } = {}) {
    const iat = Math.floor(issuedMs / 1000);
    const claims: Record<string, unknown> = { roles: options.roles ?? ['researcher'] };
    if (options.withIatMs !== false) claims.iat_ms = issuedMs;
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'EdDSA', kid: KID })
      .setIssuer(ISSUER)
      .setSubject(sub)
      .setAudience(options.audience ?? USER_AUDIENCE)
      .setIssuedAt(iat)
      .setExpirationTime(iat + 900)
      .setJti(crypto.randomUUID())
      .sign(privateKey);
  }

  function build(options: { introspect?: (token: string) => Promise<IntrospectionResult | null>; introspectionCacheMs?: number; revocationCacheMs?: number } = {}) {
    const time = clock();
    const kv = createMemoryKv({ now: time.now });
    const authenticator = createAuthenticator({
      keys,
      issuer: ISSUER,
      kv,
      introspect: options.introspect ?? (async () => null),
      introspectionCacheMs: options.introspectionCacheMs,
      revocationCacheMs: options.revocationCacheMs,
      now: time.now,
    });
    return { time, kv, authenticator };
  }

  /** An introspection endpoint whose answer the test switches, counting calls. */
  function switchableIntrospection() {
    const state = { live: true, calls: 0 };
    const introspect = async (): Promise<IntrospectionResult | null> => {
      state.calls += 1;
      return state.live ? { userId: 'user-1', roles: ['researcher'], tokenId: 'tok-1' } : null;
    };
    return { state, introspect };
  }

  const API_TOKEN = `fip_${'x'.repeat(43)}`;

  describe('API tokens', () => {
    it('keep working after revocation for less than introspectionCacheMs, and fail from then on', async () => {
      const { state, introspect } = switchableIntrospection();
      const { time, authenticator } = build({ introspect, introspectionCacheMs: 1_000 });
      expect(await authenticator.authenticate(`Bearer ${API_TOKEN}`)).toEqual({
        kind: 'user',
        subject: 'user-1',
        roles: ['researcher'],
        via: 'api-token',
        tokenId: 'tok-1',
      });
      state.live = false;
      time.advance(999);
      expect((await authenticator.authenticate(`Bearer ${API_TOKEN}`)).subject).toBe('user-1');
      expect(state.calls).toBe(1);
      time.advance(1);
      const problem = await rejection(authenticator.authenticate(`Bearer ${API_TOKEN}`));
      expect(problem.status).toBe(401);
      expect(problem.headers['www-authenticate']).toStartWith('Bearer');
      expect(state.calls).toBe(2);
    });

    it('default to a 10 s bound', async () => {
      const { state, introspect } = switchableIntrospection();
      const { time, authenticator } = build({ introspect });
      await authenticator.authenticate(`Bearer ${API_TOKEN}`);
      state.live = false;
      time.advance(9_999);
      await authenticator.authenticate(`Bearer ${API_TOKEN}`);
      time.advance(1);
      expect((await rejection(authenticator.authenticate(`Bearer ${API_TOKEN}`))).status).toBe(401);
    });

    it('are checked on every request with introspectionCacheMs 0 (user-service itself)', async () => {
      const { state, introspect } = switchableIntrospection();
      const { authenticator } = build({ introspect, introspectionCacheMs: 0 });
      await authenticator.authenticate(`Bearer ${API_TOKEN}`);
      await authenticator.authenticate(`Bearer ${API_TOKEN}`);
      expect(state.calls).toBe(2);
      state.live = false;
      expect((await rejection(authenticator.authenticate(`Bearer ${API_TOKEN}`))).status).toBe(401);
    });

    it('cache a refusal for the same bound, so a flood of one bad token costs one introspection', async () => {
      const { state, introspect } = switchableIntrospection();
      state.live = false;
      const { time, authenticator } = build({ introspect, introspectionCacheMs: 1_000 });
      for (let i = 0; i < 5; i++) expect((await rejection(authenticator.authenticate(`Bearer ${API_TOKEN}`))).status).toBe(401);
      expect(state.calls).toBe(1);
      state.live = true;
      time.advance(1_000);
      expect((await authenticator.authenticate(`Bearer ${API_TOKEN}`)).subject).toBe('user-1');
    });
  });

  describe('access tokens', () => {
    it('keep working after a revocation mark for less than revocationCacheMs, and fail from then on', async () => {
      const { time, kv, authenticator } = build({ revocationCacheMs: 2_000 });
      const token = await sign('user-1', START - 1_000);
      expect(await authenticator.authenticate(`Bearer ${token}`)).toMatchObject({ kind: 'user', subject: 'user-1', via: 'access-token' });
      await revokeUserAccessTokens(kv, 'user-1', 960_000, time.now());
      time.advance(1_999);
      expect((await authenticator.authenticate(`Bearer ${token}`)).subject).toBe('user-1');
      time.advance(1);
      const problem = await rejection(authenticator.authenticate(`Bearer ${token}`));
      expect(problem.status).toBe(401);
      expect(problem.detail).toContain('revoked');
    });

    it('default to a 5 s revocation bound', async () => {
      const { time, kv, authenticator } = build();
      const token = await sign('user-1', START - 1_000);
      await authenticator.authenticate(`Bearer ${token}`);
      await revokeUserAccessTokens(kv, 'user-1', 960_000, time.now());
      time.advance(4_999);
      await authenticator.authenticate(`Bearer ${token}`);
      time.advance(1);
      expect((await rejection(authenticator.authenticate(`Bearer ${token}`))).status).toBe(401);
    });

    it('tell apart tokens issued within the same second as the mark: earlier refused, later accepted', async () => {
      const { kv, authenticator } = build({ revocationCacheMs: 0 });
      const before = await sign('user-1', START + 100);
      const after = await sign('user-1', START + 600);
      await revokeUserAccessTokens(kv, 'user-1', 960_000, START + 500);
      expect((await rejection(authenticator.authenticate(`Bearer ${before}`))).status).toBe(401);
      expect((await authenticator.authenticate(`Bearer ${after}`)).subject).toBe('user-1');
      // Without iat_ms only whole seconds are known, so a token from that second counts as before the mark.
      const secondsOnly = await sign('user-1', START + 600, { withIatMs: false });
      expect((await rejection(authenticator.authenticate(`Bearer ${secondsOnly}`))).status).toBe(401);
    });

    it("marks only the revoked user's tokens", async () => {
      const { kv, authenticator } = build({ revocationCacheMs: 0 });
      await revokeUserAccessTokens(kv, 'user-1', 960_000, START);
      expect((await authenticator.authenticate(`Bearer ${await sign('user-2', START - 1_000)}`)).subject).toBe('user-2');
    });

    it('refuse expired tokens by the injected clock, with 5 s of tolerance', async () => {
      const { time, authenticator } = build();
      const token = await sign('user-1', START);
      time.set(START + 900_000 + 4_000);
      await authenticator.authenticate(`Bearer ${token}`);
      time.set(START + 900_000 + 6_000);
      expect((await rejection(authenticator.authenticate(`Bearer ${token}`))).status).toBe(401);
    });

    it('accept only a well-formed Bearer header', async () => {
      const { authenticator } = build();
      const token = await sign('user-1', START);
      expect((await authenticator.authenticate(`bearer ${token}`)).subject).toBe('user-1');
      for (const header of [undefined, '', token, `Basic ${token}`, `Bearer ${token} extra`, 'Bearer ']) {
        expect((await rejection(authenticator.authenticate(header))).status).toBe(401);
      }
    });
  });

  describe('service tokens', () => {
    it('identify the service, carry only the service role, and ignore user revocation marks', async () => {
      const { kv, authenticator } = build({ revocationCacheMs: 0 });
      const token = await sign('job-processor', START - 1_000, { audience: SERVICE_AUDIENCE, roles: ['admin'] });
      await revokeUserAccessTokens(kv, 'job-processor', 960_000, START);
      expect(await authenticator.authenticate(`Bearer ${token}`)).toMatchObject({ kind: 'service', subject: 'job-processor', roles: ['service'], via: 'service-token' });
    });
  });
});

describe('authMiddleware and requireRole', () => {
  /** An authenticator that maps fixed bearer strings to identities. */
  function fixedAuthenticator(identities: Record<string, Identity>): Authenticator {
    return {
      async authenticate(header) {
        // What a revocation check against a KV that is down throws: not a verdict on the token.
        if (header === 'Bearer kv-down') throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
        const identity = header ? identities[header.replace(/^Bearer /, '')] : undefined;
        if (!identity) throw new HttpProblem(401, 'unauthorized', 'no');
        return identity;
      },
    };
  }
  const user = (roles: string[]): Identity => ({ kind: 'user', subject: `u-${roles.join('-')}`, roles, via: 'access-token', tokenId: 't' });
  const identities: Record<string, Identity> = {
    viewer: user(['viewer']),
    nobody: user([]),
    researcher: user(['researcher']),
    admin: user(['admin']),
    service: { kind: 'service', subject: 'job-processor', roles: ['service'], via: 'service-token', tokenId: 's' },
    monitoring: { kind: 'service', subject: 'monitoring', roles: ['service'], via: 'service-token', tokenId: 'm' },
    // A user whose subject happens to read like a service name: still a user.
    impostor: { kind: 'user', subject: 'job-processor', roles: ['admin'], via: 'access-token', tokenId: 'i' },
  };

  let app: ServiceApp;
  beforeAll(() => {
    app = createServiceApp({
      name: 'guarded',
      version: '0.0.0',
      description: 'middleware test',
      logger: createLogger({ level: 'silent' }),
      auth: { authenticator: fixedAuthenticator(identities), publicPaths: ['/open'], viewerWritablePrefixes: ['/users/me'] },
    });
    app.get('/open', (c) => c.json({ open: true }, 200));
    app.post('/open', (c) => c.json({ open: true }, 200));
    for (const path of ['/things', '/users/me', '/users/me/tokens', '/users/meddle']) {
      app.get(path, (c) => c.json({ subject: c.get('identity').subject }, 200));
      app.post(path, (c) => c.json({ subject: c.get('identity').subject }, 200));
    }
    app.post('/admin-only', requireRole('admin'), (c) => c.json({ ok: true }, 200));
    app.get('/internal/jobs-only', requireService('job-processor'), (c) => c.json({ ok: true }, 200));
  });

  const call = (method: string, path: string, token?: string) =>
    app.request(path, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });

  it('answers 503 auth_unavailable with Retry-After, not 500, when the token cannot be checked at all', async () => {
    const res = await call('GET', '/things', 'kv-down');
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(await res.json()).toMatchObject({ code: 'auth_unavailable' });
  });

  it('serves public paths and the kit endpoints without a token, and denies everything else (401)', async () => {
    expect((await call('GET', '/open')).status).toBe(200);
    expect((await call('POST', '/open')).status).toBe(200);
    expect((await call('GET', '/health')).status).toBe(200);
    expect((await call('GET', '/things')).status).toBe(401);
    expect((await call('GET', '/nowhere')).status).toBe(401);
  });

  it('lets viewers (and users without a role) read but not write, except under their self-service prefixes', async () => {
    for (const token of ['viewer', 'nobody']) {
      expect((await call('GET', '/things', token)).status).toBe(200);
      const write = await call('POST', '/things', token);
      expect(write.status).toBe(403);
      expect((await json(write)).code).toBe('read_only');
      expect((await call('POST', '/users/me', token)).status).toBe(200);
      expect((await call('POST', '/users/me/tokens', token)).status).toBe(200);
      expect((await call('POST', '/users/meddle', token)).status).toBe(403);
    }
  });

  it('lets researchers, admins and services write', async () => {
    for (const token of ['researcher', 'admin', 'service']) expect((await call('POST', '/things', token)).status).toBe(200);
  });

  it('requireRole answers 403 forbidden without the role', async () => {
    expect((await call('POST', '/admin-only', 'admin')).status).toBe(200);
    const res = await call('POST', '/admin-only', 'researcher');
    expect(res.status).toBe(403);
    expect((await json(res)).code).toBe('forbidden');
    expect((await call('POST', '/admin-only', 'service')).status).toBe(403);
  });

  it('requireService lets only the named services in: another service, a user, even one named like the service, get 403', async () => {
    const allowed = await call('GET', '/internal/jobs-only', 'service');
    expect(allowed.status).toBe(200);
    expect(await allowed.json()).toEqual({ ok: true });
    for (const token of ['monitoring', 'admin', 'impostor']) {
      const res = await call('GET', '/internal/jobs-only', token);
      expect(res.status).toBe(403);
      expect((await json(res)).code).toBe('forbidden');
    }
  });
});
