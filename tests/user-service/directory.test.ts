/**
 * user-service's internal directory on real backends: only notification's and monitoring's service
 * tokens may read it, it names users the way emails greet them, lists active holders of a role, and
 * answers in exactly the shape notification's UsersClient parses (checked over real HTTP).
 */
import { createServiceCredential } from '@shared/auth.ts';
import { createHttpClient } from '@shared/http-client.ts';
import { DirectoryUserSchema } from '@shared/schemas/directory.ts';
import { accounts } from '@db/schema/users.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { eq } from 'drizzle-orm';
import { usersClient } from '../../services/notification/src/users-client.ts';
import { json } from '../support/json.ts';
import { createUserServiceHarness, serveUserService, type TestUser, type UserServiceHarness } from '../support/user-service.ts';

let harness: UserServiceHarness;
const secrets = { notification: `notification-${crypto.randomUUID()}`, monitoring: `monitoring-${crypto.randomUUID()}` };
const tokens: Record<string, string> = {};
let researcher: TestUser;
let admin: TestUser;
let retiredAdmin: TestUser;

async function serviceToken(name: string, secret: string): Promise<string> {
  const res = await harness.request('/internal/service-token', {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${name}:${secret}`).toString('base64')}` },
  });
  expect(res.status).toBe(200);
  return (await json(res)).token;
}

beforeAll(async () => {
  harness = await createUserServiceHarness();
  // The harness's config is the one its domain reads: register the two directory readers' secrets.
  harness.config.serviceSecrets.set('notification', secrets.notification);
  harness.config.serviceSecrets.set('monitoring', secrets.monitoring);
  tokens.notification = await serviceToken('notification', secrets.notification);
  tokens.monitoring = await serviceToken('monitoring', secrets.monitoring);
  tokens['job-processor'] = await serviceToken('job-processor', harness.serviceSecret);

  researcher = await harness.register();
  admin = await harness.register();
  await harness.domain.admin.update(admin.id, { roles: ['admin'] });
  retiredAdmin = await harness.register();
  await harness.domain.admin.update(retiredAdmin.id, { roles: ['admin'] });
  await harness.domain.admin.update(retiredAdmin.id, { isActive: false });
}, 60_000);

afterAll(async () => {
  await harness.close();
});

describe('GET /internal/directory/users/{id}', () => {
  it('answers a user’s address, display name, roles and state to notification', async () => {
    const res = await harness.request(`/internal/directory/users/${researcher.id}`, { token: tokens.notification });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body).toEqual({ id: researcher.id, email: researcher.email, displayName: 'Ada Lovelace', roles: ['researcher'], isActive: true });
    expect(DirectoryUserSchema.strict().parse(body)).toEqual(body);
  });

  it('answers monitoring too', async () => {
    const res = await harness.request(`/internal/directory/users/${admin.id}`, { token: tokens.monitoring });
    expect(res.status).toBe(200);
    expect((await json(res)).roles).toEqual(['admin']);
  });

  it('shows a deactivated user as inactive rather than unknown', async () => {
    const res = await harness.request(`/internal/directory/users/${retiredAdmin.id}`, { token: tokens.notification });
    expect(res.status).toBe(200);
    expect((await json(res)).isActive).toBe(false);
  });

  it('falls back to the username when the account has no name', async () => {
    const nameless = await harness.register();
    await harness.testDb.database.db.update(accounts).set({ firstName: '', lastName: ' ' }).where(eq(accounts.id, nameless.id));
    const res = await harness.request(`/internal/directory/users/${nameless.id}`, { token: tokens.notification });
    expect((await json(res)).displayName).toBe(nameless.username.toLowerCase());
  });

  it('answers 404 for an unknown user and 400 for a malformed id', async () => {
    const unknown = await harness.request(`/internal/directory/users/${Bun.randomUUIDv7()}`, { token: tokens.notification });
    expect(unknown.status).toBe(404);
    expect((await json(unknown)).code).toBe('user_not_found');
    expect((await harness.request('/internal/directory/users/not-a-uuid', { token: tokens.notification })).status).toBe(400);
  });

  it('refuses job-processor’s service token with 403', async () => {
    const res = await harness.request(`/internal/directory/users/${researcher.id}`, { token: tokens['job-processor'] });
    expect(res.status).toBe(403);
    expect((await json(res)).code).toBe('forbidden');
  });

  it('refuses a user token, even an admin’s, with 403 and no token with 401', async () => {
    const session = await harness.login(admin.username, admin.password);
    expect((await harness.request(`/internal/directory/users/${researcher.id}`, { token: session.accessToken })).status).toBe(403);
    expect((await harness.request(`/internal/directory/users/${researcher.id}`)).status).toBe(401);
  });
});

describe('GET /internal/directory/users?role=', () => {
  it('lists the active users holding the role, not deactivated ones nor other roles', async () => {
    const res = await harness.request('/internal/directory/users?role=admin', { token: tokens.notification });
    expect(res.status).toBe(200);
    const { items } = await json(res);
    const ids = items.map((u: { id: string }) => u.id);
    expect(ids).toContain(admin.id);
    expect(ids).not.toContain(retiredAdmin.id);
    expect(ids).not.toContain(researcher.id);
    expect(items.every((u: { roles: string[]; isActive: boolean }) => u.roles.includes('admin') && u.isActive)).toBe(true);
    expect(items.find((u: { id: string }) => u.id === admin.id)).toEqual({ id: admin.id, email: admin.email, displayName: 'Ada Lovelace', roles: ['admin'], isActive: true });
  });

  it('rejects a missing or unknown role with 400', async () => {
    expect((await harness.request('/internal/directory/users', { token: tokens.notification })).status).toBe(400);
    expect((await harness.request('/internal/directory/users?role=overlord', { token: tokens.notification })).status).toBe(400);
  });

  it('refuses job-processor’s service token with 403', async () => {
    expect((await harness.request('/internal/directory/users?role=admin', { token: tokens['job-processor'] })).status).toBe(403);
  });
});

describe('notification’s UsersClient against the directory', () => {
  it('resolves a user, skips deactivated and unknown ones, and lists admins over real HTTP', async () => {
    const served = serveUserService(harness.app);
    try {
      const client = usersClient(
        createHttpClient({ service: 'user-service', baseUrl: served.url, timeoutMs: 3_000 }),
        createServiceCredential(async () => ({ token: tokens.notification!, expiresAt: Date.now() + 600_000 })),
      );
      expect(await client.user(researcher.id)).toEqual({ id: researcher.id, email: researcher.email, displayName: 'Ada Lovelace' });
      expect(await client.user(retiredAdmin.id)).toBeNull();
      expect(await client.user(Bun.randomUUIDv7())).toBeNull();
      const admins = await client.admins();
      expect(admins).toContainEqual({ id: admin.id, email: admin.email, displayName: 'Ada Lovelace' });
      expect(admins.map((a) => a.id)).not.toContain(retiredAdmin.id);
    } finally {
      await served.stop();
    }
  });
});
