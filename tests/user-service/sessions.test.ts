/**
 * user-service accounts and sessions, in-process on real dependencies: registration, login with
 * throttling and lockout, refresh-token rotation and reuse detection, logout, password change, the
 * first admin — and that no password or token a test used ever reaches a log line.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { sql } from 'drizzle-orm';
import { json } from '../support/json.ts';
import {
  createUserServiceHarness,
  LOGIN_IP_ATTEMPTS_PER_MINUTE,
  LOGIN_LOCKOUT_MS,
  LOGIN_MAX_FAILURES,
  randomIp,
  remoteAuthenticator,
  serveUserService,
  strongPassword,
  tinyProtectedApp,
  uniqueName,
  type Session,
  type UserServiceHarness,
} from '../support/user-service.ts';

let h: UserServiceHarness;
beforeAll(async () => {
  h = await createUserServiceHarness();
});
afterAll(async () => {
  await h.close();
});

const PROBLEM = 'application/problem+json';

async function accountRows(username: string, email: string): Promise<number> {
  const [row] = await h.query<{ n: number }>(
    sql`select count(*)::int as n from users.accounts where lower(username) = lower(${username}) or lower(email) = lower(${email})`,
  );
  return Number(row!.n);
}

function registration(overrides: Record<string, unknown> = {}) {
  const username = uniqueName();
  const password = strongPassword();
  h.remember(password);
  return { username, email: `${username}@example.org`, password, firstName: 'Ada', lastName: 'Lovelace', institution: 'Analytical Engines', ...overrides };
}

describe('POST /auth/register', () => {
  it('creates a researcher and answers 201 with the user, never the password or its hash', async () => {
    const input = registration();
    const res = await h.request('/auth/register', { json: input });
    expect(res.status).toBe(201);
    const text = await res.text();
    const body = JSON.parse(text);
    expect(body).toMatchObject({
      username: input.username,
      email: input.email,
      firstName: 'Ada',
      lastName: 'Lovelace',
      institution: 'Analytical Engines',
      roles: ['researcher'],
      isActive: true,
      lastLoginAt: null,
    });
    expect(body.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/);
    expect(Object.keys(body)).not.toContain('passwordHash');
    expect(text).not.toContain(input.password);
    expect(text).not.toContain('argon2');
    const [row] = await h.query<{ password_hash: string; roles: string[] }>(sql`select password_hash, roles from users.accounts where id = ${body.id}`);
    expect(row!.password_hash).toStartWith('$argon2id$');
    expect(row!.password_hash).not.toContain(input.password);
    const [audit] = await h.query(sql`select action from users.audit_log where subject_id = ${body.id} and action = 'user.registered'`);
    expect(audit).toBeDefined();
  });

  it('refuses a username taken in another letter case with a 409 problem and stores nothing', async () => {
    const first = registration();
    expect((await h.request('/auth/register', { json: first })).status).toBe(201);
    const second = registration({ username: first.username.toUpperCase() });
    const res = await h.request('/auth/register', { json: second });
    expect(res.status).toBe(409);
    expect(res.headers.get('content-type')).toBe(PROBLEM);
    expect(await json(res)).toMatchObject({ status: 409, code: 'username_taken', errors: [{ path: 'body.username' }] });
    expect(await accountRows(second.username, second.email)).toBe(1);
    expect(await accountRows('-', second.email)).toBe(0);
  });

  it('refuses an email taken in another letter case with a 409 problem and stores nothing', async () => {
    const first = registration();
    expect((await h.request('/auth/register', { json: first })).status).toBe(201);
    const second = registration({ email: first.email.toUpperCase() });
    const res = await h.request('/auth/register', { json: second });
    expect(res.status).toBe(409);
    expect(await json(res)).toMatchObject({ status: 409, code: 'email_taken', errors: [{ path: 'body.email' }] });
    expect(await accountRows(second.username, '-')).toBe(0);
    expect(await accountRows('-', first.email)).toBe(1);
  });

  for (const [label, password, code] of [
    ['too short', 'Zr8#qL2v', 'too_short'],
    ['on the leaked-password list', 'Password123!', 'common'],
    ['containing the username', 'USERNAME-tall-giraffe', 'contains_username'],
  ] as const) {
    it(`refuses a password ${label} with 422, errors[] naming body.password, and stores nothing`, async () => {
      const input = registration();
      const res = await h.request('/auth/register', { json: { ...input, password: password.replace('USERNAME', input.username) } });
      expect(res.status).toBe(422);
      const body = await json(res);
      expect(body).toMatchObject({ status: 422, code: 'weak_password' });
      expect(body.errors.length).toBeGreaterThan(0);
      expect(body.errors).toContainEqual(expect.objectContaining({ path: 'body.password', code }));
      expect(await accountRows(input.username, input.email)).toBe(0);
    });
  }

  it('answers malformed JSON with a 400 problem and stores nothing', async () => {
    const username = uniqueName();
    const res = await h.request('/auth/register', { body: `{"username":"${username}","email":` });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe(PROBLEM);
    expect((await json(res)).status).toBe(400);
    expect(await accountRows(username, '-')).toBe(0);
  });

  it('answers missing and mistyped fields with 422 and errors[] per field, storing nothing', async () => {
    const username = uniqueName();
    const res = await h.request('/auth/register', { json: { username, password: 12345678901 } });
    expect(res.status).toBe(422);
    const body = await json(res);
    expect(body.code).toBe('validation_failed');
    const paths = body.errors.map((e: { path: string }) => e.path);
    expect(paths).toEqual(expect.arrayContaining(['body.email', 'body.password', 'body.firstName', 'body.lastName']));
    expect(await accountRows(username, '-')).toBe(0);
  });
});

describe('POST /auth/login', () => {
  it('logs in by username and by email, answering a session and setting lastLoginAt', async () => {
    const user = await h.register();
    const [before] = await h.query<{ last_login_at: Date | null }>(sql`select last_login_at from users.accounts where id = ${user.id}`);
    expect(before!.last_login_at).toBeNull();
    for (const login of [user.username, user.email.toUpperCase()]) {
      const res = await h.request('/auth/login', { json: { login, password: user.password } });
      expect(res.status).toBe(200);
      const session = (await json(res)) as Session;
      h.remember(session.accessToken, session.refreshToken);
      expect(session).toMatchObject({ tokenType: 'Bearer', expiresIn: 900, user: { id: user.id, username: user.username, roles: ['researcher'] } });
      expect(session.accessToken.split('.')).toHaveLength(3);
      expect(session.refreshToken.length).toBeGreaterThanOrEqual(40);
      expect(session.user.lastLoginAt).not.toBeNull();
      expect(JSON.stringify(session)).not.toContain(user.password);
    }
    const [after] = await h.query<{ last_login_at: Date | string | null }>(sql`select last_login_at from users.accounts where id = ${user.id}`);
    expect(after!.last_login_at).not.toBeNull();
    expect(Math.abs(new Date(after!.last_login_at!).getTime() - Date.now())).toBeLessThan(60_000);
  });

  it('answers a wrong password and an unknown user with the same 401 invalid_credentials body', async () => {
    const user = await h.register();
    const wrong = await h.request('/auth/login', { json: { login: user.username, password: 'not the password at all' } });
    const unknown = await h.request('/auth/login', { json: { login: uniqueName('ghost'), password: 'not the password at all' } });
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    const [a, b] = [await json(wrong), await json(unknown)];
    expect(a.code).toBe('invalid_credentials');
    const shape = (p: Record<string, unknown>) => ({ ...p, instance: undefined, requestId: undefined });
    expect(shape(a)).toEqual(shape(b));
  });

  it('records login.failed and login.succeeded in the audit log without the password', async () => {
    const user = await h.register();
    const wrongPassword = 'definitely-wrong-password-1';
    h.remember(wrongPassword);
    expect((await h.request('/auth/login', { json: { login: user.username, password: wrongPassword } })).status).toBe(401);
    await h.login(user.username, user.password);
    type AuditRow = { action: string; subject_id: string | null; details: unknown; ip: string | null };
    const failed = await h.query<AuditRow>(
      sql`select action, subject_id, details, ip from users.audit_log where action = 'login.failed' and details->>'login' = ${user.username}`,
    );
    expect(failed).toHaveLength(1);
    expect(failed[0]!.ip).toMatch(/^10\./);
    const details = typeof failed[0]!.details === 'string' ? JSON.parse(failed[0]!.details) : failed[0]!.details;
    expect(details).toEqual({ login: user.username, reason: 'wrong_password' });
    // A wrong password for a real account names that account as the subject.
    expect(failed[0]!.subject_id).toBe(user.id);
    const succeeded = await h.query<AuditRow>(
      sql`select action, subject_id, details, ip from users.audit_log where action = 'login.succeeded' and subject_id = ${user.id}`,
    );
    expect(succeeded).toHaveLength(1);
    expect(JSON.stringify([...failed, ...succeeded])).not.toContain(wrongPassword);
    expect(JSON.stringify([...failed, ...succeeded])).not.toContain(user.password);
  });

  it('records a failed login for an unknown user with the name tried and no actor', async () => {
    const ghost = uniqueName('ghost');
    expect((await h.request('/auth/login', { json: { login: ghost, password: 'whatever-it-is-123' } })).status).toBe(401);
    const rows = await h.query<{ actor_id: string | null }>(sql`select actor_id from users.audit_log where action = 'login.failed' and details->>'login' = ${ghost}`);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.actor_id).toBeNull();
  });

  it(`locks the account after ${LOGIN_MAX_FAILURES} failures: 429 account_locked with Retry-After, even with the right password`, async () => {
    const user = await h.register();
    for (let i = 0; i < LOGIN_MAX_FAILURES; i++) {
      const res = await h.request('/auth/login', { json: { login: user.username, password: `wrong password ${i}` } });
      expect(res.status).toBe(401);
    }
    const res = await h.request('/auth/login', { json: { login: user.username, password: user.password } });
    expect(res.status).toBe(429);
    expect(res.headers.get('content-type')).toBe(PROBLEM);
    expect((await json(res)).code).toBe('account_locked');
    const retryAfter = Number(res.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(LOGIN_LOCKOUT_MS / 1000);
    const [succeeded] = await h.query(sql`select id from users.audit_log where subject_id = ${user.id} and action = 'login.succeeded'`);
    expect(succeeded).toBeUndefined();
  });

  it('locks the account, not only the name typed: failures by username also lock login by email', async () => {
    const user = await h.register();
    for (let i = 0; i < LOGIN_MAX_FAILURES - 1; i++) {
      expect((await h.request('/auth/login', { json: { login: user.username, password: `wrong password ${i}` } })).status).toBe(401);
    }
    expect((await h.request('/auth/login', { json: { login: user.email, password: 'wrong password again' } })).status).toBe(401);
    const byEmail = await h.request('/auth/login', { json: { login: user.email, password: user.password } });
    expect(byEmail.status).toBe(429);
    expect((await json(byEmail)).code).toBe('account_locked');
    const byName = await h.request('/auth/login', { json: { login: user.username.toUpperCase(), password: user.password } });
    expect(byName.status).toBe(429);
  });

  it('a successful login resets the failure count', async () => {
    const user = await h.register();
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < LOGIN_MAX_FAILURES - 1; i++) {
        expect((await h.request('/auth/login', { json: { login: user.username, password: `wrong password ${i}` } })).status).toBe(401);
      }
      await h.login(user.username, user.password);
    }
  });

  it(`limits attempts per address: attempt ${LOGIN_IP_ATTEMPTS_PER_MINUTE + 1} in a minute gets 429 too_many_attempts`, async () => {
    const ip = randomIp();
    const user = await h.register();
    for (let i = 0; i < LOGIN_IP_ATTEMPTS_PER_MINUTE; i++) {
      const res = await h.request('/auth/login', { json: { login: uniqueName('ghost'), password: 'whatever-it-is-123' }, ip });
      expect(res.status).toBe(401);
    }
    const res = await h.request('/auth/login', { json: { login: user.username, password: user.password }, ip });
    expect(res.status).toBe(429);
    expect((await json(res)).code).toBe('too_many_attempts');
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    // Another address is not affected.
    await h.login(user.username, user.password);
  });

  it('refuses a deactivated account with 401 invalid_credentials', async () => {
    const user = await h.register();
    await h.query(sql`update users.accounts set is_active = false where id = ${user.id}`);
    const res = await h.request('/auth/login', { json: { login: user.username, password: user.password } });
    expect(res.status).toBe(401);
    expect((await json(res)).code).toBe('invalid_credentials');
  });
});

describe('POST /auth/refresh', () => {
  it('rotates: the new refresh token differs and works, the old one then fails with 401', async () => {
    const { user, session } = await h.signedInUser();
    const res = await h.request('/auth/refresh', { json: { refreshToken: session.refreshToken } });
    expect(res.status).toBe(200);
    const next = (await json(res)) as Session;
    h.remember(next.accessToken, next.refreshToken);
    expect(next).toMatchObject({ tokenType: 'Bearer', expiresIn: 900, user: { id: user.id } });
    expect(next.refreshToken).not.toBe(session.refreshToken);
    expect((await h.request('/users/me', { token: next.accessToken })).status).toBe(200);

    const again = await h.request('/auth/refresh', { json: { refreshToken: session.refreshToken } });
    expect(again.status).toBe(401);
    expect((await json(again)).code).toBe('invalid_refresh_token');
  });

  it('treats a reused refresh token as theft: the whole family is revoked, the newest token too', async () => {
    const { user, session } = await h.signedInUser();
    const other = await h.login(user.username, user.password);
    const second = (await json(await h.request('/auth/refresh', { json: { refreshToken: session.refreshToken } }))) as Session;
    const third = (await json(await h.request('/auth/refresh', { json: { refreshToken: second.refreshToken } }))) as Session;
    h.remember(second.accessToken, second.refreshToken, third.accessToken, third.refreshToken);

    expect((await h.request('/auth/refresh', { json: { refreshToken: session.refreshToken } })).status).toBe(401);
    const newest = await h.request('/auth/refresh', { json: { refreshToken: third.refreshToken } });
    expect(newest.status).toBe(401);
    expect((await json(newest)).code).toBe('invalid_refresh_token');

    const rows = await h.query<{ family_id: string; revoked_at: unknown }>(
      sql`select family_id, revoked_at from users.refresh_tokens where user_id = ${user.id}`,
    );
    const families = Map.groupBy(rows, (r) => r.family_id);
    expect(families.size).toBe(2);
    const stolen = [...families.values()].find((f) => f.length === 3)!;
    expect(stolen.every((r) => r.revoked_at !== null)).toBe(true);
    // The other login's session is untouched.
    expect((await h.request('/auth/refresh', { json: { refreshToken: other.refreshToken } })).status).toBe(200);
  });

  it('fails with 401 for a deactivated account', async () => {
    const { user, session } = await h.signedInUser();
    await h.query(sql`update users.accounts set is_active = false where id = ${user.id}`);
    const res = await h.request('/auth/refresh', { json: { refreshToken: session.refreshToken } });
    expect(res.status).toBe(401);
    expect((await json(res)).code).toBe('invalid_refresh_token');
  });

  it('fails with 401 for an unknown or expired token and 422 for a missing one', async () => {
    expect((await h.request('/auth/refresh', { json: { refreshToken: 'no-such-token' } })).status).toBe(401);
    const { user, session } = await h.signedInUser();
    await h.query(sql`update users.refresh_tokens set expires_at = now() - interval '1 minute' where user_id = ${user.id}`);
    expect((await h.request('/auth/refresh', { json: { refreshToken: session.refreshToken } })).status).toBe(401);
    expect((await h.request('/auth/refresh', { json: {} })).status).toBe(422);
  });
});

describe('POST /auth/logout', () => {
  it('answers 204 and ends the session: the refresh token and the access token stop working', async () => {
    const { user, session } = await h.signedInUser();
    expect((await h.request('/users/me', { token: session.accessToken })).status).toBe(200);
    const res = await h.request('/auth/logout', { json: { refreshToken: session.refreshToken } });
    expect(res.status).toBe(204);
    expect(await res.text()).toBe('');
    expect((await h.request('/auth/refresh', { json: { refreshToken: session.refreshToken } })).status).toBe(401);
    const me = await h.request('/users/me', { token: session.accessToken });
    expect(me.status).toBe(401);
    expect((await json(me)).code).toBe('unauthorized');
    const [audit] = await h.query(sql`select id from users.audit_log where subject_id = ${user.id} and action = 'logout'`);
    expect(audit).toBeDefined();
  });

  it('answers 204 for an unknown refresh token and changes nothing', async () => {
    const { session } = await h.signedInUser();
    expect((await h.request('/auth/logout', { json: { refreshToken: 'never-issued' } })).status).toBe(204);
    expect((await h.request('/users/me', { token: session.accessToken })).status).toBe(200);
  });

  describe('in another service', () => {
    const REVOCATION_CACHE_MS = 250;
    let server: { url: string; stop(): Promise<void> };
    beforeAll(() => {
      server = serveUserService(h.app);
    });
    afterAll(() => server.stop());

    it(`stops accepting the access token within revocationCacheMs (${REVOCATION_CACHE_MS} ms) after logout`, async () => {
      const tiny = tinyProtectedApp(remoteAuthenticator(server.url, h.kv, h.serviceSecret, { revocationCacheMs: REVOCATION_CACHE_MS }), h.logger);
      const { user, session } = await h.signedInUser();
      const before = await h.request('/things', { token: session.accessToken }, tiny);
      expect(before.status).toBe(200);
      expect((await json(before)).identity).toMatchObject({ subject: user.id, via: 'access-token' });
      expect((await h.request('/auth/logout', { json: { refreshToken: session.refreshToken } })).status).toBe(204);
      await Bun.sleep(REVOCATION_CACHE_MS + 150);
      const after = await h.request('/things', { token: session.accessToken }, tiny);
      expect(after.status).toBe(401);
    });
  });
});

describe('POST /users/me/password', () => {
  it('refuses a wrong current password with 403 and keeps the old password', async () => {
    const { user, session } = await h.signedInUser();
    const res = await h.request('/users/me/password', { token: session.accessToken, json: { currentPassword: 'not my password 1', newPassword: strongPassword() } });
    expect(res.status).toBe(403);
    expect((await json(res)).code).toBe('wrong_password');
    await h.login(user.username, user.password);
  });

  it('refuses a weak new password with 422 and errors[]', async () => {
    const { user, session } = await h.signedInUser();
    const res = await h.request('/users/me/password', { token: session.accessToken, json: { currentPassword: user.password, newPassword: 'short' } });
    expect(res.status).toBe(422);
    const body = await json(res);
    expect(body.code).toBe('weak_password');
    expect(body.errors).toContainEqual(expect.objectContaining({ path: 'body.password', code: 'too_short' }));
    expect((await h.request('/users/me', { token: session.accessToken })).status).toBe(200);
  });

  it('changes the password, returns a working new session, and signs out the old refresh and access tokens', async () => {
    const { user, session } = await h.signedInUser();
    const newPassword = strongPassword();
    h.remember(newPassword);
    const res = await h.request('/users/me/password', { token: session.accessToken, json: { currentPassword: user.password, newPassword } });
    expect(res.status).toBe(200);
    const fresh = (await json(res)) as Session;
    h.remember(fresh.accessToken, fresh.refreshToken);
    expect(fresh).toMatchObject({ tokenType: 'Bearer', user: { id: user.id } });

    expect((await h.request('/users/me', { token: fresh.accessToken })).status).toBe(200);
    expect((await h.request('/users/me', { token: session.accessToken })).status).toBe(401);
    expect((await h.request('/auth/refresh', { json: { refreshToken: session.refreshToken } })).status).toBe(401);
    const rotated = await h.request('/auth/refresh', { json: { refreshToken: fresh.refreshToken } });
    expect(rotated.status).toBe(200);
    h.remember(((await json(rotated)) as Session).refreshToken);

    expect((await h.request('/auth/login', { json: { login: user.username, password: user.password } })).status).toBe(401);
    await h.login(user.username, newPassword);
    const [audit] = await h.query(sql`select id from users.audit_log where subject_id = ${user.id} and action = 'user.password_changed'`);
    expect(audit).toBeDefined();
  });
});

describe('first admin (accounts.ensureAdmin)', () => {
  it('creates the configured admin once; a second call returns null', async () => {
    // The embedded database is shared by every test file in the process: clear the precondition.
    await h.query(sql`update users.accounts set is_active = false where 'admin' = any(roles)`);
    const username = uniqueName('admin');
    const admin = { username, email: `${username}@example.org`, password: strongPassword(), firstName: 'Platform', lastName: 'Administrator' };
    h.remember(admin.password);
    const created = await h.domain.accounts.ensureAdmin(admin);
    expect(created).not.toBeNull();
    expect(created!.roles).toEqual(['admin']);
    expect(await h.domain.accounts.ensureAdmin({ ...admin, username: uniqueName('admin2'), email: `${uniqueName()}@example.org` })).toBeNull();
    const admins = await h.query(sql`select id from users.accounts where 'admin' = any(roles) and is_active`);
    expect(admins).toHaveLength(1);
    const session = await h.login(username, admin.password);
    expect(session.user.roles).toEqual(['admin']);
  });

  it('creates exactly one admin when replicas call it at the same time', async () => {
    await h.query(sql`update users.accounts set is_active = false where 'admin' = any(roles)`);
    const make = () => {
      const username = uniqueName('admin');
      return { username, email: `${username}@example.org`, password: strongPassword(), firstName: 'Platform', lastName: 'Administrator' };
    };
    const results = await Promise.all([h.domain.accounts.ensureAdmin(make()), h.domain.accounts.ensureAdmin(make()), h.domain.accounts.ensureAdmin(make())]);
    expect(results.filter((r) => r !== null)).toHaveLength(1);
    expect(await h.query(sql`select id from users.accounts where 'admin' = any(roles) and is_active`)).toHaveLength(1);
  });
});

describe('logging', () => {
  it('never wrote a password, refresh token, access token or service secret to a log line', () => {
    expect(h.logLines.length).toBeGreaterThan(20);
    expect(h.leakedSecrets()).toEqual([]);
  });
});
