/**
 * user-service tokens, in-process on real dependencies and across a real HTTP hop to a second
 * service: access-token forgeries, personal API tokens and their revocation bound elsewhere, spoofed
 * identity headers, the viewer role, service tokens, JWKS and key rotation — and no secret in the logs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { sql } from 'drizzle-orm';
import { decodeJwt, decodeProtectedHeader, generateKeyPair, SignJWT, type JWK } from 'jose';
import type { ServiceApp } from '@shared/app.ts';
import { json } from '../support/json.ts';
import {
  createUserServiceHarness,
  remoteAuthenticator,
  serveUserService,
  TEST_ISSUER,
  TEST_SERVICE,
  tinyProtectedApp,
  type Session,
  type UserServiceHarness,
} from '../support/user-service.ts';

let h: UserServiceHarness;
let server: { url: string; stop(): Promise<void> };
beforeAll(async () => {
  h = await createUserServiceHarness();
  server = serveUserService(h.app);
});
afterAll(async () => {
  await server.stop();
  await h.close();
});

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const basic = (name: string, secret: string) => `Basic ${Buffer.from(`${name}:${secret}`).toString('base64')}`;

async function expect401(path: string, token: string, app?: ServiceApp) {
  const res = await h.request(path, { token }, app);
  expect(res.status).toBe(401);
  expect(res.headers.get('www-authenticate')).toStartWith('Bearer');
  expect((await json(res)).code).toBe('unauthorized');
}

async function createApiToken(token: string, body: Record<string, unknown> = { name: 'pipeline' }) {
  const res = await h.request('/users/me/api-tokens', { token, json: body });
  expect(res.status).toBe(201);
  const created = await json(res);
  h.remember(created.token);
  return created as { id: string; token: string; prefix: string; name: string; expiresAt: string | null };
}

async function serviceToken(): Promise<string> {
  const res = await h.request('/internal/service-token', { method: 'POST', headers: { authorization: basic(TEST_SERVICE, h.serviceSecret) } });
  expect(res.status).toBe(200);
  const { token } = await json(res);
  h.remember(token);
  return token;
}

/** Claims like user-service's, signed by `key` under `kid`; `overrides` replace any of them. */
async function signUserToken(key: CryptoKey, kid: string, sub: string, overrides: Record<string, unknown> = {}) {
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub, roles: ['admin'], iss: TEST_ISSUER, aud: 'fip', iat: now, exp: now + 600, jti: crypto.randomUUID(), iat_ms: Date.now(), ...overrides };
  return new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', kid, typ: 'JWT' }).sign(key);
}

describe('access tokens', () => {
  it('authenticate /users/me as their user', async () => {
    const { user, session } = await h.signedInUser();
    const res = await h.request('/users/me', { token: session.accessToken });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ id: user.id, username: user.username, roles: ['researcher'] });
    const claims = decodeJwt(session.accessToken);
    expect(claims).toMatchObject({ sub: user.id, iss: TEST_ISSUER, aud: 'fip', roles: ['researcher'] });
    expect(claims.exp! - claims.iat!).toBe(900);
    expect(decodeProtectedHeader(session.accessToken).alg).toBe('EdDSA');
  });

  it('refuses a missing or non-bearer Authorization with 401', async () => {
    expect((await h.request('/users/me')).status).toBe(401);
    const res = await h.request('/users/me', { headers: { authorization: basic('someone', 'something-long-enough') } });
    expect(res.status).toBe(401);
  });

  it('refuses a token signed by another Ed25519 key, under the real kid or another one', async () => {
    const { user, session } = await h.signedInUser();
    const realKid = decodeProtectedHeader(session.accessToken).kid!;
    const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    await expect401('/users/me', await signUserToken(privateKey, realKid, user.id));
    await expect401('/users/me', await signUserToken(privateKey, crypto.randomUUID(), user.id));
  });

  it("refuses alg 'none' tokens, with and without the real kid", async () => {
    const { session } = await h.signedInUser();
    const kid = decodeProtectedHeader(session.accessToken).kid!;
    const payload = b64({ ...decodeJwt(session.accessToken), roles: ['admin'] });
    await expect401('/users/me', `${b64({ alg: 'none', typ: 'JWT' })}.${payload}.`);
    await expect401('/users/me', `${b64({ alg: 'none', kid, typ: 'JWT' })}.${payload}.`);
    await expect401('/users/me', `${b64({ alg: 'none', kid, typ: 'JWT' })}.${payload}.${session.accessToken.split('.')[2]}`);
  });

  it('refuses an HS256 token keyed with the published public key (algorithm confusion)', async () => {
    const { user, session } = await h.signedInUser();
    const kid = decodeProtectedHeader(session.accessToken).kid!;
    const jwks = (await json(await h.request('/.well-known/jwks.json'))) as { keys: JWK[] };
    const publicJwk = jwks.keys.find((k) => k.kid === kid)!;
    const secret = new TextEncoder().encode(JSON.stringify(publicJwk));
    const now = Math.floor(Date.now() / 1000);
    const forged = await new SignJWT({ roles: ['admin'], iat_ms: Date.now() })
      .setProtectedHeader({ alg: 'HS256', kid })
      .setSubject(user.id)
      .setIssuer(TEST_ISSUER)
      .setAudience('fip')
      .setIssuedAt(now)
      .setExpirationTime(now + 600)
      .setJti(crypto.randomUUID())
      .sign(secret);
    await expect401('/users/me', forged);
  });

  it('refuses an expired token (issued by a user-service whose clock is an hour behind)', async () => {
    const user = await h.register();
    const past = h.buildApp({ now: () => Date.now() - 3_600_000 });
    const res = await h.request('/auth/login', { json: { login: user.username, password: user.password } }, past.app);
    expect(res.status).toBe(200);
    const stale = (await json(res)) as Session;
    h.remember(stale.accessToken, stale.refreshToken);
    expect(decodeJwt(stale.accessToken).exp! * 1000).toBeLessThan(Date.now());
    await expect401('/users/me', stale.accessToken);
  });

  it('refuses a token whose payload was changed (another sub, more roles) under the original signature', async () => {
    const alice = await h.signedInUser();
    const bob = await h.signedInUser();
    const [header, payload, signature] = alice.session.accessToken.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    await expect401('/users/me', `${header}.${b64({ ...claims, sub: bob.user.id })}.${signature}`);
    await expect401('/users/me', `${header}.${b64({ ...claims, roles: ['admin'] })}.${signature}`);
    // The untouched token still works: only the change is refused.
    expect((await h.request('/users/me', { token: alice.session.accessToken })).status).toBe(200);
  });

  it("refuses tokens signed with user-service's own key but for another issuer or audience, or without a jti", async () => {
    const { user, session } = await h.signedInUser();
    const { kid, key } = await h.domain.keys.signer();
    expect(decodeProtectedHeader(session.accessToken).kid).toBe(kid);
    const genuine = await signUserToken(key, kid, user.id, { roles: ['researcher'] });
    h.remember(genuine);
    expect((await h.request('/users/me', { token: genuine })).status).toBe(200);
    await expect401('/users/me', await signUserToken(key, kid, user.id, { iss: 'someone-else' }));
    await expect401('/users/me', await signUserToken(key, kid, user.id, { aud: 'another-platform' }));
    await expect401('/users/me', await signUserToken(key, kid, user.id, { jti: undefined }));
  });

  it('refuses a user token at /internal/introspect with 403', async () => {
    const { session } = await h.signedInUser();
    const apiToken = await createApiToken(session.accessToken);
    const res = await h.request('/internal/introspect', { token: session.accessToken, json: { token: apiToken.token } });
    expect(res.status).toBe(403);
    expect((await json(res)).code).toBe('forbidden');
    const viaApiToken = await h.request('/internal/introspect', { token: apiToken.token, json: { token: apiToken.token } });
    expect(viaApiToken.status).toBe(403);
  });
});

describe('personal API tokens', () => {
  it('are created with a fip_ secret shown once, never listed, and authenticate /users/me', async () => {
    const { user, session } = await h.signedInUser();
    const created = await createApiToken(session.accessToken, { name: 'cluster pipeline', expiresInDays: 30 });
    expect(created.token).toStartWith('fip_');
    expect(created.token.length).toBeGreaterThan(40);
    expect(created).toMatchObject({ name: 'cluster pipeline', prefix: created.token.slice(0, 10) });
    expect(Math.abs(new Date(created.expiresAt!).getTime() - (Date.now() + 30 * 86_400_000))).toBeLessThan(60_000);

    const [row] = await h.query<{ token_hash: string }>(sql`select token_hash from users.api_tokens where id = ${created.id}`);
    expect(row!.token_hash).not.toContain(created.token);
    expect(row!.token_hash).toMatch(/^[0-9a-f]{64}$/);

    const me = await h.request('/users/me', { token: created.token });
    expect(me.status).toBe(200);
    expect((await json(me)).id).toBe(user.id);

    const list = await h.request('/users/me/api-tokens', { token: created.token });
    expect(list.status).toBe(200);
    const text = await list.text();
    expect(text).not.toContain(created.token);
    const items = JSON.parse(text).items;
    expect(items).toEqual([expect.objectContaining({ id: created.id, name: 'cluster pipeline', prefix: created.prefix })]);
    expect(items[0].lastUsedAt).not.toBeNull();
    expect(Object.keys(items[0])).not.toContain('token');
  });

  it('are refused at once in user-service after revoke (204), and gone from the list', async () => {
    const { session } = await h.signedInUser();
    const created = await createApiToken(session.accessToken);
    expect((await h.request('/users/me', { token: created.token })).status).toBe(200);
    const res = await h.request(`/users/me/api-tokens/${created.id}`, { method: 'DELETE', token: session.accessToken });
    expect(res.status).toBe(204);
    await expect401('/users/me', created.token);
    const list = await json(await h.request('/users/me/api-tokens', { token: session.accessToken }));
    expect(list.items).toEqual([]);
    expect((await h.request(`/users/me/api-tokens/${created.id}`, { method: 'DELETE', token: session.accessToken })).status).toBe(404);
  });

  it('keep working in another service until its introspection cache (300 ms) expires after revoke, then fail', async () => {
    const CACHE_MS = 300;
    const tiny = tinyProtectedApp(remoteAuthenticator(server.url, h.kv, h.serviceSecret, { introspectionCacheMs: CACHE_MS }), h.logger);
    const { user, session } = await h.signedInUser();
    const created = await createApiToken(session.accessToken);
    const before = await h.request('/things', { token: created.token }, tiny);
    expect(before.status).toBe(200);
    expect((await json(before)).identity).toEqual({ subject: user.id, kind: 'user', roles: ['researcher'], via: 'api-token' });

    expect((await h.request(`/users/me/api-tokens/${created.id}`, { method: 'DELETE', token: session.accessToken })).status).toBe(204);
    await expect401('/users/me', created.token);
    await Bun.sleep(CACHE_MS + 200);
    await expect401('/things', created.token, tiny);
  });

  it('fail once expired', async () => {
    const { session } = await h.signedInUser();
    const created = await createApiToken(session.accessToken, { name: 'short-lived', expiresInDays: 1 });
    expect((await h.request('/users/me', { token: created.token })).status).toBe(200);
    await h.query(sql`update users.api_tokens set expires_at = now() - interval '1 second' where id = ${created.id}`);
    await expect401('/users/me', created.token);
  });

  it('fail once their account is deactivated', async () => {
    const { user, session } = await h.signedInUser();
    const created = await createApiToken(session.accessToken);
    await h.query(sql`update users.accounts set is_active = false where id = ${user.id}`);
    await expect401('/users/me', created.token);
  });

  it("cannot be revoked by another user: 404, and the owner's token keeps working", async () => {
    const alice = await h.signedInUser();
    const bob = await h.signedInUser();
    const created = await createApiToken(alice.session.accessToken);
    const res = await h.request(`/users/me/api-tokens/${created.id}`, { method: 'DELETE', token: bob.session.accessToken });
    expect(res.status).toBe(404);
    expect((await json(res)).code).toBe('api_token_not_found');
    expect((await h.request('/users/me', { token: created.token })).status).toBe(200);
    const bobList = await json(await h.request('/users/me/api-tokens', { token: bob.session.accessToken }));
    expect(bobList.items).toEqual([]);
  });

  it('refuses a malformed id with 400 and an unknown fip_ token with 401', async () => {
    const { session } = await h.signedInUser();
    expect((await h.request('/users/me/api-tokens/not-a-uuid', { method: 'DELETE', token: session.accessToken })).status).toBe(400);
    await expect401('/users/me', `fip_${'A'.repeat(43)}`);
  });
});

describe('client-sent identity headers', () => {
  it('do not authenticate: X-User-ID and X-User-Roles without a token get 401', async () => {
    const { user } = await h.signedInUser();
    const res = await h.request('/users/me', { headers: { 'x-user-id': user.id, 'x-user-roles': 'admin' } });
    expect(res.status).toBe(401);
    const admin = await h.request('/admin/users', { headers: { 'x-user-id': user.id, 'x-user-roles': 'admin' } });
    expect(admin.status).toBe(401);
  });

  it("do not change who the token says: A's token with B's X-User-ID answers A's profile", async () => {
    const alice = await h.signedInUser();
    const bob = await h.signedInUser();
    const res = await h.request('/users/me', { token: alice.session.accessToken, headers: { 'x-user-id': bob.user.id, 'x-user-roles': 'admin' } });
    expect(res.status).toBe(200);
    expect((await json(res)).id).toBe(alice.user.id);
    const admin = await h.request('/admin/users', { token: alice.session.accessToken, headers: { 'x-user-roles': 'admin' } });
    expect(admin.status).toBe(403);
  });
});

describe('the viewer role', () => {
  let tiny: ServiceApp;
  beforeAll(() => {
    tiny = tinyProtectedApp(remoteAuthenticator(server.url, h.kv, h.serviceSecret), h.logger);
  });

  async function viewer() {
    const user = await h.register();
    await h.query(sql`update users.accounts set roles = ${'{viewer}'}::text[] where id = ${user.id}`);
    const session = await h.login(user.username, user.password);
    expect(session.user.roles).toEqual(['viewer']);
    return { user, session };
  }

  it('reads (200) but cannot write (403 read_only) in another service', async () => {
    const { user, session } = await viewer();
    const read = await h.request('/things', { token: session.accessToken }, tiny);
    expect(read.status).toBe(200);
    expect((await json(read)).identity).toMatchObject({ subject: user.id, roles: ['viewer'] });
    const write = await h.request('/things', { token: session.accessToken, json: {}, headers: { 'x-user-roles': 'admin' } }, tiny);
    expect(write.status).toBe(403);
    expect((await json(write)).code).toBe('read_only');
  });

  it('is read-only through API tokens too (roles come from the account)', async () => {
    const { session } = await viewer();
    const created = await createApiToken(session.accessToken);
    expect((await h.request('/things', { token: created.token }, tiny)).status).toBe(200);
    const write = await h.request('/things', { token: created.token, json: {} }, tiny);
    expect(write.status).toBe(403);
    expect((await json(write)).code).toBe('read_only');
  });

  it('a researcher reads and writes (200 both)', async () => {
    const { session } = await h.signedInUser();
    expect((await h.request('/things', { token: session.accessToken }, tiny)).status).toBe(200);
    const write = await h.request('/things', { token: session.accessToken, json: {} }, tiny);
    expect(write.status).toBe(200);
    expect((await json(write)).written).toBe(true);
  });

  it('a viewer can still change their own profile in user-service (PATCH /users/me → 200)', async () => {
    const { user, session } = await viewer();
    const res = await h.request('/users/me', { method: 'PATCH', token: session.accessToken, json: { institution: 'Reading Room' } });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ id: user.id, institution: 'Reading Room', roles: ['viewer'] });
    const [row] = await h.query<{ institution: string }>(sql`select institution from users.accounts where id = ${user.id}`);
    expect(row!.institution).toBe('Reading Room');
  });
});

describe('service tokens', () => {
  it('are refused for a wrong secret or an unknown service with 401', async () => {
    for (const authorization of [
      basic(TEST_SERVICE, `${h.serviceSecret}x`),
      basic('unknown-service', h.serviceSecret),
      basic(TEST_SERVICE, ''),
      'Basic !!!',
      `Bearer ${h.serviceSecret}`,
    ]) {
      const res = await h.request('/internal/service-token', { method: 'POST', headers: { authorization } });
      expect(res.status).toBe(401);
      expect((await json(res)).code).toBe('invalid_service_credentials');
      expect(res.headers.get('www-authenticate')).toStartWith('Basic');
    }
  });

  it('are issued for the right secret and accepted by /internal/introspect', async () => {
    const { user, session } = await h.signedInUser();
    const token = await serviceToken();
    expect(decodeJwt(token)).toMatchObject({ sub: TEST_SERVICE, aud: 'fip-internal', roles: ['service'], iss: TEST_ISSUER });
    const apiToken = await createApiToken(session.accessToken);
    const live = await h.request('/internal/introspect', { token, json: { token: apiToken.token } });
    expect(live.status).toBe(200);
    expect(await json(live)).toEqual({ active: true, userId: user.id, roles: ['researcher'], tokenId: apiToken.id });
    const unknown = await h.request('/internal/introspect', { token, json: { token: `fip_${'B'.repeat(43)}` } });
    expect(await json(unknown)).toEqual({ active: false });
  });

  it('are refused by /users/me with 403 users_only', async () => {
    const res = await h.request('/users/me', { token: await serviceToken() });
    expect(res.status).toBe(403);
    expect((await json(res)).code).toBe('users_only');
  });
});

describe('GET /.well-known/jwks.json', () => {
  it('lists the current key, whose kid signs the tokens, without private parts; /auth/jwks is the same', async () => {
    const { session } = await h.signedInUser();
    const res = await h.request('/.well-known/jwks.json');
    expect(res.status).toBe(200);
    const { keys } = (await json(res)) as { keys: JWK[] };
    const kid = decodeProtectedHeader(session.accessToken).kid;
    const current = keys.find((k) => k.kid === kid);
    expect(current).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' });
    for (const key of keys) expect(key.d).toBeUndefined();
    expect(await json(await h.request('/auth/jwks'))).toEqual({ keys });
  });

  it('after rotation: new tokens carry the new kid, old tokens still verify, both kids are published', async () => {
    const { user, session: old } = await h.signedInUser();
    const oldKid = decodeProtectedHeader(old.accessToken).kid!;
    const newKid = await h.domain.keys.rotate();
    expect(newKid).not.toBe(oldKid);

    const fresh = await h.login(user.username, user.password);
    expect(decodeProtectedHeader(fresh.accessToken).kid).toBe(newKid);
    expect((await h.request('/users/me', { token: fresh.accessToken })).status).toBe(200);
    expect((await h.request('/users/me', { token: old.accessToken })).status).toBe(200);

    const { keys } = (await json(await h.request('/.well-known/jwks.json'))) as { keys: JWK[] };
    expect(keys.map((k) => k.kid)).toEqual(expect.arrayContaining([oldKid, newKid]));
    const [row] = await h.query<{ retired_at: unknown }>(sql`select retired_at from users.signing_keys where kid = ${oldKid}`);
    expect(row!.retired_at).not.toBeNull();

    // Another service that never saw the old key verifies both through the published set.
    const tiny = tinyProtectedApp(remoteAuthenticator(server.url, h.kv, h.serviceSecret), h.logger);
    expect((await h.request('/things', { token: old.accessToken }, tiny)).status).toBe(200);
    expect((await h.request('/things', { token: fresh.accessToken }, tiny)).status).toBe(200);
  });

  it('stores the private half sealed, never in the clear', async () => {
    const rows = await h.query<{ private_jwk_sealed: string; public_jwk: unknown }>(sql`select private_jwk_sealed, public_jwk from users.signing_keys`);
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      expect(row.private_jwk_sealed).toMatch(/^v1\./);
      expect(row.private_jwk_sealed).not.toContain('"d"');
    }
  });
});

describe('logging', () => {
  it('never wrote a password, access, refresh, API or service token, or the service secret to a log line', async () => {
    // One more request of each kind, through both services, so the check covers those paths too.
    const { session } = await h.signedInUser();
    const created = await createApiToken(session.accessToken);
    const tiny = tinyProtectedApp(remoteAuthenticator(server.url, h.kv, h.serviceSecret, { introspectionCacheMs: 0 }), h.logger);
    await h.request('/things', { token: created.token }, tiny);
    await h.request('/users/me', { token: `${session.accessToken}x` });
    expect(h.logLines.length).toBeGreaterThan(50);
    expect(h.leakedSecrets()).toEqual([]);
  });
});
