/**
 * The in-app inbox and notification preferences on the real database with real token verification:
 * paging, the unread filter, read / read-all / delete with the stored read time, one user never
 * reaching another's notifications, and preferences that round-trip and switch fan-out channels off.
 */
import { createServiceApp, type ServiceApp } from '@shared/app.ts';
import { createKv } from '@shared/kv-factory.ts';
import type { Kv } from '@shared/kv.ts';
import { createLogger } from '@shared/log.ts';
import { outboxRow } from '@shared/outbox.ts';
import { NotificationSchema } from '@shared/schemas/notifications.ts';
import { emailOutbox, notifications, preferences } from '@db/schema/notify.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { and, eq } from 'drizzle-orm';
import { NOTIFIABLE } from '../../services/notification/src/domain.ts';
import { fanOut } from '../../services/notification/src/fan-out.ts';
import { notificationRoutes } from '../../services/notification/src/routes/notifications.ts';
import { preferenceRoutes } from '../../services/notification/src/routes/preferences.ts';
import type { UsersClient } from '../../services/notification/src/users-client.ts';
import { json } from '../support/json.ts';
import { createTestDatabase, migrateAll, type TestDatabase } from '../support/test-database.ts';
import { serviceTokenFor, testAuthenticator, tokenFor } from '../support/test-identity.ts';

let testDb: TestDatabase;
let kv: Kv;
let app: ServiceApp;
/** The clock read times come from; tests move it to tell a first read from a second. */
let clock = Date.parse('2030-01-01T00:00:00Z');

beforeAll(async () => {
  testDb = await createTestDatabase();
  await migrateAll(testDb.database);
  kv = await createKv({ url: process.env.REDIS_URL });
  const db = testDb.database.db;
  // The notification app's auth settings, with the inbox writable by read-only viewers (it is their own).
  app = createServiceApp({
    name: 'notification',
    version: 'test',
    description: 'inbox under test',
    logger: createLogger({ level: 'silent' }),
    auth: { authenticator: testAuthenticator(kv), viewerWritablePrefixes: ['/notifications'] },
  });
  app.route('/', notificationRoutes({ db, now: () => clock }));
  app.route('/', preferenceRoutes({ db, now: () => clock }));
}, 60_000);

afterAll(async () => {
  await kv.close();
  await testDb.drop();
});

interface Caller {
  id: string;
  token: string;
}

async function user(roles: string[] = ['researcher']): Promise<Caller> {
  const id = crypto.randomUUID();
  return { id, token: await tokenFor(id, roles) };
}

function call(method: string, path: string, token?: string, body?: unknown) {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  return app.request(path, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
}

/** Inserts notifications for `userId`, oldest first (UUIDv7 ids in insertion order). */
async function seed(userId: string, count: number, options: { read?: boolean } = {}) {
  const rows = [];
  for (let i = 0; i < count; i++) {
    const [row] = await testDb.database.db
      .insert(notifications)
      .values({
        id: Bun.randomUUIDv7(),
        userId,
        type: 'job.completed',
        title: `Job ${i} completed`,
        body: 'Its results are in your files.',
        link: `/jobs/${i}`,
        data: { jobId: crypto.randomUUID(), n: i },
        readAt: options.read ? new Date('2029-12-31T00:00:00Z') : null,
      })
      .returning();
    rows.push(row!);
  }
  return rows;
}

async function stored(id: string) {
  const [row] = await testDb.database.db.select().from(notifications).where(eq(notifications.id, id));
  return row;
}

describe('GET /notifications', () => {
  it('pages through the caller’s notifications newest first with nextCursor', async () => {
    const a = await user();
    const rows = await seed(a.id, 5);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await call('GET', `/notifications?limit=2${cursor ? `&cursor=${cursor}` : ''}`, a.token);
      expect(res.status).toBe(200);
      const page = await json(res);
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((n: { id: string }) => n.id));
      cursor = page.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual(rows.map((r) => r.id).reverse());
  });

  it('answers each item as a Notification with exactly the documented fields', async () => {
    const a = await user();
    const [row] = await seed(a.id, 1);
    const page = await json(await call('GET', '/notifications', a.token));
    expect(page.items).toHaveLength(1);
    const item = page.items[0];
    expect(Object.keys(item).sort()).toEqual(['body', 'createdAt', 'data', 'id', 'link', 'readAt', 'title', 'type']);
    expect(NotificationSchema.parse(item)).toEqual({
      id: row!.id,
      type: 'job.completed',
      title: 'Job 0 completed',
      body: 'Its results are in your files.',
      link: '/jobs/0',
      data: row!.data as Record<string, unknown>,
      createdAt: row!.createdAt.toISOString(),
      readAt: null,
    });
    expect(page.nextCursor).toBeNull();
  });

  it('filters unread with unread=true and read with unread=false', async () => {
    const a = await user();
    const read = await seed(a.id, 2, { read: true });
    const unread = await seed(a.id, 3);
    const onlyUnread = await json(await call('GET', '/notifications?unread=true', a.token));
    expect(onlyUnread.items.map((n: { id: string }) => n.id)).toEqual(unread.map((r) => r.id).reverse());
    const onlyRead = await json(await call('GET', '/notifications?unread=false', a.token));
    expect(onlyRead.items.map((n: { id: string }) => n.id)).toEqual(read.map((r) => r.id).reverse());
    expect(onlyRead.items.every((n: { readAt: string | null }) => n.readAt !== null)).toBe(true);
  });

  it('never lists another user’s notifications', async () => {
    const [a, b] = [await user(), await user()];
    const mine = await seed(a.id, 2);
    await seed(b.id, 3);
    const page = await json(await call('GET', '/notifications?limit=100', a.token));
    expect(page.items.map((n: { id: string }) => n.id).sort()).toEqual(mine.map((r) => r.id).sort());
  });

  it('rejects a cursor it did not hand out with 400', async () => {
    const a = await user();
    const res = await call('GET', '/notifications?cursor=bm90LWEtY3Vyc29y', a.token);
    expect(res.status).toBe(400);
    expect((await json(res)).code).toBe('invalid_cursor');
  });

  it('rejects a bad unread or limit value with 400', async () => {
    const a = await user();
    expect((await call('GET', '/notifications?unread=yes', a.token)).status).toBe(400);
    expect((await call('GET', '/notifications?limit=0', a.token)).status).toBe(400);
  });

  it('refuses a request without a token with 401 and a service token with 403', async () => {
    expect((await call('GET', '/notifications')).status).toBe(401);
    const res = await call('GET', '/notifications', await serviceTokenFor('job-processor'));
    expect(res.status).toBe(403);
    expect((await json(res)).code).toBe('users_only');
  });
});

describe('GET /notifications/unread-count', () => {
  it('counts only the caller’s unread notifications', async () => {
    const [a, b] = [await user(), await user()];
    await seed(a.id, 3);
    await seed(a.id, 2, { read: true });
    await seed(b.id, 4);
    const res = await call('GET', '/notifications/unread-count', a.token);
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ count: 3 });
  });
});

describe('POST /notifications/{id}/read', () => {
  it('marks a notification read, stores the read time and keeps the first on a second call', async () => {
    const a = await user();
    const [row] = await seed(a.id, 1);
    clock = Date.parse('2030-02-01T10:00:00Z');
    const first = await call('POST', `/notifications/${row!.id}/read`, a.token);
    expect(first.status).toBe(200);
    const body = await json(first);
    expect(body).toMatchObject({ id: row!.id, readAt: '2030-02-01T10:00:00.000Z' });
    expect((await stored(row!.id))!.readAt?.toISOString()).toBe('2030-02-01T10:00:00.000Z');

    clock = Date.parse('2030-02-02T10:00:00Z');
    const again = await call('POST', `/notifications/${row!.id}/read`, a.token);
    expect(again.status).toBe(200);
    expect((await json(again)).readAt).toBe('2030-02-01T10:00:00.000Z');
    expect((await stored(row!.id))!.readAt?.toISOString()).toBe('2030-02-01T10:00:00.000Z');
    expect(await json(await call('GET', '/notifications/unread-count', a.token))).toEqual({ count: 0 });
  });

  it('answers 404 for another user’s notification and leaves it unread', async () => {
    const [a, b] = [await user(), await user()];
    const [theirs] = await seed(b.id, 1);
    const res = await call('POST', `/notifications/${theirs!.id}/read`, a.token);
    expect(res.status).toBe(404);
    expect((await json(res)).code).toBe('notification_not_found');
    expect((await stored(theirs!.id))!.readAt).toBeNull();
  });

  it('answers 404 for an unknown id and 400 for a malformed one', async () => {
    const a = await user();
    expect((await call('POST', `/notifications/${Bun.randomUUIDv7()}/read`, a.token)).status).toBe(404);
    expect((await call('POST', '/notifications/not-an-id/read', a.token)).status).toBe(400);
  });

  it('lets a read-only viewer mark their own notification read', async () => {
    const viewer = await user(['viewer']);
    const [row] = await seed(viewer.id, 1);
    expect((await call('POST', `/notifications/${row!.id}/read`, viewer.token)).status).toBe(200);
  });
});

describe('POST /notifications/read-all', () => {
  it('marks every unread notification of the caller read and no one else’s', async () => {
    const [a, b] = [await user(), await user()];
    const mine = [...(await seed(a.id, 3)), ...(await seed(a.id, 1, { read: true }))];
    const theirs = await seed(b.id, 2);
    clock = Date.parse('2030-03-01T08:00:00Z');
    const res = await call('POST', '/notifications/read-all', a.token);
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ updated: 3 });
    for (const row of mine.slice(0, 3)) expect((await stored(row.id))!.readAt?.toISOString()).toBe('2030-03-01T08:00:00.000Z');
    // The one already read keeps its read time.
    expect((await stored(mine[3]!.id))!.readAt?.toISOString()).toBe('2029-12-31T00:00:00.000Z');
    for (const row of theirs) expect((await stored(row.id))!.readAt).toBeNull();
    expect(await json(await call('POST', '/notifications/read-all', a.token))).toEqual({ updated: 0 });
  });
});

describe('DELETE /notifications/{id}', () => {
  it('deletes the caller’s notification with 204, then answers 404', async () => {
    const a = await user();
    const [row] = await seed(a.id, 1);
    const res = await call('DELETE', `/notifications/${row!.id}`, a.token);
    expect(res.status).toBe(204);
    expect(await stored(row!.id)).toBeUndefined();
    expect((await call('DELETE', `/notifications/${row!.id}`, a.token)).status).toBe(404);
  });

  it('answers 404 for another user’s notification and keeps it', async () => {
    const [a, b] = [await user(), await user()];
    const [theirs] = await seed(b.id, 1);
    const res = await call('DELETE', `/notifications/${theirs!.id}`, a.token);
    expect(res.status).toBe(404);
    expect(await stored(theirs!.id)).toBeDefined();
  });
});

describe('GET /notifications/preferences', () => {
  it('shows every user event type × channel at its default to a researcher, and no admin types', async () => {
    const a = await user();
    const res = await call('GET', '/notifications/preferences', a.token);
    expect(res.status).toBe(200);
    const { items } = await json(res);
    const userTypes = Object.entries(NOTIFIABLE).filter(([, info]) => info.audience === 'user');
    expect(items).toHaveLength(userTypes.length * 3);
    for (const [type, info] of userTypes) {
      for (const channel of ['in_app', 'email', 'webhook'] as const) {
        expect(items).toContainEqual({ eventType: type, channel, enabled: info.defaults[channel], isDefault: true });
      }
    }
    expect(items.some((p: { eventType: string }) => p.eventType === 'alert.raised' || p.eventType === 'service.health_changed')).toBe(false);
  });

  it('shows the admin-audience types to an admin', async () => {
    const admin = await user(['admin']);
    const { items } = await json(await call('GET', '/notifications/preferences', admin.token));
    expect(items).toHaveLength(Object.keys(NOTIFIABLE).length * 3);
    expect(items).toContainEqual({ eventType: 'alert.raised', channel: 'email', enabled: true, isDefault: true });
    expect(items).toContainEqual({ eventType: 'service.health_changed', channel: 'email', enabled: false, isDefault: true });
  });
});

describe('PUT /notifications/preferences', () => {
  const rowsOf = (userId: string) => testDb.database.db.select().from(preferences).where(eq(preferences.userId, userId));

  it('stores a choice, shows it, and deletes it when set back to the default', async () => {
    const a = await user();
    const res = await call('PUT', '/notifications/preferences', a.token, {
      items: [
        { eventType: 'job.completed', channel: 'email', enabled: false },
        { eventType: 'job.created', channel: 'in_app', enabled: true },
      ],
    });
    expect(res.status).toBe(200);
    const { items } = await json(res);
    expect(items).toContainEqual({ eventType: 'job.completed', channel: 'email', enabled: false, isDefault: false });
    expect(items).toContainEqual({ eventType: 'job.created', channel: 'in_app', enabled: true, isDefault: false });
    expect(items).toContainEqual({ eventType: 'job.completed', channel: 'in_app', enabled: true, isDefault: true });
    expect((await rowsOf(a.id)).map((r) => [r.eventType, r.channel, r.enabled]).sort()).toEqual([
      ['job.completed', 'email', false],
      ['job.created', 'in_app', true],
    ]);

    const shown = await json(await call('GET', '/notifications/preferences', a.token));
    expect(shown.items).toContainEqual({ eventType: 'job.completed', channel: 'email', enabled: false, isDefault: false });

    const back = await call('PUT', '/notifications/preferences', a.token, { items: [{ eventType: 'job.completed', channel: 'email', enabled: true }] });
    expect(back.status).toBe(200);
    expect((await json(back)).items).toContainEqual({ eventType: 'job.completed', channel: 'email', enabled: true, isDefault: true });
    expect((await rowsOf(a.id)).map((r) => [r.eventType, r.channel])).toEqual([['job.created', 'in_app']]);
  });

  it('changes a stored choice in place and takes the last value given for a pair', async () => {
    const a = await user();
    await call('PUT', '/notifications/preferences', a.token, { items: [{ eventType: 'job.failed', channel: 'webhook', enabled: false }] });
    const res = await call('PUT', '/notifications/preferences', a.token, {
      items: [
        { eventType: 'job.status_changed', channel: 'email', enabled: false },
        { eventType: 'job.status_changed', channel: 'email', enabled: true },
      ],
    });
    expect(res.status).toBe(200);
    expect((await json(res)).items).toContainEqual({ eventType: 'job.status_changed', channel: 'email', enabled: true, isDefault: false });
    expect((await rowsOf(a.id)).map((r) => [r.eventType, r.channel, r.enabled]).sort()).toEqual([
      ['job.failed', 'webhook', false],
      ['job.status_changed', 'email', true],
    ]);
  });

  it('rejects unknown event types and channels with one 422 naming them all, storing nothing', async () => {
    const a = await user();
    const res = await call('PUT', '/notifications/preferences', a.token, {
      items: [
        { eventType: 'job.completed', channel: 'email', enabled: false },
        { eventType: 'job.exploded', channel: 'email', enabled: false },
        { eventType: 'job.failed', channel: 'pigeon', enabled: true },
      ],
    });
    expect(res.status).toBe(422);
    const problem = await json(res);
    expect(problem.code).toBe('unknown_preferences');
    expect(problem.unknownEventTypes).toEqual(['job.exploded']);
    expect(problem.unknownChannels).toEqual(['pigeon']);
    expect(problem.errors.map((e: { path: string }) => e.path)).toEqual(['body.items.1.eventType', 'body.items.2.channel']);
    expect(await rowsOf(a.id)).toHaveLength(0);
  });

  it('refuses admin-audience types from a researcher with 422', async () => {
    const a = await user();
    const res = await call('PUT', '/notifications/preferences', a.token, { items: [{ eventType: 'alert.raised', channel: 'email', enabled: false }] });
    expect(res.status).toBe(422);
    expect((await json(res)).unknownEventTypes).toEqual(['alert.raised']);
    expect(await rowsOf(a.id)).toHaveLength(0);
  });

  it('lets an admin set admin-audience types', async () => {
    const admin = await user(['admin']);
    const res = await call('PUT', '/notifications/preferences', admin.token, { items: [{ eventType: 'alert.raised', channel: 'email', enabled: false }] });
    expect(res.status).toBe(200);
    expect((await json(res)).items).toContainEqual({ eventType: 'alert.raised', channel: 'email', enabled: false, isDefault: false });
  });

  it('rejects a malformed body with 422 and non-JSON with 400', async () => {
    const a = await user();
    const res = await call('PUT', '/notifications/preferences', a.token, { items: [{ eventType: 'job.completed', channel: 'email', enabled: 'no' }] });
    expect(res.status).toBe(422);
    expect((await json(res)).code).toBe('validation_failed');
    expect((await call('PUT', '/notifications/preferences', a.token, '{"items": [')).status).toBe(400);
  });

  it('switches fan-out channels off: in-app off keeps the inbox empty while email still queues', async () => {
    const a = await user();
    const res = await call('PUT', '/notifications/preferences', a.token, { items: [{ eventType: 'job.failed', channel: 'in_app', enabled: false }] });
    expect(res.status).toBe(200);
    const users: UsersClient = {
      user: async (id) => ({ id, email: `${id}@example.org`, displayName: 'Ada Lovelace' }),
      admins: async () => [],
    };
    const event = outboxRow({ type: 'job.failed', source: 'job-processor', userId: a.id, data: { jobId: crypto.randomUUID(), name: 'chr20' } }).payload;
    const result = await fanOut({ db: testDb.database.db, users, publicUrl: 'http://127.0.0.1' }, event);
    expect(result.notifications).toHaveLength(0);
    expect(result.emails).toBe(1);
    expect((await json(await call('GET', '/notifications', a.token))).items).toHaveLength(0);
    const queued = await testDb.database.db.select().from(emailOutbox).where(and(eq(emailOutbox.userId, a.id), eq(emailOutbox.eventId, event.id)));
    expect(queued).toHaveLength(1);
  });
});
