/**
 * Webhooks end to end on the real database: endpoints registered through the API (real token
 * verification), deliveries queued by the lead's fan-out or the test endpoint, sent by the sender to a
 * real local receiver that checks every signature the way a user's server would. The sender's clock
 * is injected, so retries and backoff are driven by moving it, not by waiting.
 */
import { createServiceApp, type ServiceApp } from '@shared/app.ts';
import { createMemoryKv } from '@shared/kv-memory.ts';
import { createLogger } from '@shared/log.ts';
import { outboundPolicy } from '@shared/outbound.ts';
import { outboxRow } from '@shared/outbox.ts';
import { createSecretBox, type SecretBox } from '@shared/secret-box.ts';
import { webhookDeliveries, webhooks } from '@db/schema/notify.ts';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'bun:test';
import { eq, inArray } from 'drizzle-orm';
import type { Server } from 'bun';
import { fanOut } from '../../services/notification/src/fan-out.ts';
import { webhookRoutes } from '../../services/notification/src/routes/webhooks.ts';
import type { UsersClient } from '../../services/notification/src/users-client.ts';
import { createWebhookSender, isNonPublicAddress, webhookTargetRefusal, type WebhookSender, type WebhookSenderDeps } from '../../services/notification/src/webhook-sender.ts';
import { newWebhookSecret, signWebhook, verifyWebhook, webhookSecretAad } from '../../services/notification/src/webhook-signing.ts';
import { json } from '../support/json.ts';
import { TEST_ENCRYPTION_KEY } from '../support/test-encryption-key.ts';
import { createTestDatabase, migrateAll, type TestDatabase } from '../support/test-database.ts';
import { serviceTokenFor, testAuthenticator, tokenFor } from '../support/test-identity.ts';

const logger = createLogger({ level: 'silent' });
let testDb: TestDatabase;
let box: SecretBox;
let app: ServiceApp;
/** The sender behind the app's test endpoint; each test that uses it sets its own. */
let currentSender: WebhookSender | undefined;
/** The clock the sender and the routes run on: real time moved ahead by `skew`, so never behind the database's (which stamps new rows). */
let skew = 2_000;
const now = () => Date.now() + skew;
const users: string[] = [];

// ---------------------------------------------------------------------------------------------
// A receiver as a user would run it: checks each delivery's signature against the endpoint secret.

interface Received {
  path: string;
  headers: Headers;
  body: string;
  verified: boolean;
}

interface Hook {
  secret?: string;
  respond: (call: number) => Response | Promise<Response>;
}

const hooks = new Map<string, Hook>();
const received: Received[] = [];
let receiver: Server<undefined>;
const callsTo = (path: string) => received.filter((r) => r.path === path);
let pathCounter = 0;
const newPath = () => `/hooks/${++pathCounter}-${crypto.randomUUID().slice(0, 8)}`;
const urlOf = (path: string) => `http://127.0.0.1:${receiver.port}${path}`;

beforeAll(async () => {
  testDb = await createTestDatabase();
  await migrateAll(testDb.database);
  // Other files' leftover endpoints would otherwise be claimed by this file's senders.
  await testDb.database.db.delete(webhooks);
  box = await createSecretBox([TEST_ENCRYPTION_KEY]);
  app = buildApp({ outbound: outboundPolicy(false) });
  receiver = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch: async (req) => {
      const path = new URL(req.url).pathname;
      const body = await req.text();
      const hook = hooks.get(path);
      const call = callsTo(path).length;
      received.push({ path, headers: req.headers, body, verified: hook?.secret ? verifyWebhook(hook.secret, req.headers, body, { now: now() }) : false });
      return hook ? hook.respond(call) : new Response('no such hook', { status: 404 });
    },
  });
}, 60_000);

afterEach(async () => {
  if (users.length > 0) await testDb.database.db.delete(webhooks).where(inArray(webhooks.userId, users));
  await currentSender?.stop();
  currentSender = undefined;
});

afterAll(async () => {
  receiver?.stop(true);
  await testDb.drop();
});

function buildApp(policy: Pick<WebhookSenderDeps, 'outbound' | 'allowPrivateTargets' | 'lookup'>, maxWebhooksPerUser = 20): ServiceApp {
  const kv = createMemoryKv();
  const built = createServiceApp({
    name: 'notification',
    version: '0.1.0',
    description: 'webhooks under test',
    logger,
    readyTimeoutMs: 1000,
    auth: { authenticator: testAuthenticator(kv) },
  });
  built.route(
    '/',
    webhookRoutes({
      db: testDb.database.db,
      box,
      ...policy,
      maxWebhooksPerUser,
      now,
      sender: {
        deliverNow: (id) => (currentSender ? currentSender.deliverNow(id) : Promise.resolve(null)),
        wake: () => currentSender?.wake(),
      },
    }),
  );
  return built;
}

function sender(overrides: Partial<WebhookSenderDeps> = {}): WebhookSender {
  currentSender = createWebhookSender({
    db: testDb.database.db,
    box,
    logger,
    outbound: outboundPolicy(false),
    now,
    random: () => 0.5,
    ...overrides,
  });
  return currentSender;
}

async function newUser(roles = ['researcher']) {
  const id = crypto.randomUUID();
  users.push(id);
  return { id, token: await tokenFor(id, roles) };
}

function call(method: string, path: string, token: string | undefined, body?: unknown, target: ServiceApp = app) {
  return target.request(path, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** Registers an endpoint at a fresh receiver path answering with `respond`; the receiver learns its secret. */
async function register(token: string, respond: Hook['respond'], eventTypes: string[] = ['*']) {
  const path = newPath();
  const res = await call('POST', '/webhooks', token, { url: urlOf(path), eventTypes, description: 'under test' });
  expect(res.status).toBe(201);
  const created = await json(res);
  hooks.set(path, { secret: created.secret, respond });
  return { id: created.id as string, secret: created.secret as string, path };
}

const directory: UsersClient = {
  user: async (id) => ({ id, email: `${id}@example.org`, displayName: 'Ada Lovelace' }),
  admins: async () => [],
};

async function jobEvent(userId: string, type = 'job.completed') {
  const event = outboxRow({ type, source: 'job-processor', userId, data: { jobId: crypto.randomUUID(), name: 'chr20 imputation', state: 'completed' } }).payload;
  const result = await fanOut({ db: testDb.database.db, users: directory, publicUrl: 'https://platform.example.org' }, event);
  return { event, result };
}

async function deliveriesOf(webhookId: string) {
  return testDb.database.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.webhookId, webhookId)).orderBy(webhookDeliveries.id);
}

async function endpointRow(webhookId: string) {
  const [row] = await testDb.database.db.select().from(webhooks).where(eq(webhooks.id, webhookId));
  return row;
}

const ok = () => new Response('thanks', { status: 200 });
const fail = () => new Response('{"error":"receiver is down"}', { status: 500 });

// ---------------------------------------------------------------------------------------------

describe('webhook signing', () => {
  it('reproduces the Standard Webhooks test vector', () => {
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const body = '{"test": 2432232314}';
    expect(signWebhook(secret, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, body)).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
    const headers = { 'webhook-id': 'msg_p5jXN8AQM9LWM0D4loKWxJek', 'webhook-timestamp': '1614265330', 'webhook-signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=' };
    expect(verifyWebhook(secret, headers, body, { now: 1614265330_000 })).toBe(true);
  });

  it('makes distinct whsec_ secrets of 32 random bytes', () => {
    const a = newWebhookSecret();
    const b = newWebhookSecret();
    expect(a).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    expect(Buffer.from(a.slice(6), 'base64')).toHaveLength(32);
    expect(a).not.toBe(b);
  });

  it('rejects a tampered body, a wrong secret, a stale timestamp and missing headers', () => {
    const secret = newWebhookSecret();
    const at = 1_700_000_000;
    const body = '{"type":"job.completed","timestamp":"2023-11-14T22:13:20.000Z","data":{"jobId":"j1"}}';
    const headers = new Headers({ 'webhook-id': 'd1', 'webhook-timestamp': String(at), 'webhook-signature': signWebhook(secret, 'd1', at, body) });
    expect(verifyWebhook(secret, headers, body, { now: at * 1000 })).toBe(true);
    expect(verifyWebhook(secret, headers, body.replace('j1', 'j2'), { now: at * 1000 })).toBe(false);
    expect(verifyWebhook(newWebhookSecret(), headers, body, { now: at * 1000 })).toBe(false);
    expect(verifyWebhook(secret, headers, body, { now: (at + 301) * 1000 })).toBe(false);
    expect(verifyWebhook(secret, headers, body, { now: (at + 600) * 1000, toleranceSeconds: 900 })).toBe(true);
    const partial = new Headers(headers);
    partial.delete('webhook-id');
    expect(verifyWebhook(secret, partial, body, { now: at * 1000 })).toBe(false);
  });

  it('accepts a header listing several signatures when one of them matches', () => {
    const secret = newWebhookSecret();
    const body = '{}';
    const good = signWebhook(secret, 'd2', 1_700_000_000, body);
    const headers = { 'Webhook-Id': 'd2', 'Webhook-Timestamp': '1700000000', 'Webhook-Signature': `v1,bm9wZQ== v2,xyz ${good}` };
    expect(verifyWebhook(secret, headers, body, { now: 1_700_000_000_000 })).toBe(true);
  });
});

describe('webhook target policy', () => {
  const on = outboundPolicy(true);

  it('classifies private, loopback, link-local and mapped addresses as non-public', () => {
    for (const address of ['127.0.0.1', '10.0.0.7', '172.20.1.1', '192.168.1.10', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', '::', 'fe80::1', 'fd00::1', '::ffff:10.0.0.1', '::ffff:7f00:1', '64:ff9b::a00:1', 'ff02::1']) {
      expect([address, isNonPublicAddress(address)]).toEqual([address, true]);
    }
    for (const address of ['93.184.216.34', '8.8.8.8', '172.32.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8']) {
      expect([address, isNonPublicAddress(address)]).toEqual([address, false]);
    }
  });

  it('refuses a host resolving to a private address with external calls on, and allows a public one', async () => {
    const lookup = async (host: string) => (host === 'internal.example.test' ? ['93.184.216.34', '10.1.2.3'] : ['93.184.216.34']);
    expect(await webhookTargetRefusal('https://internal.example.test/hook', { outbound: on, lookup })).toContain('10.1.2.3');
    expect(await webhookTargetRefusal('https://hooks.example.test/hook', { outbound: on, lookup })).toBeNull();
    expect(await webhookTargetRefusal('http://[::ffff:127.0.0.1]:8080/', { outbound: on, lookup })).toContain('non-public');
    expect(await webhookTargetRefusal('http://2130706433/', { outbound: on, lookup })).toContain('127.0.0.1');
  });

  it('reports a host that does not resolve', async () => {
    const lookup = async () => {
      throw Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' });
    };
    expect(await webhookTargetRefusal('https://nowhere.example.test/', { outbound: on, lookup })).toContain('does not resolve');
  });

  it('lets private targets through when the installation allows them, and only loopback when external calls are off', async () => {
    expect(await webhookTargetRefusal('http://127.0.0.1:9/hook', { outbound: on, allowPrivateTargets: true })).toBeNull();
    expect(await webhookTargetRefusal('http://127.0.0.1:9/hook', { outbound: outboundPolicy(false) })).toBeNull();
    expect(await webhookTargetRefusal('https://hooks.example.org/', { outbound: outboundPolicy(false) })).toContain('External calls are switched off');
  });
});

describe('webhook API', () => {
  it('registers an endpoint with 201 and shows its secret only in that answer', async () => {
    const a = await newUser();
    const url = urlOf(newPath());
    const res = await call('POST', '/webhooks', a.token, { url, eventTypes: ['job.completed', 'job.failed', 'job.completed'], description: 'CI hook' });
    expect(res.status).toBe(201);
    const created = await json(res);
    expect(created).toMatchObject({ url, eventTypes: ['job.completed', 'job.failed'], description: 'CI hook', active: true, consecutiveFailures: 0, disabledAt: null });
    expect(created.secret).toMatch(/^whsec_/);

    const listed = await call('GET', '/webhooks', a.token);
    expect(listed.status).toBe(200);
    const text = await listed.text();
    expect(JSON.parse(text).items.map((w: { id: string }) => w.id)).toEqual([created.id]);
    expect(text).not.toContain(created.secret);
    expect(JSON.parse(text).items[0]).not.toHaveProperty('secret');

    // Stored sealed, and bound to this webhook: it does not open as another one's.
    const row = await endpointRow(created.id);
    expect(row!.secretSealed).not.toContain(created.secret.slice(6));
    expect(await box.open(row!.secretSealed, webhookSecretAad(created.id))).toBe(created.secret);
    await expect(box.open(row!.secretSealed, webhookSecretAad(crypto.randomUUID()))).rejects.toThrow();
  });

  it('rejects an ftp:// URL with 422 and stores nothing', async () => {
    const a = await newUser();
    const res = await call('POST', '/webhooks', a.token, { url: 'ftp://127.0.0.1/hook', eventTypes: ['*'] });
    expect(res.status).toBe(422);
    const problem = await json(res);
    expect(problem.code).toBe('validation_failed');
    expect(problem.errors[0].path).toBe('body.url');
    expect(await testDb.database.db.select().from(webhooks).where(eq(webhooks.userId, a.id))).toHaveLength(0);
  });

  it('rejects a URL with credentials or over 2000 characters with 422', async () => {
    const a = await newUser();
    for (const url of ['http://user:pw@127.0.0.1/hook', `http://127.0.0.1/${'a'.repeat(2000)}`, 'not a url']) {
      const res = await call('POST', '/webhooks', a.token, { url, eventTypes: ['*'] });
      expect([url.slice(0, 30), res.status]).toEqual([url.slice(0, 30), 422]);
    }
  });

  it('rejects a non-loopback URL while external calls are off with 422 url_not_allowed', async () => {
    const a = await newUser();
    const res = await call('POST', '/webhooks', a.token, { url: 'https://hooks.example.org/ci', eventTypes: ['*'] });
    expect(res.status).toBe(422);
    const problem = await json(res);
    expect(problem.code).toBe('url_not_allowed');
    expect(problem.detail).toContain('External calls are switched off');
  });

  it('rejects a loopback or private target with 422 when external calls are on, unless private targets are allowed', async () => {
    const a = await newUser();
    const lookup = async () => ['192.168.10.20'];
    const strict = buildApp({ outbound: outboundPolicy(true), lookup });
    const loopback = await call('POST', '/webhooks', a.token, { url: urlOf('/x'), eventTypes: ['*'] }, strict);
    expect(loopback.status).toBe(422);
    expect((await json(loopback)).detail).toContain('127.0.0.1');
    const resolved = await call('POST', '/webhooks', a.token, { url: 'https://nas.example.test/hook', eventTypes: ['*'] }, strict);
    expect(resolved.status).toBe(422);
    expect((await json(resolved)).detail).toContain('192.168.10.20');

    const lenient = buildApp({ outbound: outboundPolicy(true), allowPrivateTargets: true, lookup });
    expect((await call('POST', '/webhooks', a.token, { url: 'https://nas.example.test/hook', eventTypes: ['*'] }, lenient)).status).toBe(201);
  });

  it('rejects unknown event types, and admin-only ones for a researcher, with 422', async () => {
    const a = await newUser();
    const unknown = await call('POST', '/webhooks', a.token, { url: urlOf('/x'), eventTypes: ['job.exploded'] });
    expect(unknown.status).toBe(422);
    const adminOnly = await call('POST', '/webhooks', a.token, { url: urlOf('/x'), eventTypes: ['alert.raised'] });
    expect(adminOnly.status).toBe(422);
    expect((await json(adminOnly)).code).toBe('event_type_not_available');
    const admin = await newUser(['admin']);
    expect((await call('POST', '/webhooks', admin.token, { url: urlOf('/x'), eventTypes: ['alert.raised'] })).status).toBe(201);
  });

  it('refuses endpoints beyond the per-user limit with 409', async () => {
    const limited = buildApp({ outbound: outboundPolicy(false) }, 2);
    const a = await newUser();
    for (let i = 0; i < 2; i++) expect((await call('POST', '/webhooks', a.token, { url: urlOf(`/l${i}`), eventTypes: ['*'] }, limited)).status).toBe(201);
    const third = await call('POST', '/webhooks', a.token, { url: urlOf('/l3'), eventTypes: ['*'] }, limited);
    expect(third.status).toBe(409);
    expect((await json(third)).code).toBe('too_many_webhooks');
  });

  it('refuses a service token with 403 and no token with 401', async () => {
    expect((await call('GET', '/webhooks', await serviceTokenFor('job-processor'))).status).toBe(403);
    expect((await call('GET', '/webhooks', undefined)).status).toBe(401);
  });

  it('changes url, event types and description with PATCH and re-validates the URL', async () => {
    const a = await newUser();
    const { id } = await register(a.token, ok, ['job.completed']);
    const newUrl = urlOf(newPath());
    const res = await call('PATCH', `/webhooks/${id}`, a.token, { url: newUrl, eventTypes: ['*', 'job.failed'], description: null });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ id, url: newUrl, eventTypes: ['*'], description: null });
    expect((await call('PATCH', `/webhooks/${id}`, a.token, { url: 'https://hooks.example.org/' })).status).toBe(422);
    expect((await call('PATCH', `/webhooks/${id}`, a.token, {})).status).toBe(422);
    expect((await endpointRow(id))!.url).toBe(newUrl);
  });

  it('deletes an endpoint with 204 together with its deliveries', async () => {
    const a = await newUser();
    const { id } = await register(a.token, ok);
    await jobEvent(a.id);
    expect(await deliveriesOf(id)).toHaveLength(1);
    expect((await call('DELETE', `/webhooks/${id}`, a.token)).status).toBe(204);
    expect(await endpointRow(id)).toBeUndefined();
    expect(await deliveriesOf(id)).toHaveLength(0);
    expect((await call('DELETE', `/webhooks/${id}`, a.token)).status).toBe(404);
  });

  it("keeps user A's endpoints invisible and untouchable for user B (404)", async () => {
    const a = await newUser();
    const b = await newUser();
    const { id } = await register(a.token, ok);
    const bList = await json(await call('GET', '/webhooks', b.token));
    expect(bList.items).toEqual([]);
    expect((await call('PATCH', `/webhooks/${id}`, b.token, { active: false, url: urlOf('/stolen') })).status).toBe(404);
    expect((await call('DELETE', `/webhooks/${id}`, b.token)).status).toBe(404);
    expect((await call('POST', `/webhooks/${id}/test`, b.token)).status).toBe(404);
    expect((await call('GET', `/webhooks/${id}/deliveries`, b.token)).status).toBe(404);
    const row = await endpointRow(id);
    expect(row).toMatchObject({ active: true, userId: a.id });
    expect(row!.url).not.toContain('/stolen');
    expect(await deliveriesOf(id)).toHaveLength(0);
  });

  it('answers a malformed id or cursor with 400', async () => {
    const a = await newUser();
    const { id } = await register(a.token, ok);
    expect((await call('GET', '/webhooks/not-a-uuid/deliveries', a.token)).status).toBe(400);
    expect((await call('GET', `/webhooks/${id}/deliveries?cursor=bogus`, a.token)).status).toBe(400);
  });
});

describe('webhook delivery', () => {
  it('delivers a fanned-out event signed so the receiver verifies it, with the Standard Webhooks body and headers', async () => {
    const a = await newUser();
    const { id, path } = await register(a.token, ok, ['job.completed']);
    const { event, result } = await jobEvent(a.id);
    expect(result.webhookDeliveries).toBe(1);

    const round = await sender().runOnce();
    expect(round).toMatchObject({ succeeded: 1, failed: 0 });
    const [got] = callsTo(path);
    expect(got!.verified).toBe(true);
    expect(got!.headers.get('content-type')).toBe('application/json');
    expect(got!.headers.get('user-agent')).toContain('federated-imputation');
    expect(Number(got!.headers.get('webhook-timestamp'))).toBeCloseTo(now() / 1000, -1);
    expect(got!.body.startsWith('{"type":"job.completed","timestamp":')).toBe(true);
    expect(JSON.parse(got!.body)).toEqual({ type: 'job.completed', timestamp: event.occurredAt, data: { ...event.data, eventId: event.id, source: 'job-processor' } });

    const [delivery] = await deliveriesOf(id);
    expect(got!.headers.get('webhook-id')).toBe(delivery!.id);
    expect(delivery).toMatchObject({ state: 'succeeded', attempts: 1, responseStatus: 200, lastError: null });
    expect(delivery!.deliveredAt).not.toBeNull();

    // What a receiver must refuse: the same headers over a changed body.
    const tampered = got!.body.replace('chr20', 'chr21');
    expect(verifyWebhook(hooks.get(path)!.secret!, got!.headers, tampered, { now: now() })).toBe(false);
  });

  it('sends nothing for event types the endpoint did not subscribe to', async () => {
    const a = await newUser();
    const { id } = await register(a.token, ok, ['job.failed']);
    const { result } = await jobEvent(a.id, 'job.completed');
    expect(result.webhookDeliveries).toBe(0);
    expect(await deliveriesOf(id)).toHaveLength(0);
  });

  it('retries a 500 after a backoff, then succeeds with the same webhook-id, and the log shows both codes', async () => {
    const a = await newUser();
    const { id, path } = await register(a.token, (n) => (n === 0 ? fail() : ok()));
    await jobEvent(a.id);
    const s = sender();

    await s.runOnce();
    let [delivery] = await deliveriesOf(id);
    expect(delivery).toMatchObject({ state: 'pending', attempts: 1, responseStatus: 500 });
    expect(delivery!.lastError).toContain('HTTP 500');
    expect(delivery!.lastError).toContain('receiver is down');
    expect(delivery!.nextAttemptAt.getTime()).toBeGreaterThan(now());

    // Not due yet: the backoff holds it back.
    await s.runOnce();
    expect(callsTo(path)).toHaveLength(1);
    const log = await json(await call('GET', `/webhooks/${id}/deliveries`, a.token));
    expect(log.items[0]).toMatchObject({ id: delivery!.id, state: 'pending', attempts: 1, responseStatus: 500, deliveredAt: null });

    skew += 60_000;
    await s.runOnce();
    const calls = callsTo(path);
    expect(calls).toHaveLength(2);
    expect(calls.every((c) => c.verified)).toBe(true);
    expect(calls[1]!.headers.get('webhook-id')).toBe(calls[0]!.headers.get('webhook-id'));
    expect(calls[1]!.headers.get('webhook-timestamp')).not.toBe(calls[0]!.headers.get('webhook-timestamp'));
    [delivery] = await deliveriesOf(id);
    expect(delivery).toMatchObject({ state: 'succeeded', attempts: 2, responseStatus: 200, lastError: null });

    const after = await json(await call('GET', `/webhooks/${id}/deliveries`, a.token));
    expect(after.items[0]).toMatchObject({ id: delivery!.id, eventType: 'job.completed', state: 'succeeded', attempts: 2, responseStatus: 200, lastError: null });
    expect(typeof after.items[0].responseMs).toBe('number');
    expect(after.items[0].deliveredAt).not.toBeNull();
  });

  it('gives up on an always-failing receiver, disables the endpoint with a reason and calls it no more until re-activated', async () => {
    const a = await newUser();
    let healthy = false;
    const { id, path } = await register(a.token, () => (healthy ? ok() : fail()));
    const s = sender({ maxAttempts: 3, disableAfterFailures: 2 });
    await jobEvent(a.id);
    await jobEvent(a.id);

    await s.runOnce();
    skew += 3_600_000;
    await s.runOnce();
    skew += 3_600_000;
    // A third event arrives while the first two are on their last attempt.
    await jobEvent(a.id);
    await s.runOnce();
    expect(callsTo(path)).toHaveLength(7);

    const [first, second, third] = await deliveriesOf(id);
    expect(first).toMatchObject({ state: 'failed', attempts: 3, responseStatus: 500 });
    expect(second).toMatchObject({ state: 'failed', attempts: 3, responseStatus: 500 });
    expect(third).toMatchObject({ state: 'pending', attempts: 1 });
    const endpoint = await endpointRow(id);
    expect(endpoint).toMatchObject({ active: false, consecutiveFailures: 2 });
    expect(endpoint!.disabledAt).not.toBeNull();
    expect(endpoint!.disabledReason).toContain('2 consecutive failed deliveries');
    expect(endpoint!.disabledReason).toContain('HTTP 500');

    // Disabled: the pending delivery waits and nothing is sent however much time passes.
    skew += 24 * 3_600_000;
    expect(await s.runOnce()).toMatchObject({ claimed: 0 });
    expect(callsTo(path)).toHaveLength(7);
    expect((await jobEvent(a.id)).result.webhookDeliveries).toBe(0);
    const shown = await json(await call('GET', '/webhooks', a.token));
    expect(shown.items[0]).toMatchObject({ id, active: false, consecutiveFailures: 2 });
    expect(shown.items[0].disabledReason).toContain('consecutive failed deliveries');
    expect((await call('POST', `/webhooks/${id}/test`, a.token)).status).toBe(409);

    // The owner fixes the receiver and re-activates: the count starts over and the waiting delivery goes out.
    healthy = true;
    const res = await call('PATCH', `/webhooks/${id}`, a.token, { active: true });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ active: true, consecutiveFailures: 0, disabledAt: null, disabledReason: null });
    await s.runOnce();
    expect(callsTo(path)).toHaveLength(8);
    expect((await deliveriesOf(id))[2]).toMatchObject({ state: 'succeeded', attempts: 2, responseStatus: 200 });
  });

  it('counts a redirect as a failure and does not follow it', async () => {
    const a = await newUser();
    const target = newPath();
    hooks.set(target, { respond: ok });
    const { id } = await register(a.token, () => new Response(null, { status: 307, headers: { location: urlOf(target) } }));
    await jobEvent(a.id);
    await sender().runOnce();
    expect(callsTo(target)).toHaveLength(0);
    const [delivery] = await deliveriesOf(id);
    expect(delivery).toMatchObject({ state: 'pending', attempts: 1, responseStatus: 307 });
    expect(delivery!.lastError).toContain('redirects are not followed');
  });

  it('reads at most maxResponseBytes of an endless answer, then cancels it', async () => {
    const a = await newUser();
    const chunk = new Uint8Array(8 * 1024).fill(120);
    const { id, path } = await register(a.token, () => new Response(new ReadableStream({ pull: (ctl) => ctl.enqueue(chunk) }), { status: 200 }));
    await jobEvent(a.id);
    const reads: number[] = [];
    let cancelled = false;
    // Counts what the sender pulls out of the body (highWaterMark 0: nothing is read ahead for it).
    const countingFetch = (async (input: string | URL | Request, init?: RequestInit) => {
      const res = await fetch(input, init);
      const reader = res.body!.getReader();
      const counted = new ReadableStream<Uint8Array>(
        {
          async pull(ctl) {
            const { done, value } = await reader.read();
            if (done) return ctl.close();
            reads.push(value.byteLength);
            ctl.enqueue(value);
          },
          async cancel(reason) {
            cancelled = true;
            await reader.cancel(reason);
          },
        },
        { highWaterMark: 0 },
      );
      return new Response(counted, { status: res.status, headers: res.headers });
    }) as typeof fetch;
    const cap = 32 * 1024;

    await sender({ fetch: countingFetch, maxResponseBytes: cap, timeoutMs: 5_000 }).runOnce();
    const [delivery] = await deliveriesOf(id);
    // Reading the whole (endless) answer would have ended in the timeout instead.
    expect(delivery).toMatchObject({ state: 'succeeded', responseStatus: 200, lastError: null });
    expect(callsTo(path)).toHaveLength(1);
    expect(cancelled).toBe(true);
    // It stopped at the first read that reached the cap (one network read can be larger than the cap).
    const total = reads.reduce((sum, n) => sum + n, 0);
    expect(total).toBeGreaterThanOrEqual(cap);
    expect(total - reads.at(-1)!).toBeLessThan(cap);
  });

  it('keeps only a short excerpt of a large error answer', async () => {
    const a = await newUser();
    const { id } = await register(a.token, () => new Response('E'.repeat(200_000), { status: 503 }));
    await jobEvent(a.id);
    await sender().runOnce();
    const [delivery] = await deliveriesOf(id);
    expect(delivery).toMatchObject({ state: 'pending', responseStatus: 503 });
    expect(delivery!.lastError!.startsWith('HTTP 503: EEE')).toBe(true);
    expect(delivery!.lastError!.length).toBeLessThanOrEqual(500);
  });

  it('times out a receiver that never answers and retries it later', async () => {
    const a = await newUser();
    const { id, path } = await register(a.token, () => new Promise<Response>(() => {}));
    await jobEvent(a.id);
    const round = await sender({ timeoutMs: 200 }).runOnce();
    expect(round).toMatchObject({ succeeded: 0, failed: 1 });
    expect(callsTo(path)).toHaveLength(1);
    const [delivery] = await deliveriesOf(id);
    expect(delivery).toMatchObject({ state: 'pending', attempts: 1, responseStatus: null, lastError: 'No answer within 200 ms.' });
    expect(delivery!.nextAttemptAt.getTime()).toBeGreaterThan(now());
  });

  it('checks the target again at delivery time: a host that now resolves to a private address is not called', async () => {
    const a = await newUser();
    let answer = ['93.184.216.34'];
    const lookup = async () => answer;
    const strict = buildApp({ outbound: outboundPolicy(true), lookup });
    const res = await call('POST', '/webhooks', a.token, { url: 'https://hooks.example.test/ci', eventTypes: ['*'] }, strict);
    expect(res.status).toBe(201);
    const { id } = await json(res);
    await jobEvent(a.id);

    answer = ['169.254.169.254'];
    const fetched: string[] = [];
    const recordingFetch = (async (input: string | URL | Request) => {
      fetched.push(String(input));
      return new Response('unexpected');
    }) as typeof fetch;
    await sender({ outbound: outboundPolicy(true), lookup, fetch: recordingFetch }).runOnce();
    expect(fetched).toEqual([]);
    const [delivery] = await deliveriesOf(id);
    expect(delivery).toMatchObject({ state: 'pending', attempts: 1, responseStatus: null });
    expect(delivery!.lastError).toContain('169.254.169.254');
  });

  it('delivers from the running loop as soon as it is woken, and stop() ends it', async () => {
    const a = await newUser();
    const { id, path } = await register(a.token, ok);
    // An interval far longer than the test: only wake() can have sent it.
    const s = sender({ intervalMs: 3_600_000 });
    s.start();
    // The loop's first round runs at start; let it pass before the event exists.
    await Bun.sleep(50);
    await jobEvent(a.id);
    s.wake();
    for (let i = 0; i < 200 && callsTo(path).length === 0; i++) await Bun.sleep(25);
    await s.stop();
    expect(callsTo(path)).toHaveLength(1);
    expect((await deliveriesOf(id))[0]).toMatchObject({ state: 'succeeded', attempts: 1 });
  });

  it('does not send while external calls are off, even for a URL stored earlier', async () => {
    const a = await newUser();
    const { id } = await register(a.token, ok);
    // As if registered when external calls were on.
    await testDb.database.db.update(webhooks).set({ url: 'https://hooks.example.org/ci' }).where(eq(webhooks.id, id));
    await jobEvent(a.id);
    await sender().runOnce();
    const [delivery] = await deliveriesOf(id);
    expect(delivery).toMatchObject({ state: 'pending', attempts: 1 });
    expect(delivery!.lastError).toContain('External calls are switched off');
  });
});

describe('POST /webhooks/{id}/test', () => {
  it('sends a signed webhook.test delivery at once and answers 201 with the delivery', async () => {
    const a = await newUser();
    const { id, path } = await register(a.token, ok);
    sender();
    const res = await call('POST', `/webhooks/${id}/test`, a.token);
    expect(res.status).toBe(201);
    const delivery = await json(res);
    expect(delivery).toMatchObject({ eventType: 'webhook.test', state: 'succeeded', attempts: 1, responseStatus: 200, lastError: null });
    const [got] = callsTo(path);
    expect(got!.verified).toBe(true);
    expect(got!.headers.get('webhook-id')).toBe(delivery.id);
    expect(JSON.parse(got!.body)).toMatchObject({ type: 'webhook.test', data: { webhookId: id } });
  });

  it('answers with the failed first attempt and leaves the delivery queued for retry', async () => {
    const a = await newUser();
    const { id, path } = await register(a.token, fail);
    const s = sender();
    const res = await call('POST', `/webhooks/${id}/test`, a.token);
    expect(res.status).toBe(201);
    const delivery = await json(res);
    expect(delivery).toMatchObject({ state: 'pending', attempts: 1, responseStatus: 500 });
    expect(delivery.lastError).toContain('HTTP 500');
    expect(delivery.nextAttemptAt).not.toBeNull();
    // Still the sender's to retry.
    hooks.set(path, { ...hooks.get(path)!, respond: ok });
    skew += 60_000;
    await s.runOnce();
    expect((await deliveriesOf(id))[0]).toMatchObject({ state: 'succeeded', attempts: 2 });
  });

  it('pages the delivery log newest first', async () => {
    const a = await newUser();
    const { id } = await register(a.token, ok);
    sender();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await json(await call('POST', `/webhooks/${id}/test`, a.token))).id);
    const first = await json(await call('GET', `/webhooks/${id}/deliveries?limit=2`, a.token));
    expect(first.items.map((d: { id: string }) => d.id)).toEqual([ids[2], ids[1]]);
    expect(first.nextCursor).not.toBeNull();
    const second = await json(await call('GET', `/webhooks/${id}/deliveries?limit=2&cursor=${first.nextCursor}`, a.token));
    expect(second.items.map((d: { id: string }) => d.id)).toEqual([ids[0]]);
    expect(second.nextCursor).toBeNull();
  });
});
