/**
 * notification's event intake on the real database with real token verification: only services may
 * post, only as themselves, and each event is stored once however often it arrives. Ends with the
 * whole path: a registry outbox row relayed over HTTP into notify.events.
 */
import type { ServiceApp } from '@shared/app.ts';
import { createServiceCredential } from '@shared/auth.ts';
import { httpEventSink } from '@shared/event-sink.ts';
import { createHttpClient } from '@shared/http-client.ts';
import { createMemoryKv } from '@shared/kv-memory.ts';
import { createLogger } from '@shared/log.ts';
import { outboundPolicy } from '@shared/outbound.ts';
import { outboxRow } from '@shared/outbox.ts';
import { createSecretBox } from '@shared/secret-box.ts';
import { createOutboxRelay } from '@shared/outbox-relay.ts';
import { events, notifications } from '@db/schema/notify.ts';
import { outbox } from '@db/schema/registry.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { eq } from 'drizzle-orm';
import { createApp } from '../../services/notification/src/app.ts';
import { createWebhookSender } from '../../services/notification/src/webhook-sender.ts';
import { json } from '../support/json.ts';
import { createTestDatabase, migrateAll, type TestDatabase } from '../support/test-database.ts';
import { serviceTokenFor, testAuthenticator, tokenFor } from '../support/test-identity.ts';

let testDb: TestDatabase;
let app: ServiceApp;
let registryToken: string;
const admin = { id: crypto.randomUUID(), email: 'admin@example.org', displayName: 'Ada Admin' };

beforeAll(async () => {
  testDb = await createTestDatabase();
  await migrateAll(testDb.database);
  await testDb.database.db.delete(outbox);
  const kv = createMemoryKv();
  const logger = createLogger({ level: 'silent' });
  const box = await createSecretBox([{ id: 'test', key: crypto.getRandomValues(new Uint8Array(32)) }]);
  const targets = { outbound: outboundPolicy(false) };
  app = createApp({
    logger,
    readyTimeoutMs: 1000,
    organization: { name: 'test', url: 'https://example.org' },
    authenticator: testAuthenticator(kv),
    database: testDb.database,
    kv,
    // service.health_changed goes to admins: one admin here, so each event makes one in-app notification.
    users: { user: async () => null, admins: async () => [admin] },
    publicUrl: 'https://imputation.example.org',
    webhooks: { box, sender: createWebhookSender({ db: testDb.database.db, box, logger, ...targets }), ...targets },
  });
  registryToken = await serviceTokenFor('service-registry');
}, 60_000);

afterAll(async () => {
  await testDb.drop();
});

function healthChanged() {
  return outboxRow({
    type: 'service.health_changed',
    source: 'service-registry',
    data: { serviceId: crypto.randomUUID(), slug: 'michigan', previous: 'healthy', current: 'unreachable' },
  }).payload;
}

function post(body: unknown, token?: string) {
  return app.request('/internal/events', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

async function storedEvents(id: string) {
  return testDb.database.db.select().from(events).where(eq(events.id, id));
}

describe('POST /internal/events', () => {
  it('stores an event from a service token with 202', async () => {
    const event = healthChanged();
    const res = await post(event, registryToken);
    expect(res.status).toBe(202);
    expect(await json(res)).toEqual({ id: event.id, duplicate: false });
    const rows = await storedEvents(event.id);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ id: event.id, type: 'service.health_changed', source: 'service-registry', payload: event });
  });

  it('acknowledges a redelivered event as a duplicate with 202 and keeps one row', async () => {
    const event = healthChanged();
    expect((await post(event, registryToken)).status).toBe(202);
    const again = await post(event, registryToken);
    expect(again.status).toBe(202);
    expect(await json(again)).toEqual({ id: event.id, duplicate: true });
    expect(await storedEvents(event.id)).toHaveLength(1);
    // ...and the duplicate produced no second notification.
    const made = await testDb.database.db.select().from(notifications).where(eq(notifications.eventId, event.id));
    expect(made.map((n) => n.userId)).toEqual([admin.id]);
    expect(made[0]!.title).toBe('michigan is unreachable');
  });

  it('refuses a user token with 403 and stores nothing', async () => {
    const event = healthChanged();
    const res = await post(event, await tokenFor(crypto.randomUUID(), ['admin']));
    expect(res.status).toBe(403);
    expect((await json(res)).code).toBe('forbidden');
    expect(await storedEvents(event.id)).toHaveLength(0);
  });

  it('refuses a request without a token with 401', async () => {
    const event = healthChanged();
    const res = await post(event);
    expect(res.status).toBe(401);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(await storedEvents(event.id)).toHaveLength(0);
  });

  it('rejects a malformed envelope with 422 naming the field', async () => {
    const event = { ...healthChanged(), id: 'not-a-uuid', occurredAt: 'yesterday' };
    const res = await post(event, registryToken);
    expect(res.status).toBe(422);
    const problem = await json(res);
    expect(problem.code).toBe('validation_failed');
    expect(problem.errors.map((e: { path: string }) => e.path)).toEqual(expect.arrayContaining(['body.id', 'body.occurredAt']));
  });

  it('rejects a body that is not JSON with 400', async () => {
    const res = await post('{"id": ', registryToken);
    expect(res.status).toBe(400);
  });

  it('refuses an event whose source is not the calling service with 403 source_mismatch', async () => {
    const event = { ...healthChanged(), source: 'job-processor' };
    const res = await post(event, registryToken);
    expect(res.status).toBe(403);
    expect((await json(res)).code).toBe('source_mismatch');
    expect(await storedEvents(event.id)).toHaveLength(0);
  });

  it('refuses an oversized event with 413', async () => {
    const event = { ...healthChanged(), data: { padding: 'x'.repeat(300 * 1024) } };
    const res = await post(event, registryToken);
    expect(res.status).toBe(413);
    expect(await storedEvents(event.id)).toHaveLength(0);
  });

  it('keeps /ready answering with database and kv checks', async () => {
    const res = await app.request('/ready');
    expect(res.status).toBe(200);
    expect(Object.keys((await json(res)).checks)).toEqual(expect.arrayContaining(['database', 'kv']));
  });
});

describe('outbox relay to notification', () => {
  it('delivers a registry outbox row over HTTP into notify.events and marks it delivered', async () => {
    const server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: app.fetch });
    try {
      const row = outboxRow({ type: 'service.health_changed', source: 'service-registry', data: { slug: 'topmed', current: 'healthy' } });
      await testDb.database.db.insert(outbox).values(row);
      const relay = createOutboxRelay({
        db: testDb.database.db,
        table: outbox,
        logger: createLogger({ level: 'silent' }),
        deliver: httpEventSink({
          client: createHttpClient({ service: 'notification', baseUrl: server.url.href }),
          credential: createServiceCredential(async () => ({ token: registryToken, expiresAt: Date.now() + 600_000 })),
        }),
        // A little ahead of the database clock, which stamped the row's next_attempt_at.
        now: () => Date.now() + 1_000,
      });

      expect(await relay.runOnce()).toEqual({ delivered: 1, failed: 0 });
      const stored = await storedEvents(row.id);
      expect(stored).toHaveLength(1);
      expect(stored[0]).toMatchObject({ type: 'service.health_changed', source: 'service-registry', payload: row.payload });
      const [outboxAfter] = await testDb.database.db.select().from(outbox).where(eq(outbox.id, row.id));
      expect(outboxAfter!.deliveredAt).not.toBeNull();
      expect(outboxAfter!.attempts).toBe(0);
    } finally {
      server.stop(true);
    }
  });
});
