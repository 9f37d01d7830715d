/**
 * Credential expiry notices on the real database: each expiry of a stored token is announced once as
 * a `credential.expiring` outbox row (again after the token is renewed), and user-service's relay
 * delivers it, signed with the service token user-service mints for itself, into a real notification
 * app that verifies it against user-service's published JWKS.
 */
import { createServiceCredential, serviceTokenIssuer } from '@shared/auth.ts';
import { httpEventSink } from '@shared/event-sink.ts';
import { createHttpClient } from '@shared/http-client.ts';
import { createLogger } from '@shared/log.ts';
import { outboundPolicy } from '@shared/outbound.ts';
import { createOutboxRelay } from '@shared/outbox-relay.ts';
import { EventEnvelopeSchema, type EventEnvelope } from '@shared/schemas/events.ts';
import { emailOutbox, events, notifications } from '@db/schema/notify.ts';
import { credentials, outbox } from '@db/schema/users.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { and, eq, sql } from 'drizzle-orm';
import { createApp as createNotificationApp } from '../../services/notification/src/app.ts';
import { usersClient } from '../../services/notification/src/users-client.ts';
import { createWebhookSender } from '../../services/notification/src/webhook-sender.ts';
import { createCredentialExpiryNotifier, CREDENTIAL_EXPIRING } from '../../services/user-service/src/credential-expiry.ts';
import { selfServiceCredential } from '../../services/user-service/src/service.ts';
import { createUserServiceHarness, remoteAuthenticator, serveUserService, uniqueName, type UserServiceHarness } from '../support/user-service.ts';
import { migrateAll } from '../support/test-database.ts';

const DAY_MS = 86_400_000;
const NOTICE_MS = 7 * DAY_MS;
const NOTIFICATION_SECRET = `notification-secret-${crypto.randomUUID()}`;
const logger = createLogger({ level: 'silent' });
let harness: UserServiceHarness;

/** A Cloudgene-style API token: a JWT whose `exp` the vault reads as the credential's expiry. */
function cloudgeneToken(expiresAt: number): string {
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${enc({ alg: 'HS256', typ: 'JWT' })}.${enc({ sub: uniqueName('mis'), exp: Math.floor(expiresAt / 1000) })}.c2lnbmF0dXJl`;
}

/** Stores a token expiring at `expiresAt` in the user's vault for a fresh service slug; returns the slug. */
async function storeToken(userId: string, expiresAt: number, slug = uniqueName('svc'), label: string | null = 'MIS account'): Promise<string> {
  await harness.domain.vault.put(userId, slug, { type: 'cloudgene-token', label, secret: { token: cloudgeneToken(expiresAt) } });
  return slug;
}

function notifier(now: () => number = Date.now) {
  return createCredentialExpiryNotifier({ db: harness.testDb.database.db, logger, noticeMs: NOTICE_MS, intervalMs: 3_600_000, now });
}

/** The user's credential.expiring events, oldest first. */
async function eventsFor(userId: string): Promise<EventEnvelope[]> {
  const rows = await harness.testDb.database.db
    .select()
    .from(outbox)
    .where(sql`${outbox.payload}->>'userId' = ${userId}`)
    .orderBy(outbox.createdAt, outbox.id);
  for (const row of rows) expect(row.type).toBe(CREDENTIAL_EXPIRING);
  return rows.map((r) => r.payload as EventEnvelope);
}

beforeAll(async () => {
  harness = await createUserServiceHarness();
  // notification's tables too, for the relay's end-to-end delivery.
  await migrateAll(harness.testDb.database);
  // notification reads recipients from user-service's directory with its own service token.
  harness.config.serviceSecrets.set('notification', NOTIFICATION_SECRET);
  await harness.testDb.database.db.delete(outbox);
}, 60_000);

afterAll(async () => {
  // Undelivered rows left in a shared database would be picked up by another file's user-service relay.
  await harness.testDb.database.db.delete(outbox);
  await harness.close();
});

describe('credential expiry notifier', () => {
  it('writes one credential.expiring event for a token expiring in 3 days, and none on the next round', async () => {
    const user = await harness.register();
    const expiresAt = Date.now() + 3 * DAY_MS;
    const slug = await storeToken(user.id, expiresAt);
    const worker = notifier();

    expect((await worker.runOnce()).notified).toBeGreaterThanOrEqual(1);
    const [event, ...more] = await eventsFor(user.id);
    expect(more).toHaveLength(0);
    expect(EventEnvelopeSchema.safeParse(event).success).toBe(true);
    const [row] = await harness.testDb.database.db.select().from(outbox).where(eq(outbox.id, event!.id));
    expect(row!.deliveredAt).toBeNull();
    expect(event).toMatchObject({ type: 'credential.expiring', source: 'user-service', userId: user.id });
    expect(event!.data).toEqual({
      serviceId: slug,
      credentialType: 'cloudgene-token',
      label: 'MIS account',
      expiresAt: new Date(Math.floor(expiresAt / 1000) * 1000).toISOString(),
      expired: false,
    });
    const [stored] = await harness.testDb.database.db.select().from(credentials).where(eq(credentials.userId, user.id));
    expect(stored!.expiryNotifiedFor?.toISOString()).toBe(event!.data.expiresAt as string);

    // Everything due was announced by the first round.
    expect(await worker.runOnce()).toEqual({ notified: 0 });
    expect(await eventsFor(user.id)).toHaveLength(1);
  });

  it('announces nothing for a token expiring in 30 days or a credential without an expiry, until the window reaches it', async () => {
    const user = await harness.register();
    const expiresAt = Date.now() + 30 * DAY_MS;
    const slug = await storeToken(user.id, expiresAt);
    await harness.domain.vault.put(user.id, uniqueName('wes'), { type: 'wes-bearer', secret: { token: 'opaque-wes-bearer-token' } });
    await harness.domain.vault.put(user.id, uniqueName('basic'), { type: 'basic', secret: { username: 'ada', password: 'server-pass-123' } });

    await notifier().runOnce();
    expect(await eventsFor(user.id)).toHaveLength(0);

    // 25 days on, the token is 5 days from expiring: announced once; the opaque credentials never are.
    await notifier(() => Date.now() + 25 * DAY_MS).runOnce();
    const announced = await eventsFor(user.id);
    expect(announced.map((e) => e.data.serviceId)).toEqual([slug]);
    expect(announced[0]!.data.expired).toBe(false);
  });

  it('announces a renewed token again once its new expiry nears, but not a re-stored token with the same expiry', async () => {
    const user = await harness.register();
    const firstExpiry = Date.now() + 2 * DAY_MS;
    const slug = await storeToken(user.id, firstExpiry);
    await notifier().runOnce();
    expect(await eventsFor(user.id)).toHaveLength(1);

    // The same token stored again: same expiry, already announced.
    const sameToken = cloudgeneToken(firstExpiry);
    await harness.domain.vault.put(user.id, slug, { type: 'cloudgene-token', label: 'MIS account', secret: { token: sameToken } });
    await notifier().runOnce();
    expect(await eventsFor(user.id)).toHaveLength(1);

    // A new token lasting 30 days: not due now...
    const renewedExpiry = Date.now() + 30 * DAY_MS;
    await storeToken(user.id, renewedExpiry, slug, 'renewed');
    await notifier().runOnce();
    expect(await eventsFor(user.id)).toHaveLength(1);

    // ...but 26 days on it is, and gets its own notice.
    await notifier(() => Date.now() + 26 * DAY_MS).runOnce();
    const [first, second, ...more] = await eventsFor(user.id);
    expect(more).toHaveLength(0);
    expect(second!.id).not.toBe(first!.id);
    expect(second!.data).toMatchObject({ serviceId: slug, label: 'renewed', expiresAt: new Date(Math.floor(renewedExpiry / 1000) * 1000).toISOString() });
  });

  it('tells the owner of a token that already expired without a notice, marked as expired', async () => {
    const user = await harness.register();
    const slug = await storeToken(user.id, Date.now() - 2 * DAY_MS);
    await notifier().runOnce();
    const [event, ...more] = await eventsFor(user.id);
    expect(more).toHaveLength(0);
    expect(event!.data).toMatchObject({ serviceId: slug, expired: true });
  });

  it('skips a deactivated account', async () => {
    const user = await harness.register();
    await storeToken(user.id, Date.now() + DAY_MS);
    await harness.domain.admin.update(user.id, { isActive: false });
    await notifier().runOnce();
    expect(await eventsFor(user.id)).toHaveLength(0);
  });

  it('announces each expiry once when two replicas run a round at the same time', async () => {
    const user = await harness.register();
    const slugs = [await storeToken(user.id, Date.now() + DAY_MS), await storeToken(user.id, Date.now() + 2 * DAY_MS), await storeToken(user.id, Date.now() + 3 * DAY_MS)];
    const rounds = await Promise.all([notifier().runOnce(), notifier().runOnce()]);
    const announced = await eventsFor(user.id);
    expect(announced.map((e) => e.data.serviceId).sort()).toEqual([...slugs].sort());
    expect(rounds[0]!.notified + rounds[1]!.notified).toBe(3);
  });

  it('stops cleanly once started', async () => {
    const worker = notifier();
    worker.start();
    await worker.stop();
  });
});

describe('relay to notification', () => {
  it("delivers the notice with user-service's own service token to notification, which notifies the user in-app and by email", async () => {
    const db = harness.testDb.database.db;
    const userService = serveUserService(harness.app);
    const client = createHttpClient({ service: 'user-service', baseUrl: userService.url });
    const notificationApp = createNotificationApp({
      logger,
      readyTimeoutMs: 1000,
      organization: { name: 'test', url: 'https://example.org' },
      // notification as deployed: tokens verified against user-service's JWKS over HTTP.
      authenticator: remoteAuthenticator(userService.url, harness.kv, harness.serviceSecret),
      database: harness.testDb.database,
      kv: harness.kv,
      users: usersClient(client, createServiceCredential(serviceTokenIssuer(client, 'notification', NOTIFICATION_SECRET))),
      publicUrl: 'https://imputation.example.org',
      webhooks: { box: harness.box, sender: createWebhookSender({ db, box: harness.box, logger, outbound: outboundPolicy(false) }), outbound: outboundPolicy(false) },
    });
    const notification = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: notificationApp.fetch });
    try {
      await db.delete(outbox);
      const user = await harness.register();
      const slug = await storeToken(user.id, Date.now() + 4 * DAY_MS);
      await notifier().runOnce();
      const [event] = await eventsFor(user.id);

      const relay = createOutboxRelay({
        db,
        table: outbox,
        logger,
        deliver: httpEventSink({
          client: createHttpClient({ service: 'notification', baseUrl: notification.url.href }),
          credential: selfServiceCredential(harness.domain.tokens),
        }),
        // A little ahead of the database clock, which stamped the row's next_attempt_at.
        now: () => Date.now() + 1_000,
      });
      expect(await relay.runOnce()).toEqual({ delivered: 1, failed: 0 });

      const [outboxAfter] = await db.select().from(outbox).where(eq(outbox.id, event!.id));
      expect(outboxAfter!.deliveredAt).not.toBeNull();
      expect(outboxAfter!.attempts).toBe(0);
      const [received] = await db.select().from(events).where(eq(events.id, event!.id));
      expect(received).toMatchObject({ type: 'credential.expiring', source: 'user-service', payload: event });
      const inbox = await db.select().from(notifications).where(and(eq(notifications.userId, user.id), eq(notifications.eventId, event!.id)));
      expect(inbox).toHaveLength(1);
      expect(inbox[0]!.title).toContain(slug);
      expect(inbox[0]!.link).toBe('/settings/credentials');
      const mail = await db.select().from(emailOutbox).where(eq(emailOutbox.eventId, event!.id));
      expect(mail.map((m) => m.toAddress)).toEqual([user.email]);
    } finally {
      notification.stop(true);
      await userService.stop();
    }
  });
});
