/**
 * The credential vault and the admin endpoints of user-service, in-process on real backends.
 */
import { createKv } from '@shared/kv-factory.ts';
import type { Kv } from '@shared/kv.ts';
import { createLogger } from '@shared/log.ts';
import { migrate } from '@shared/migrations.ts';
import { createSecretBox } from '@shared/secret-box.ts';
import { credentials } from '@db/schema/users.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { eq, sql } from 'drizzle-orm';
import { createApp } from '../../services/user-service/src/app.ts';
import type { UserDomain } from '../../services/user-service/src/domain.ts';
import type { ServiceApp } from '@shared/app.ts';
import { json } from '../support/json.ts';
import { createTestDatabase, MIGRATIONS_DIR, type TestDatabase } from '../support/test-database.ts';
import { TEST_ENCRYPTION_KEY } from '../support/test-encryption-key.ts';

const logLines: string[] = [];
const SERVICE_SECRET = 'job-processor-secret-0123456789';
const OTHER_SECRET = 'notification-secret-0123456789';
const REGISTRY_SECRET = 'service-registry-secret-0123456789';
let testDb: TestDatabase;
let kv: Kv;
let app: ServiceApp;
let domain: UserDomain;
const run = Math.random().toString(36).slice(2, 8);

function fakeJwt(expSeconds: number): string {
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc({ sub: 'michigan-user', exp: expSeconds })}.c2lnbmF0dXJl`;
}

async function call(method: string, path: string, token?: string, body?: unknown) {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  return app.request(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

async function registerAndLogin(name: string, roles?: string[]) {
  const username = `${name}-${run}`;
  const password = `Sturdy-Passphrase-${run}-${name}`;
  const res = await call('POST', '/auth/register', undefined, { username, email: `${username}@example.org`, password, firstName: name, lastName: 'Test' });
  expect(res.status).toBe(201);
  const user = await json(res);
  if (roles) await domain.admin.update(user.id, { roles });
  const session = await json(await call('POST', '/auth/login', undefined, { login: username, password }));
  return { id: user.id as string, token: session.accessToken as string, password };
}

async function serviceToken(name: string, secret: string): Promise<string> {
  const res = await app.request('/internal/service-token', {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${name}:${secret}`).toString('base64')}` },
  });
  expect(res.status).toBe(200);
  return (await json(res)).token;
}

beforeAll(async () => {
  testDb = await createTestDatabase();
  await migrate(testDb.database, { schema: 'users', migrationsDir: MIGRATIONS_DIR });
  kv = await createKv({ url: process.env.REDIS_URL });
  ({ app, domain } = createApp({
    logger: createLogger({ level: 'debug', sink: (line) => logLines.push(line) }),
    readyTimeoutMs: 1000,
    organization: { name: 'test', url: 'https://example.org' },
    database: testDb.database,
    kv,
    box: await createSecretBox([TEST_ENCRYPTION_KEY]),
    config: {
      issuer: 'federated-imputation',
      accessTokenTtlSeconds: 900,
      refreshTokenTtlMs: 86_400_000,
      serviceSecrets: new Map([
        ['job-processor', SERVICE_SECRET],
        ['notification', OTHER_SECRET],
        ['service-registry', REGISTRY_SECRET],
      ]),
      trustForwardedFor: true,
      registrationsPerHourPerIp: 1000,
      login: { maxFailures: 5, lockoutMs: 60_000, ipAttemptsPerMinute: 1000 },
    },
  }));
});

afterAll(async () => {
  await kv.close();
  await testDb.drop();
});

describe('credential vault', () => {
  const michiganToken = fakeJwt(Math.floor(Date.now() / 1000) + 3 * 86_400);

  it('stores a Cloudgene token encrypted, answers metadata only, and flags its expiry', async () => {
    const ada = await registerAndLogin('ada');
    const res = await call('PUT', '/users/me/credentials/michigan', ada.token, { type: 'cloudgene-token', token: michiganToken, label: 'MIS account' });
    expect(res.status).toBe(201);
    const text = await res.text();
    expect(text).not.toContain(michiganToken);
    const body = JSON.parse(text);
    expect(body).toMatchObject({ serviceId: 'michigan', type: 'cloudgene-token', label: 'MIS account', expiringSoon: true, expired: false });
    expect(Date.parse(body.expiresAt)).toBeGreaterThan(Date.now());

    const [row] = await testDb.database.db.select().from(credentials).where(eq(credentials.userId, ada.id));
    expect(row!.sealed.startsWith('v1.test.')).toBe(true);
    expect(row!.sealed).not.toContain(michiganToken);

    const list = await call('GET', '/users/me/credentials', ada.token);
    const listText = await list.text();
    expect(listText).not.toContain(michiganToken);
    expect(JSON.parse(listText).items).toHaveLength(1);

    const again = await call('PUT', '/users/me/credentials/michigan', ada.token, { type: 'basic', username: 'ada', password: 'server-pass-123' });
    expect(again.status).toBe(200);
    expect((await json(again)).type).toBe('basic');
  });

  it('rejects a malformed credential with 422 and stores nothing', async () => {
    const bob = await registerAndLogin('bob');
    const res = await call('PUT', '/users/me/credentials/topmed', bob.token, { type: 'cloudgene-token' });
    expect(res.status).toBe(422);
    const bad = await call('PUT', '/users/me/credentials/..%2Fetc', bob.token, { type: 'wes-bearer', token: 'abcdefghij' });
    expect(bad.status).toBe(400);
    expect((await json(await call('GET', '/users/me/credentials', bob.token))).items).toEqual([]);
  });

  it("gives 404 for another user's credential and never lets them delete it", async () => {
    const owner = await registerAndLogin('owner');
    const other = await registerAndLogin('other');
    await call('PUT', '/users/me/credentials/afrigen', owner.token, { type: 'wes-bearer', token: 'owner-wes-token-xyz' });
    expect((await call('GET', '/users/me/credentials/afrigen', other.token)).status).toBe(404);
    expect((await call('DELETE', '/users/me/credentials/afrigen', other.token)).status).toBe(404);
    expect((await call('GET', '/users/me/credentials/afrigen', owner.token)).status).toBe(200);
    expect((await call('DELETE', '/users/me/credentials/afrigen', owner.token)).status).toBe(204);
    expect((await call('GET', '/users/me/credentials/afrigen', owner.token)).status).toBe(404);
  });

  it('releases the plaintext only to job-processor, and audits each release', async () => {
    const eve = await registerAndLogin('eve');
    await call('PUT', '/users/me/credentials/elwazi', eve.token, { type: 'wes-bearer', token: 'eve-wes-bearer-secret' });
    const path = `/internal/users/${eve.id}/credentials/elwazi`;

    expect((await call('GET', path)).status).toBe(401);
    expect((await call('GET', path, eve.token)).status).toBe(403);
    expect((await call('GET', path, await serviceToken('notification', OTHER_SECRET))).status).toBe(403);

    const released = await call('GET', path, await serviceToken('job-processor', SERVICE_SECRET));
    expect(released.status).toBe(200);
    expect(await json(released)).toEqual({ type: 'wes-bearer', secret: { token: 'eve-wes-bearer-secret' }, expiresAt: null });
    const missing = await call('GET', `/internal/users/${eve.id}/credentials/nowhere`, await serviceToken('job-processor', SERVICE_SECRET));
    expect(missing.status).toBe(404);

    const audit = await testDb.database.db.execute(sql`select action, details from users.audit_log where subject_id = 'elwazi' order by at`);
    const actions = (Array.isArray(audit) ? audit : (audit as { rows: unknown[] }).rows) as { action: string }[];
    expect(actions.map((a) => a.action)).toEqual(['credential.stored', 'credential.released']);
    expect((await json(await call('GET', '/users/me/credentials/elwazi', eve.token))).lastUsedAt).not.toBeNull();
  });
});

describe('GET /internal/users/{userId}/credentials/{serviceId} for service-registry', () => {
  const auditFor = async (serviceId: string) => {
    const result = await testDb.database.db.execute(sql`select action, details from users.audit_log where subject_id = ${serviceId} order by at`);
    return (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as { action: string; details: Record<string, unknown> }[];
  };

  it("releases an administrator's own credential (an operator credential) and audits the release", async () => {
    const operator = await registerAndLogin('operator', ['admin']);
    const slug = `op-mis-${run}`;
    await call('PUT', `/users/me/credentials/${slug}`, operator.token, { type: 'cloudgene-token', token: 'operator-cloudgene-token-1' });

    const res = await call('GET', `/internal/users/${operator.id}/credentials/${slug}`, await serviceToken('service-registry', REGISTRY_SECRET));
    expect(res.status).toBe(200);
    expect((await json(res)).secret).toEqual({ token: 'operator-cloudgene-token-1' });
    const audit = await auditFor(slug);
    expect(audit.map((a) => a.action)).toEqual(['credential.stored', 'credential.released']);
    expect(audit[1]!.details).toMatchObject({ userId: operator.id, to: 'service-registry' });
  });

  it("refuses a researcher's credential with 403 release_forbidden, audits the refusal and leaves it unused", async () => {
    const researcher = await registerAndLogin('notop');
    const slug = `op-topmed-${run}`;
    await call('PUT', `/users/me/credentials/${slug}`, researcher.token, { type: 'cloudgene-token', token: 'researcher-cloudgene-token-1' });

    const res = await call('GET', `/internal/users/${researcher.id}/credentials/${slug}`, await serviceToken('service-registry', REGISTRY_SECRET));
    expect(res.status).toBe(403);
    const body = await json(res);
    expect(body.code).toBe('release_forbidden');
    expect(JSON.stringify(body)).not.toContain('researcher-cloudgene-token-1');
    expect((await auditFor(slug)).map((a) => a.action)).toEqual(['credential.stored', 'credential.release_refused']);
    expect((await json(await call('GET', `/users/me/credentials/${slug}`, researcher.token))).lastUsedAt).toBeNull();

    // job-processor still receives any user's credential.
    expect((await call('GET', `/internal/users/${researcher.id}/credentials/${slug}`, await serviceToken('job-processor', SERVICE_SECRET))).status).toBe(200);
  });

  it('refuses the credential of a deactivated administrator with 403', async () => {
    await registerAndLogin('keeperop', ['admin']); // so deactivating `former` never removes the last admin
    const former = await registerAndLogin('formerop', ['admin']);
    const slug = `op-h3a-${run}`;
    await call('PUT', `/users/me/credentials/${slug}`, former.token, { type: 'wes-bearer', token: 'former-admin-wes-token' });
    await domain.admin.update(former.id, { isActive: false });

    const res = await call('GET', `/internal/users/${former.id}/credentials/${slug}`, await serviceToken('service-registry', REGISTRY_SECRET));
    expect(res.status).toBe(403);
    expect((await json(res)).code).toBe('release_forbidden');
  });

  it("answers 403 for an unknown user's id rather than revealing whether it exists", async () => {
    const res = await call('GET', `/internal/users/${Bun.randomUUIDv7()}/credentials/op-none-${run}`, await serviceToken('service-registry', REGISTRY_SECRET));
    expect(res.status).toBe(403);
  });
});

describe('GET /internal/users/{userId}/credentials', () => {
  const path = (userId: string) => `/internal/users/${userId}/credentials`;
  const auditFor = async (userId: string) => {
    const result = await testDb.database.db.execute(sql`select action from users.audit_log where details->>'userId' = ${userId} order by at`);
    return ((Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as { action: string }[]).map((a) => a.action);
  };

  it('lists which servers a user holds credentials for, with expiry, without secrets or a release', async () => {
    const lister = await registerAndLogin('lister');
    const expiredToken = fakeJwt(Math.floor(Date.now() / 1000) - 3600);
    const liveToken = fakeJwt(Math.floor(Date.now() / 1000) + 30 * 86_400);
    await call('PUT', '/users/me/credentials/list-wes', lister.token, { type: 'wes-bearer', token: 'lister-wes-secret-token' });
    await call('PUT', '/users/me/credentials/list-mis', lister.token, { type: 'cloudgene-token', token: liveToken });
    await call('PUT', '/users/me/credentials/list-old', lister.token, { type: 'cloudgene-token', token: expiredToken });
    await call('PUT', '/users/me/credentials/list-basic', lister.token, { type: 'basic', username: 'lister', password: 'lister-basic-pass' });

    const res = await call('GET', path(lister.id), await serviceToken('job-processor', SERVICE_SECRET));
    expect(res.status).toBe(200);
    const text = await res.text();
    for (const secret of ['lister-wes-secret-token', liveToken, expiredToken, 'lister-basic-pass']) expect(text).not.toContain(secret);
    const { items } = JSON.parse(text);
    expect(items).toEqual([
      { serviceId: 'list-basic', type: 'basic', expiresAt: null, expired: false },
      { serviceId: 'list-mis', type: 'cloudgene-token', expiresAt: expect.any(String), expired: false },
      { serviceId: 'list-old', type: 'cloudgene-token', expiresAt: expect.any(String), expired: true },
      { serviceId: 'list-wes', type: 'wes-bearer', expiresAt: null, expired: false },
    ]);
    expect(Date.parse(items[2].expiresAt)).toBeLessThan(Date.now());

    // Listing is not a release: nothing audited as one, and no credential marked as used.
    expect(await auditFor(lister.id)).not.toContain('credential.released');
    const listed = await json(await call('GET', '/users/me/credentials', lister.token));
    expect(listed.items.map((c: { lastUsedAt: string | null }) => c.lastUsedAt)).toEqual([null, null, null, null]);
  });

  it('answers an empty list for a user with no credentials (or no account)', async () => {
    const empty = await registerAndLogin('nocreds');
    const token = await serviceToken('job-processor', SERVICE_SECRET);
    expect(await json(await call('GET', path(empty.id), token))).toEqual({ items: [] });
    expect(await json(await call('GET', path(Bun.randomUUIDv7()), token))).toEqual({ items: [] });
    expect((await call('GET', '/internal/users/not-a-uuid/credentials', token)).status).toBe(400);
  });

  it('is refused to other services and users with 403, and without a token with 401', async () => {
    const owner = await registerAndLogin('listowner');
    await call('PUT', '/users/me/credentials/list-own', owner.token, { type: 'wes-bearer', token: 'listowner-wes-token' });
    for (const token of [await serviceToken('notification', OTHER_SECRET), await serviceToken('service-registry', REGISTRY_SECRET), owner.token]) {
      const res = await call('GET', path(owner.id), token);
      expect(res.status).toBe(403);
      expect(await res.text()).not.toContain('list-own');
    }
    expect((await call('GET', path(owner.id))).status).toBe(401);
  });
});

describe('admin endpoints', () => {
  it('are refused to researchers with 403', async () => {
    const researcher = await registerAndLogin('plain');
    expect((await call('GET', '/admin/users', researcher.token)).status).toBe(403);
    expect((await call('GET', '/admin/audit-log', researcher.token)).status).toBe(403);
  });

  it('page through users with a stable cursor and search them', async () => {
    const admin = await registerAndLogin('pager', ['admin']);
    const seen = new Set<string>();
    let cursor: string | null = null;
    do {
      const res: Response = await call('GET', `/admin/users?limit=2${cursor ? `&cursor=${cursor}` : ''}`, admin.token);
      expect(res.status).toBe(200);
      const page = await json(res);
      for (const u of page.items) {
        expect(seen.has(u.id)).toBe(false);
        expect(u.passwordHash).toBeUndefined();
        seen.add(u.id);
      }
      cursor = page.nextCursor;
    } while (cursor);
    const [{ n } = { n: -1 }] = (await testDb.database.db.execute(sql`select count(*)::int as n from users.accounts`).then((r) =>
      Array.isArray(r) ? r : (r as { rows: unknown[] }).rows,
    )) as { n: number }[];
    expect(seen.size).toBe(n);
    const found = await json(await call('GET', `/admin/users?q=pager-${run}`, admin.token));
    expect(found.items.map((u: { username: string }) => u.username)).toEqual([`pager-${run}`]);
    expect((await call('GET', '/admin/users?cursor=not-a-cursor', admin.token)).status).toBe(400);
  });

  it('deactivation revokes every token at once; reactivation lets the user log in again', async () => {
    const admin = await registerAndLogin('boss', ['admin']);
    const user = await registerAndLogin('leaver');
    const apiToken = (await json(await call('POST', '/users/me/api-tokens', user.token, { name: 'script' }))).token;
    expect((await call('GET', '/users/me', apiToken)).status).toBe(200);

    const res = await call('PATCH', `/admin/users/${user.id}`, admin.token, { isActive: false });
    expect(res.status).toBe(200);
    expect((await json(res)).isActive).toBe(false);
    expect((await call('GET', '/users/me', user.token)).status).toBe(401);
    expect((await call('GET', '/users/me', apiToken)).status).toBe(401);
    expect((await call('POST', '/auth/login', undefined, { login: `leaver-${run}`, password: user.password })).status).toBe(401);

    const live = await testDb.database.db.execute(
      sql`select (select count(*)::int from users.api_tokens where user_id = ${user.id} and revoked_at is null) as api,
                 (select count(*)::int from users.refresh_tokens where user_id = ${user.id} and revoked_at is null) as refresh`,
    );
    const [counts] = (Array.isArray(live) ? live : (live as { rows: unknown[] }).rows) as { api: number; refresh: number }[];
    expect(counts).toEqual({ api: 0, refresh: 0 });

    expect((await call('PATCH', `/admin/users/${user.id}`, admin.token, { isActive: true })).status).toBe(200);
    expect((await call('POST', '/auth/login', undefined, { login: `leaver-${run}`, password: user.password })).status).toBe(200);
    // Revoked, not merely suspended: the old API token stays dead after reactivation.
    expect((await call('GET', '/users/me', apiToken)).status).toBe(401);
  });

  it('changes roles, refuses to remove the last admin, and records both in the audit log', async () => {
    const admin = await registerAndLogin('chief', ['admin']);
    const user = await registerAndLogin('promoted');
    const res = await call('PATCH', `/admin/users/${user.id}`, admin.token, { roles: ['viewer'] });
    expect((await json(res)).roles).toEqual(['viewer']);
    expect((await call('PATCH', `/admin/users/${user.id}`, admin.token, { roles: [] })).status).toBe(422);
    expect((await call('PATCH', `/admin/users/${user.id}`, admin.token, { roles: ['root'] })).status).toBe(422);

    // Demote every other admin, then the last one cannot demote themselves.
    const others = (await json(await call('GET', '/admin/users?limit=100', admin.token))).items.filter(
      (u: { id: string; roles: string[] }) => u.roles.includes('admin') && u.id !== admin.id,
    );
    for (const other of others) await domain.admin.update(other.id, { roles: ['researcher'] });
    const self = await call('PATCH', `/admin/users/${admin.id}`, admin.token, { roles: ['researcher'] });
    expect(self.status).toBe(409);
    expect((await json(self)).code).toBe('last_admin');

    const audit = await json(await call('GET', `/admin/audit-log?action=user.roles_changed&actorId=${admin.id}`, admin.token));
    expect(audit.items[0]).toMatchObject({ action: 'user.roles_changed', subjectId: user.id, details: { from: ['researcher'], to: ['viewer'] } });
  });
});

describe('POST /admin/signing-keys/rotate', () => {
  it('switches to a new key while tokens signed by the old one keep working', async () => {
    const admin = await registerAndLogin('rotator', ['admin']);
    const before = await registerAndLogin('holder');
    const oldKid = JSON.parse(Buffer.from(before.token.split('.')[0]!, 'base64url').toString()).kid;
    const researcher = await registerAndLogin('notadmin');
    expect((await call('POST', '/admin/signing-keys/rotate', researcher.token)).status).toBe(403);

    const res = await call('POST', '/admin/signing-keys/rotate', admin.token);
    expect(res.status).toBe(200);
    const { kid } = await json(res);
    expect(kid).not.toBe(oldKid);
    expect((await call('GET', '/users/me', before.token)).status).toBe(200);
    const after = await registerAndLogin('newcomer');
    expect(JSON.parse(Buffer.from(after.token.split('.')[0]!, 'base64url').toString()).kid).toBe(kid);
    const published = (await json(await call('GET', '/.well-known/jwks.json'))).keys.map((k: { kid: string }) => k.kid);
    expect(published).toEqual(expect.arrayContaining([kid, oldKid]));
  });
});

describe('PATCH /users/me with a NUL character', () => {
  it('answers 400 invalid_text and leaves the profile unchanged', async () => {
    const nul = await registerAndLogin('nul');
    const res = await call('PATCH', '/users/me', nul.token, { institution: 'Wellcome\u0000Sanger' });
    expect(res.status).toBe(400);
    expect((await json(res)).code).toBe('invalid_text');
    expect((await json(await call('GET', '/users/me', nul.token))).institution).toBeNull();
  });
});

describe('secrets in logs', () => {
  it('no log line carries a stored credential', () => {
    const all = logLines.join('\n');
    for (const secret of [
      'eve-wes-bearer-secret',
      'owner-wes-token-xyz',
      'server-pass-123',
      SERVICE_SECRET,
      REGISTRY_SECRET,
      'operator-cloudgene-token-1',
      'researcher-cloudgene-token-1',
      'lister-wes-secret-token',
      'lister-basic-pass',
    ])
      expect(all).not.toContain(secret);
  });
});
