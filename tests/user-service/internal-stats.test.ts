/**
 * user-service's `GET /internal/stats/users` on real backends: monitoring's service token only (a
 * real one, issued for monitoring's secret); total and active accounts, active accounts by role, and
 * registrations in the last seven days, matching the accounts stored.
 */
import { accounts } from '@db/schema/users.ts';
import { ROLES } from '@shared/auth.ts';
import { UserStatsSchema } from '@shared/schemas/stats.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { eq } from 'drizzle-orm';
import { json } from '../support/json.ts';
import { createUserServiceHarness, type UserServiceHarness } from '../support/user-service.ts';

const DAY = 86_400_000;
let harness: UserServiceHarness;
const secrets = { monitoring: `monitoring-${crypto.randomUUID()}`, notification: `notification-${crypto.randomUUID()}` };
const tokens: Record<string, string> = {};

async function serviceToken(name: string, secret: string): Promise<string> {
  const res = await harness.request('/internal/service-token', {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${name}:${secret}`).toString('base64')}` },
  });
  expect(res.status).toBe(200);
  return (await json(res)).token;
}

const stats = async (token = tokens.monitoring) => harness.request('/internal/stats/users', { token });

beforeAll(async () => {
  harness = await createUserServiceHarness();
  harness.config.serviceSecrets.set('monitoring', secrets.monitoring);
  harness.config.serviceSecrets.set('notification', secrets.notification);
  tokens.monitoring = await serviceToken('monitoring', secrets.monitoring);
  tokens.notification = await serviceToken('notification', secrets.notification);
  tokens['job-processor'] = await serviceToken('job-processor', harness.serviceSecret);
}, 60_000);

afterAll(async () => {
  await harness.close();
});

describe('GET /internal/stats/users', () => {
  it('counts new accounts: total, active, active by role, registered in the last 7 days', async () => {
    const before = await json(await stats());
    const db = harness.testDb.database.db;
    await harness.register();
    const admin = await harness.register();
    await harness.domain.admin.update(admin.id, { roles: ['admin'] });
    const gone = await harness.register();
    await harness.domain.admin.update(gone.id, { roles: ['viewer'] });
    await harness.domain.admin.update(gone.id, { isActive: false });
    const old = await harness.register();
    await db.update(accounts).set({ createdAt: new Date(Date.now() - 8 * DAY) }).where(eq(accounts.id, old.id));
    const lastWeek = await harness.register();
    await db.update(accounts).set({ createdAt: new Date(Date.now() - 6 * DAY) }).where(eq(accounts.id, lastWeek.id));

    const res = await stats();
    expect(res.status).toBe(200);
    const after = await json(res);
    expect(UserStatsSchema.strict().parse(after)).toEqual(after);
    expect(after.total - before.total).toBe(5);
    // The deactivated viewer is an account but not an active one, nor a viewer any more.
    expect(after.active - before.active).toBe(4);
    expect(after.byRole.admin - before.byRole.admin).toBe(1);
    expect(after.byRole.researcher - before.byRole.researcher).toBe(3);
    expect(after.byRole.viewer - before.byRole.viewer).toBe(0);
    // The account created eight days ago is not recent; the one from six days ago is.
    expect(after.registeredLast7Days - before.registeredLast7Days).toBe(4);
  });

  it('matches an independent tally of the stored accounts', async () => {
    const body = await json(await stats());
    const rows = await harness.testDb.database.db.select().from(accounts);
    const active = rows.filter((r) => r.isActive);
    expect(body).toEqual({
      total: rows.length,
      active: active.length,
      byRole: Object.fromEntries(ROLES.map((role) => [role, active.filter((r) => r.roles.includes(role)).length])),
      registeredLast7Days: rows.filter((r) => r.createdAt.getTime() >= Date.now() - 7 * DAY).length,
    });
  });

  it('refuses other services with 403', async () => {
    expect((await stats(tokens.notification)).status).toBe(403);
    expect((await stats(tokens['job-processor'])).status).toBe(403);
  });

  it('refuses user tokens with 403, admins included', async () => {
    const { user } = await harness.signedInUser();
    await harness.domain.admin.update(user.id, { roles: ['admin'] });
    const session = await harness.login(user.username, user.password);
    const res = await stats(session.accessToken);
    expect(res.status).toBe(403);
    expect((await json(res)).code).toBe('forbidden');
  });

  it('refuses a request without a token with 401', async () => {
    expect((await harness.request('/internal/stats/users')).status).toBe(401);
  });
});
