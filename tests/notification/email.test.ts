/**
 * Email on the real database and a real SMTP server run by the test: an event fans out into the send
 * queue, the sender delivers it over SMTP with the recipient's address, the rendered subject and
 * body; a server that is down, refusing or rejecting costs retries (with backoff) but loses nothing
 * until the attempts run out; racing senders never send a row twice; SMTP settings come from env.
 */
import { emailOutbox, notifications, preferences } from '@db/schema/notify.ts';
import { ConfigError, parseEnv } from '@shared/config.ts';
import type { Db } from '@shared/db.ts';
import { createLogger } from '@shared/log.ts';
import { outboxRow } from '@shared/outbox.ts';
import { z } from '@hono/zod-openapi';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'bun:test';
import { eq, inArray } from 'drizzle-orm';
import { createServer } from 'node:net';
import type { Recipient } from '../../services/notification/src/domain.ts';
import { createEmailSender, type EmailSender, type EmailSenderDeps } from '../../services/notification/src/email-sender.ts';
import { fanOut } from '../../services/notification/src/fan-out.ts';
import { EmailSendError, smtpEnv, smtpTransport, transportFromEnv, type EmailTransport } from '../../services/notification/src/smtp-transport.ts';
import { render } from '../../services/notification/src/templates.ts';
import type { UsersClient } from '../../services/notification/src/users-client.ts';
import { startMailServer, type TestMailServer } from '../support/mail-server.ts';
import { createTestDatabase, migrateAll, type TestDatabase } from '../support/test-database.ts';

const FROM_ADDRESS = 'noreply@imputation.example.org';
const FROM = `Imputation Platform <${FROM_ADDRESS}>`;
const PUBLIC_URL = 'https://imputation.example.org';
const BASE_BACKOFF_MS = 60_000;
/** With `random` fixed at 0.5, equal jitter makes the n-th retry wait exactly 3/4 of the capped delay. */
const firstRetryMs = (BASE_BACKOFF_MS / 2) * 1.5;

let testDb: TestDatabase;
let db: Db;
let mail: TestMailServer;
let clock: number;
let logLines: string[];
const started: EmailSender[] = [];

beforeAll(async () => {
  testDb = await createTestDatabase();
  await migrateAll(testDb.database);
  db = testDb.database.db;
  mail = await startMailServer();
}, 60_000);

afterAll(async () => {
  await mail.stop();
  await testDb.drop();
});

beforeEach(async () => {
  // The sender takes any due row, so rows left by other files or earlier tests would be sent here too.
  await db.delete(emailOutbox);
  mail.received.length = 0;
  mail.refuse = null;
  // A little ahead of the database clock, which stamps rows queued by fan-out.
  clock = Date.now() + 5_000;
  logLines = [];
});

afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.stop()));
});

function transportTo(port: number, extra: Partial<Parameters<typeof smtpTransport>[0]> = {}): EmailTransport {
  return smtpTransport({ host: '127.0.0.1', port, connectionTimeoutMs: 2_000, greetingTimeoutMs: 2_000, socketTimeoutMs: 5_000, ...extra });
}

function sender(overrides: Partial<EmailSenderDeps> = {}): EmailSender {
  return createEmailSender({
    db,
    transport: transportTo(mail.port),
    from: FROM,
    logger: createLogger({ level: 'debug', sink: (line) => logLines.push(line) }),
    now: () => clock,
    random: () => 0.5,
    baseBackoffMs: BASE_BACKOFF_MS,
    maxBackoffMs: 60 * 60_000,
    maxAttempts: 3,
    ...overrides,
  });
}

function usersWith(...people: Recipient[]): UsersClient {
  return {
    user: async (id) => people.find((p) => p.id === id) ?? null,
    admins: async () => [],
  };
}

function person(name: string): Recipient {
  const id = crypto.randomUUID();
  return { id, email: `${name.toLowerCase()}.${id.slice(0, 8)}@example.org`, displayName: name };
}

function jobCompleted(userId: string) {
  return outboxRow({ type: 'job.completed', source: 'job-processor', userId, data: { jobId: crypto.randomUUID(), name: 'chr20 phasing', state: 'completed' } }).payload;
}

/** Queues a row directly (no event), due one second before the test clock. */
async function queue(to: string, overrides: Partial<typeof emailOutbox.$inferInsert> = {}) {
  const [row] = await db
    .insert(emailOutbox)
    .values({
      id: Bun.randomUUIDv7(),
      userId: crypto.randomUUID(),
      toAddress: to,
      subject: `Hello ${to}`,
      text: `Plain text for ${to}`,
      html: `<p>HTML for ${to}</p>`,
      nextAttemptAt: new Date(clock - 1_000),
      ...overrides,
    })
    .returning();
  return row!;
}

async function rowById(id: string) {
  const [row] = await db.select().from(emailOutbox).where(eq(emailOutbox.id, id));
  return row;
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function until(condition: () => boolean | Promise<boolean>, what: string) {
  const deadline = Date.now() + 10_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

describe('email from an event', () => {
  it('delivers a job.completed email to the recipient with the rendered subject and body and marks it sent', async () => {
    const ada = person('Ada');
    const event = jobCompleted(ada.id);
    const fanned = await fanOut({ db, users: usersWith(ada), publicUrl: PUBLIC_URL }, event);
    expect(fanned.emails).toBe(1);
    const expected = render(event, ada, PUBLIC_URL);

    expect(await sender().runOnce()).toEqual({ sent: 1, failed: 0 });

    expect(mail.received).toHaveLength(1);
    const message = mail.received[0]!;
    expect(message.envelope).toEqual({ from: FROM_ADDRESS, to: [ada.email] });
    expect(message.headers.get('to')).toBe(ada.email);
    expect(message.headers.get('from')).toBe(FROM);
    expect(message.headers.get('subject')).toBe(expected.subject);
    expect(message.headers.get('subject')).toBe('[Imputation] Job “chr20 phasing” completed');
    expect(message.headers.get('auto-submitted')).toBe('auto-generated');
    expect(message.text).toBe(expected.text);
    expect(message.text).toContain('Hello Ada,');
    expect(message.text).toContain(`${PUBLIC_URL}/jobs/${event.data.jobId}`);
    expect(message.html).toContain('<h2>Job “chr20 phasing” completed</h2>');

    const [row] = await db.select().from(emailOutbox).where(eq(emailOutbox.eventId, event.id));
    expect(row!.sentAt).not.toBeNull();
    expect(row!.attempts).toBe(0);
    expect(row!.failedAt).toBeNull();
  });

  it('sends a row once: a second round finds nothing to send', async () => {
    const ada = person('Ada');
    await fanOut({ db, users: usersWith(ada), publicUrl: PUBLIC_URL }, jobCompleted(ada.id));
    const s = sender();
    expect(await s.runOnce()).toEqual({ sent: 1, failed: 0 });
    clock += 24 * 3_600_000;
    expect(await s.runOnce()).toEqual({ sent: 0, failed: 0 });
    expect(mail.received).toHaveLength(1);
  });

  it('queues no email when the user switched email off for the event type, but keeps the in-app notification', async () => {
    const ada = person('Ada');
    await db.insert(preferences).values({ userId: ada.id, eventType: 'job.completed', channel: 'email', enabled: false });
    const event = jobCompleted(ada.id);

    const fanned = await fanOut({ db, users: usersWith(ada), publicUrl: PUBLIC_URL }, event);

    expect(fanned.emails).toBe(0);
    expect(await db.select().from(emailOutbox).where(eq(emailOutbox.eventId, event.id))).toHaveLength(0);
    expect(await db.select().from(notifications).where(eq(notifications.eventId, event.id))).toHaveLength(1);
    expect(await sender().runOnce()).toEqual({ sent: 0, failed: 0 });
    expect(mail.received).toHaveLength(0);
  });

  it('queues no email for an event type that is off by default (job.created)', async () => {
    const ada = person('Ada');
    const event = outboxRow({ type: 'job.created', source: 'job-processor', userId: ada.id, data: { jobId: crypto.randomUUID(), name: 'x' } }).payload;
    expect((await fanOut({ db, users: usersWith(ada), publicUrl: PUBLIC_URL }, event)).emails).toBe(0);
    expect(await db.select().from(emailOutbox).where(eq(emailOutbox.eventId, event.id))).toHaveLength(0);
  });
});

describe('email retries', () => {
  it('keeps the email when the SMTP server is down, with attempts and the next attempt set, and delivers it once the server is back', async () => {
    const ada = person('Ada');
    const event = jobCompleted(ada.id);
    await fanOut({ db, users: usersWith(ada), publicUrl: PUBLIC_URL }, event);
    const s = sender();

    await mail.stop();
    try {
      expect(await s.runOnce()).toEqual({ sent: 0, failed: 1 });
    } finally {
      await mail.restart();
    }
    const [failed] = await db.select().from(emailOutbox).where(eq(emailOutbox.eventId, event.id));
    expect(failed!.attempts).toBe(1);
    expect(failed!.sentAt).toBeNull();
    expect(failed!.failedAt).toBeNull();
    expect(failed!.nextAttemptAt.getTime()).toBe(clock + firstRetryMs);
    expect(failed!.lastError).toMatch(/^(ESOCKET|ECONNECTION)/);

    const warning = logLines.map((l) => JSON.parse(l)).find((l) => l.msg === 'email send failed');
    expect(warning).toMatchObject({ level: 'warn', emailId: failed!.id, attempts: 1, scope: 'server', retryInMs: firstRetryMs });
    expect(logLines.join('\n')).not.toContain(ada.email);

    // The server is back, but the retry is not due yet.
    expect(await s.runOnce()).toEqual({ sent: 0, failed: 0 });
    expect(mail.received).toHaveLength(0);

    clock += firstRetryMs;
    expect(await s.runOnce()).toEqual({ sent: 1, failed: 0 });
    expect(mail.received).toHaveLength(1);
    expect(mail.received[0]!.envelope.to).toEqual([ada.email]);
    expect(mail.received[0]!.headers.get('subject')).toBe(render(event, ada, PUBLIC_URL).subject);
    const sent = await rowById(failed!.id);
    expect(sent!.sentAt).not.toBeNull();
    expect(sent!.attempts).toBe(1);
  });

  it('lets the rest of the batch wait without spending attempts when the server cannot be reached', async () => {
    const rows = [await queue('one@example.org'), await queue('two@example.org'), await queue('three@example.org')];
    const s = sender({ transport: transportTo(await closedPort()) });

    expect(await s.runOnce()).toEqual({ sent: 0, failed: 1 });

    const after = await Promise.all(rows.map((r) => rowById(r.id)));
    expect(after.map((r) => r!.attempts)).toEqual([1, 0, 0]);
    expect(after.map((r) => r!.nextAttemptAt.getTime())).toEqual([clock + firstRetryMs, clock + firstRetryMs, clock + firstRetryMs]);
    expect(after.every((r) => r!.sentAt === null && r!.failedAt === null)).toBe(true);

    clock += firstRetryMs;
    expect(await sender().runOnce()).toEqual({ sent: 3, failed: 0 });
    expect(mail.received.map((m) => m.envelope.to[0]).sort()).toEqual(['one@example.org', 'three@example.org', 'two@example.org']);
  });

  it('backs off exponentially on a temporary refusal and gives up after maxAttempts with failed_at and an error log line', async () => {
    const row = await queue('busy@example.org');
    mail.refuse = { stage: 'data', code: 451 };
    const s = sender({ maxAttempts: 3 });

    expect(await s.runOnce()).toEqual({ sent: 0, failed: 1 });
    let current = await rowById(row.id);
    expect(current!.attempts).toBe(1);
    expect(current!.nextAttemptAt.getTime()).toBe(clock + firstRetryMs);
    expect(current!.lastError).toContain('451');

    clock += firstRetryMs;
    expect(await s.runOnce()).toEqual({ sent: 0, failed: 1 });
    current = await rowById(row.id);
    expect(current!.attempts).toBe(2);
    // The second retry waits twice as long: 3/4 of 2 × base.
    expect(current!.nextAttemptAt.getTime()).toBe(clock + 2 * firstRetryMs);
    expect(current!.failedAt).toBeNull();

    clock += 2 * firstRetryMs;
    expect(await s.runOnce()).toEqual({ sent: 0, failed: 1 });
    current = await rowById(row.id);
    expect(current!.attempts).toBe(3);
    expect(current!.failedAt).not.toBeNull();
    expect(current!.sentAt).toBeNull();

    const gaveUp = logLines.map((l) => JSON.parse(l)).find((l) => l.msg === 'email given up');
    expect(gaveUp).toMatchObject({ level: 'error', emailId: row.id, attempts: 3, responseCode: 451 });
    expect(logLines.join('\n')).not.toContain('busy@example.org');

    // Given up means given up: the server accepting again changes nothing.
    mail.refuse = null;
    clock += 24 * 3_600_000;
    expect(await s.runOnce()).toEqual({ sent: 0, failed: 0 });
    expect(mail.received).toHaveLength(0);
  });

  it('gives up at once on a permanent rejection of the recipient and still sends the rest of the batch', async () => {
    const bounced = await queue('nobody@example.org');
    const fine = await queue('someone@example.org');
    mail.refuse = { stage: 'rcpt', code: 550, recipients: ['nobody@example.org'] };

    expect(await sender({ maxAttempts: 8 }).runOnce()).toEqual({ sent: 1, failed: 1 });

    const b = await rowById(bounced.id);
    expect(b!.attempts).toBe(1);
    expect(b!.failedAt).not.toBeNull();
    expect(b!.lastError).toMatch(/^EENVELOPE 550/);
    expect((await rowById(fine.id))!.sentAt).not.toBeNull();
    expect(mail.received.map((m) => m.envelope.to)).toEqual([['someone@example.org']]);
    expect(logLines.map((l) => JSON.parse(l)).find((l) => l.msg === 'email given up')).toMatchObject({ emailId: bounced.id, permanent: true });
  });

  it('never sends a row twice when two senders race over the same queue', async () => {
    const addresses = Array.from({ length: 12 }, (_, i) => `racer${i}@example.org`);
    for (const a of addresses) await queue(a);
    const a = sender({ batchSize: 4 });
    const b = sender({ batchSize: 4 });

    for (let round = 0; round < 10; round++) {
      const results = await Promise.all([a.runOnce(), b.runOnce(), a.runOnce(), b.runOnce()]);
      if (results.every((r) => r.sent === 0)) break;
    }

    const delivered = mail.received.map((m) => m.envelope.to[0]!).sort();
    expect(delivered).toEqual([...addresses].sort());
    const rows = await db.select().from(emailOutbox).where(inArray(emailOutbox.toAddress, addresses));
    expect(rows.every((r) => r.sentAt !== null && r.attempts === 0)).toBe(true);
  });

  it('prunes sent rows past a week and given-up rows past a month, keeping the rest', async () => {
    const day = 86_400_000;
    const oldSent = await queue('old-sent@example.org', { sentAt: new Date(clock - 8 * day) });
    const recentSent = await queue('recent-sent@example.org', { sentAt: new Date(clock - day) });
    const oldFailed = await queue('old-failed@example.org', { failedAt: new Date(clock - 31 * day) });
    const recentFailed = await queue('recent-failed@example.org', { failedAt: new Date(clock - 8 * day) });
    const waiting = await queue('waiting@example.org', { nextAttemptAt: new Date(clock + day), createdAt: new Date(clock - 60 * day) });

    expect(await sender().runOnce()).toEqual({ sent: 0, failed: 0 });

    const left = (await db.select({ id: emailOutbox.id }).from(emailOutbox)).map((r) => r.id).sort();
    expect(left).toEqual([recentSent.id, recentFailed.id, waiting.id].sort());
    expect(left).not.toContain(oldSent.id);
    expect(left).not.toContain(oldFailed.id);
  });
});

describe('email sender loop', () => {
  it('sends queued mail once started and again after wake()', async () => {
    await queue('first@example.org');
    const s = sender({ intervalMs: 3_600_000 });
    started.push(s);
    s.start();
    await until(() => mail.received.length === 1, 'the first message');

    await queue('second@example.org');
    s.wake();
    await until(() => mail.received.length === 2, 'the message after wake()');
    expect(mail.received.map((m) => m.envelope.to[0])).toEqual(['first@example.org', 'second@example.org']);
  });

  it('hands the untried rows of a batch back at once when stopped mid-batch', async () => {
    const rows = [await queue('a@example.org'), await queue('b@example.org'), await queue('c@example.org')];
    const real = transportTo(mail.port);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let sending!: () => void;
    const firstSendBegun = new Promise<void>((resolve) => (sending = resolve));
    const gated: EmailTransport = {
      async send(message) {
        sending();
        await gate;
        return real.send(message);
      },
    };
    const s = sender({ transport: gated });

    const round = s.runOnce();
    await firstSendBegun;
    const stopped = s.stop();
    release();
    expect(await round).toEqual({ sent: 1, failed: 0 });
    await stopped;

    const after = await Promise.all(rows.map((r) => rowById(r.id)));
    expect(after[0]!.sentAt).not.toBeNull();
    for (const r of after.slice(1)) {
      expect(r!.sentAt).toBeNull();
      expect(r!.attempts).toBe(0);
      expect(r!.nextAttemptAt.getTime()).toBeLessThanOrEqual(clock);
    }
    expect(await sender().runOnce()).toEqual({ sent: 2, failed: 0 });
  });
});

describe('SMTP configuration', () => {
  const env = (vars: Record<string, string>) => parseEnv(z.object(smtpEnv), vars);

  it('configures no transport without SMTP_URL or SMTP_HOST', () => {
    expect(transportFromEnv(env({}))).toBeNull();
    expect(transportFromEnv(env({ SMTP_FROM: FROM, SMTP_USER: 'x', SMTP_PASSWORD: 'y' }))).toBeNull();
  });

  describe('with a server that requires a login', () => {
    let authed: TestMailServer;
    beforeAll(async () => {
      authed = await startMailServer({ auth: { user: 'mailer', password: 'p@ss:w/rd' } });
    });
    afterAll(async () => {
      await authed.stop();
    });

    it('logs in with the credentials of an smtp:// SMTP_URL (percent-encoded) and sends from SMTP_FROM', async () => {
      const setup = transportFromEnv(env({ SMTP_URL: `smtp://mailer:${encodeURIComponent('p@ss:w/rd')}@127.0.0.1:${authed.port}`, SMTP_FROM: FROM }));
      expect(setup!.from).toBe(FROM);
      await setup!.transport.send({ to: 'grace@example.org', from: setup!.from, subject: 'Ping', text: 'pong', html: '<p>pong</p>' });
      const message = authed.received.at(-1)!;
      expect(message.user).toBe('mailer');
      expect(message.envelope).toEqual({ from: FROM_ADDRESS, to: ['grace@example.org'] });
      expect(message.text).toBe('pong');
    });

    it('logs in with SMTP_HOST, SMTP_PORT, SMTP_USER and SMTP_PASSWORD', async () => {
      const setup = transportFromEnv(env({ SMTP_HOST: '127.0.0.1', SMTP_PORT: String(authed.port), SMTP_USER: 'mailer', SMTP_PASSWORD: 'p@ss:w/rd', SMTP_FROM: FROM_ADDRESS }));
      await setup!.transport.send({ to: 'grace@example.org', from: setup!.from, subject: 'Ping 2', text: 'pong', html: '<p>pong</p>' });
      expect(authed.received.at(-1)!.headers.get('subject')).toBe('Ping 2');
      expect(authed.received.at(-1)!.headers.get('from')).toBe(FROM_ADDRESS);
    });

    it('fails a send with a wrong password as a server problem, which the queue retries', async () => {
      const setup = transportFromEnv(env({ SMTP_HOST: '127.0.0.1', SMTP_PORT: String(authed.port), SMTP_USER: 'mailer', SMTP_PASSWORD: 'wrong', SMTP_FROM: FROM }));
      const row = await queue('grace@example.org');
      expect(await sender({ transport: setup!.transport }).runOnce()).toEqual({ sent: 0, failed: 1 });
      const after = await rowById(row.id);
      expect(after!.lastError).toMatch(/^EAUTH 535/);
      expect(after!.failedAt).toBeNull();
      expect(after!.attempts).toBe(1);
    });
  });

  it('refuses to send without TLS when SMTP_STARTTLS requires it and the server offers none', async () => {
    const setup = transportFromEnv(env({ SMTP_HOST: '127.0.0.1', SMTP_PORT: String(mail.port), SMTP_STARTTLS: 'true', SMTP_FROM: FROM }));
    const error = await setup!.transport.send({ to: 'grace@example.org', from: FROM, subject: 'x', text: 'x', html: 'x' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EmailSendError);
    expect((error as EmailSendError).scope).toBe('server');
    expect(mail.received).toHaveLength(0);
  });

  it('stops startup with one line per contradictory setting', () => {
    const problems = (vars: Record<string, string>) => {
      try {
        transportFromEnv(env(vars));
        return [];
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as ConfigError).lines.map((l) => l.split(':')[0]);
      }
    };
    expect(problems({ SMTP_URL: 'smtp://mail.example.org', SMTP_HOST: 'mail.example.org', SMTP_FROM: FROM })).toEqual(['SMTP_URL']);
    expect(problems({ SMTP_HOST: 'mail.example.org' })).toEqual(['SMTP_FROM']);
    expect(problems({ SMTP_HOST: 'mail.example.org', SMTP_FROM: FROM, SMTP_USER: 'u' })).toEqual(['SMTP_PASSWORD']);
    expect(problems({ SMTP_HOST: 'mail.example.org', SMTP_FROM: FROM, SMTP_SECURE: 'true', SMTP_STARTTLS: 'true' })).toEqual(['SMTP_STARTTLS']);
    expect(problems({ SMTP_URL: 'smtps://u:p@mail.example.org', SMTP_FROM: FROM, SMTP_USER: 'u', SMTP_PASSWORD: 'p' })).toEqual(['SMTP_USER']);
    expect(problems({ SMTP_URL: 'smtps://mail.example.org:465', SMTP_FROM: FROM })).toEqual([]);
  });

  it('rejects a non-SMTP URL and a malformed SMTP_FROM when parsing env', () => {
    expect(() => env({ SMTP_URL: 'http://mail.example.org' })).toThrow(/SMTP_URL/);
    expect(() => env({ SMTP_HOST: 'mail.example.org', SMTP_FROM: 'not an address' })).toThrow(/SMTP_FROM/);
    expect(() => env({ SMTP_PORT: '70000' })).toThrow(/SMTP_PORT/);
  });
});
