/**
 * The outbox relay on a real database (the registry's outbox table): ordered at-least-once delivery,
 * backoff, leases between concurrent relays, scheduling, pruning and shutdown; and the HTTP sink
 * against a real server.
 */
import { createServiceCredential } from '@shared/auth.ts';
import { httpEventSink } from '@shared/event-sink.ts';
import { createHttpClient, UpstreamError } from '@shared/http-client.ts';
import type { Db } from '@shared/db.ts';
import { createLogger } from '@shared/log.ts';
import { outboxRow } from '@shared/outbox.ts';
import { createOutboxRelay, type OutboxRelayDeps } from '@shared/outbox-relay.ts';
import type { EventEnvelope } from '@shared/schemas/events.ts';
import { outbox } from '@db/schema/registry.ts';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'bun:test';
import { asc, eq, inArray } from 'drizzle-orm';
import { createTestDatabase, migrateAll, type TestDatabase } from '../support/test-database.ts';

const DAY = 86_400_000;
let testDb: TestDatabase;
const db = () => testDb.database.db;
/** The relays' clock: a fixed instant a little ahead of the database's, moved by the tests. */
let clock: number;

beforeAll(async () => {
  testDb = await createTestDatabase();
  await migrateAll(testDb.database);
  await db().delete(outbox);
}, 60_000);

afterAll(async () => {
  await testDb.drop();
});

beforeEach(async () => {
  await db().delete(outbox);
  clock = Date.now() + 1_000;
});

/** Inserts `n` events created 1 ms apart (oldest first), due at `dueAt`; returns their ids in order. */
async function insertEvents(n: number, options: { dueAt?: number; data?: Record<string, unknown> } = {}): Promise<string[]> {
  const ids: string[] = [];
  // Inserted newest first so only created_at, not insertion order, can explain delivery order.
  for (let i = n - 1; i >= 0; i--) {
    const row = outboxRow({ type: 'service.health_changed', source: 'service-registry', data: { index: i, ...options.data } });
    await db()
      .insert(outbox)
      .values({ ...row, createdAt: new Date(clock - 10_000 + i), nextAttemptAt: new Date(options.dueAt ?? clock - 5_000) });
    ids[i] = row.id;
  }
  return ids;
}

async function rowsById(ids: string[]) {
  const rows = await db().select().from(outbox).where(inArray(outbox.id, ids));
  return new Map(rows.map((r) => [r.id, r]));
}

function relay(deps: Partial<OutboxRelayDeps> & Pick<OutboxRelayDeps, 'deliver'>, lines: string[] = []) {
  return createOutboxRelay({
    db: db(),
    table: outbox,
    logger: createLogger({ level: 'debug', sink: (line) => lines.push(line) }),
    now: () => clock,
    ...deps,
  });
}

/** The database with a callback after each finished transaction (the relay's claim). */
function withTransactionHook(target: Db, after: () => void): Db {
  return new Proxy(target, {
    get(obj, prop, receiver) {
      const value = Reflect.get(obj, prop, receiver);
      if (prop !== 'transaction') return value;
      return async (...args: unknown[]) => {
        const result = await (value as (...a: unknown[]) => Promise<unknown>).apply(receiver, args);
        after();
        return result;
      };
    },
  });
}

/** A promise with its resolver, to hold a delivery open while the test looks around. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

describe('outbox relay delivery', () => {
  it('delivers pending rows once, oldest first, and marks them delivered', async () => {
    const ids = await insertEvents(5);
    const seen: EventEnvelope[] = [];
    const r = relay({ deliver: async (e) => void seen.push(e) });

    expect(await r.runOnce()).toEqual({ delivered: 5, failed: 0 });
    expect(seen.map((e) => e.id)).toEqual(ids);
    expect(seen[0]).toMatchObject({ id: ids[0], type: 'service.health_changed', source: 'service-registry', userId: null, data: { index: 0 } });
    const rows = await rowsById(ids);
    for (const id of ids) {
      expect(rows.get(id)!.deliveredAt?.getTime()).toBe(clock);
      expect(rows.get(id)!.attempts).toBe(0);
    }

    expect(await r.runOnce()).toEqual({ delivered: 0, failed: 0 });
    expect(seen).toHaveLength(5);
  });

  it('claims at most batchSize rows per round, oldest first', async () => {
    const ids = await insertEvents(5);
    const seen: string[] = [];
    const r = relay({ batchSize: 2, deliver: async (e) => void seen.push(e.id) });
    expect(await r.runOnce()).toEqual({ delivered: 2, failed: 0 });
    expect(seen).toEqual(ids.slice(0, 2));
    await r.runOnce();
    await r.runOnce();
    expect(seen).toEqual(ids);
  });

  it('backs a failed delivery off with attempts and a later next_attempt_at, logs it without the payload, and delivers it in a later round', async () => {
    const ids = await insertEvents(3, { data: { secretNote: 'do-not-log-me' } });
    const failing = ids[1]!;
    let broken = true;
    const seen: string[] = [];
    const lines: string[] = [];
    const r = relay(
      {
        baseBackoffMs: 4_000,
        deliver: async (e) => {
          if (broken && e.id === failing) throw new Error('notification answered 503');
          seen.push(e.id);
        },
      },
      lines,
    );

    expect(await r.runOnce()).toEqual({ delivered: 2, failed: 1 });
    const row = (await rowsById([failing])).get(failing)!;
    expect(row.deliveredAt).toBeNull();
    expect(row.attempts).toBe(1);
    const retryAt = row.nextAttemptAt.getTime();
    expect(retryAt).toBeGreaterThanOrEqual(clock + 2_000);
    expect(retryAt).toBeLessThanOrEqual(clock + 4_000);

    const warning = lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'outbox delivery failed');
    expect(warning).toMatchObject({ level: 'warn', eventId: failing, attempts: 1 });
    expect(warning.error).toContain('notification answered 503');
    expect(lines.join('\n')).not.toContain('do-not-log-me');

    // Still backing off: not retried before its time, even though the consumer is back.
    broken = false;
    expect(await r.runOnce()).toEqual({ delivered: 0, failed: 0 });
    clock = retryAt;
    expect(await r.runOnce()).toEqual({ delivered: 1, failed: 0 });
    expect(seen).toEqual([ids[0]!, ids[2]!, failing]);
    const after = (await rowsById([failing])).get(failing)!;
    expect(after.deliveredAt?.getTime()).toBe(retryAt);
    expect(after.attempts).toBe(1);
  });

  it('doubles the backoff per attempt and caps it at maxBackoffMs', async () => {
    const [id] = await insertEvents(1);
    const r = relay({
      baseBackoffMs: 1_000,
      maxBackoffMs: 60_000,
      deliver: async () => {
        throw new Error('down');
      },
    });
    const delays: number[] = [];
    for (let i = 0; i < 10; i++) {
      expect(await r.runOnce()).toEqual({ delivered: 0, failed: 1 });
      const row = (await rowsById([id!])).get(id!)!;
      delays.push(row.nextAttemptAt.getTime() - clock);
      clock = row.nextAttemptAt.getTime();
    }
    const row = (await rowsById([id!])).get(id!)!;
    expect(row.attempts).toBe(10);
    // Attempt n waits between half and all of min(cap, base * 2^(n-1)).
    delays.forEach((delay, i) => {
      const capped = Math.min(60_000, 1_000 * 2 ** i);
      expect(delay).toBeGreaterThanOrEqual(capped / 2);
      expect(delay).toBeLessThanOrEqual(capped);
    });
  });

  it('does not deliver a row before its next_attempt_at', async () => {
    const dueAt = clock + 3_600_000;
    const [id] = await insertEvents(1, { dueAt });
    const seen: string[] = [];
    const r = relay({ deliver: async (e) => void seen.push(e.id) });
    expect(await r.runOnce()).toEqual({ delivered: 0, failed: 0 });
    clock = dueAt - 1;
    expect(await r.runOnce()).toEqual({ delivered: 0, failed: 0 });
    clock = dueAt;
    expect(await r.runOnce()).toEqual({ delivered: 1, failed: 0 });
    expect(seen).toEqual([id!]);
  });

  it('stops delivering a batch whose lease ran out and leaves the rest claimable', async () => {
    const ids = await insertEvents(3);
    const seen: string[] = [];
    const lines: string[] = [];
    const r = relay(
      {
        leaseMs: 10_000,
        deliver: async (e) => {
          seen.push(e.id);
          // The first delivery is so slow that the lease on the rest of the batch runs out.
          clock += 10_000;
        },
      },
      lines,
    );
    expect(await r.runOnce()).toEqual({ delivered: 1, failed: 0 });
    const rows = await rowsById(ids);
    expect(rows.get(ids[1]!)!.deliveredAt).toBeNull();
    expect(rows.get(ids[2]!)!.deliveredAt).toBeNull();
    expect(lines.some((l) => JSON.parse(l).msg === 'outbox lease ran out before delivery')).toBe(true);
    // Nothing was lost: the next round picks the rest up.
    expect(await r.runOnce()).toEqual({ delivered: 1, failed: 0 });
    expect(await r.runOnce()).toEqual({ delivered: 1, failed: 0 });
    expect(seen).toEqual(ids);
  });
});

describe('outbox relays sharing one table', () => {
  it('does not claim rows another relay holds under lease', async () => {
    const ids = await insertEvents(6);
    const held = gate();
    const entered = gate();
    const seenA: string[] = [];
    const seenB: string[] = [];
    const a = relay({
      batchSize: 3,
      deliver: async (e) => {
        seenA.push(e.id);
        entered.open();
        await held.opened;
      },
    });
    const b = relay({ batchSize: 3, deliver: async (e) => void seenB.push(e.id) });

    const roundA = a.runOnce();
    await entered.opened;
    // A has committed its claim and is mid-delivery: B must take only the other rows.
    expect(await b.runOnce()).toEqual({ delivered: 3, failed: 0 });
    expect(await b.runOnce()).toEqual({ delivered: 0, failed: 0 });
    held.open();
    expect(await roundA).toEqual({ delivered: 3, failed: 0 });

    expect(seenA).toEqual(ids.slice(0, 3));
    expect(seenB).toEqual(ids.slice(3));
  });

  it('delivers each event exactly once when two relays drain the table concurrently', async () => {
    const ids = await insertEvents(40);
    const seen: string[] = [];
    const deliver = async (e: EventEnvelope) => {
      await Promise.resolve();
      seen.push(e.id);
    };
    const drain = async (r: ReturnType<typeof relay>) => {
      for (;;) {
        const round = await r.runOnce();
        if (round.delivered + round.failed === 0) return;
      }
    };
    await Promise.all([drain(relay({ batchSize: 4, deliver })), drain(relay({ batchSize: 4, deliver }))]);
    expect(seen).toHaveLength(40);
    expect(new Set(seen)).toEqual(new Set(ids));
    const rows = await rowsById(ids);
    expect([...rows.values()].every((r) => r.deliveredAt !== null)).toBe(true);
  });
});

describe('outbox pruning', () => {
  it('deletes delivered rows older than 7 days and keeps newer and undelivered ones', async () => {
    const [old, recent, pending] = await insertEvents(3);
    await db().update(outbox).set({ deliveredAt: new Date(clock - 7 * DAY - 1) }).where(eq(outbox.id, old!));
    await db().update(outbox).set({ deliveredAt: new Date(clock - 6 * DAY) }).where(eq(outbox.id, recent!));
    await db().update(outbox).set({ nextAttemptAt: new Date(clock + DAY), createdAt: new Date(clock - 30 * DAY) }).where(eq(outbox.id, pending!));

    const r = relay({ deliver: async () => {} });
    expect(await r.runOnce()).toEqual({ delivered: 0, failed: 0 });
    const left = await db().select({ id: outbox.id }).from(outbox).orderBy(asc(outbox.createdAt));
    expect(left.map((row) => row.id).sort()).toEqual([recent!, pending!].sort());
  });
});

describe('outbox relay loop', () => {
  it('delivers on start, and stop() waits for the in-flight round to finish', async () => {
    const [id] = await insertEvents(1);
    const held = gate();
    const entered = gate();
    const r = relay({
      intervalMs: 3_600_000,
      deliver: async () => {
        entered.open();
        await held.opened;
      },
    });
    r.start();
    await entered.opened;
    let stopped = false;
    const stopping = r.stop().then(() => (stopped = true));
    // Ample time for a stop() that does not wait to resolve; the delivery is still held open.
    await Bun.sleep(20);
    expect(stopped).toBe(false);
    held.open();
    await stopping;
    expect(stopped).toBe(true);
    expect((await rowsById([id!])).get(id!)!.deliveredAt?.getTime()).toBe(clock);
  });

  it('wake() while idle runs a round right away instead of after the interval', async () => {
    const idle = gate();
    const delivered = gate();
    const seen: string[] = [];
    const r = relay({
      intervalMs: 3_600_000,
      // Reports when the start-up round has claimed (nothing), so the event below can only go out by wake().
      db: withTransactionHook(db(), () => idle.open()),
      deliver: async (e) => {
        seen.push(e.id);
        delivered.open();
      },
    });
    r.start();
    await idle.opened;
    // Lets the start-up round finish (prune, reschedule) so the relay is idle, waiting on its interval.
    await Bun.sleep(50);
    const [id] = await insertEvents(1);
    r.wake();
    await delivered.opened;
    await r.stop();
    expect(seen).toEqual([id!]);
    expect((await rowsById([id!])).get(id!)!.deliveredAt).not.toBeNull();
  });

  it('wake() during a round runs another round right after it', async () => {
    const [first] = await insertEvents(1);
    const held = gate();
    const entered = gate();
    const second = gate();
    const seen: string[] = [];
    const r = relay({
      intervalMs: 3_600_000,
      deliver: async (e) => {
        seen.push(e.id);
        if (e.id === first) {
          entered.open();
          await held.opened;
        } else second.open();
      },
    });
    r.start();
    await entered.opened;
    // Committed after the in-flight round made its claim, so only a follow-up round can send it.
    const later = outboxRow({ type: 'service.health_changed', source: 'service-registry', data: {} });
    await db().insert(outbox).values({ ...later, nextAttemptAt: new Date(clock - 1) });
    r.wake();
    held.open();
    await second.opened;
    await r.stop();
    expect(seen).toEqual([first!, later.id]);
  });

  it('keeps looping after a round fails and logs the failure', async () => {
    const lines: string[] = [];
    const delivered = gate();
    let calls = 0;
    const r = relay(
      {
        intervalMs: 1,
        deliver: async () => delivered.open(),
        // The first claim fails as if the database connection dropped.
        db: new Proxy(db(), {
          get(target, prop, receiver) {
            if (prop === 'transaction' && calls++ === 0) return () => Promise.reject(new Error('database went away'));
            return Reflect.get(target, prop, receiver);
          },
        }),
      },
      lines,
    );
    await insertEvents(1);
    r.start();
    await delivered.opened;
    await r.stop();
    const failure = lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'outbox round failed');
    expect(failure).toMatchObject({ level: 'error' });
    expect(failure.error).toContain('database went away');
  });
});

describe('httpEventSink', () => {
  const received: { method: string; path: string; headers: Headers; body: string }[] = [];
  let server: ReturnType<typeof Bun.serve>;
  const event: EventEnvelope = outboxRow({ type: 'job.completed', source: 'job-processor', userId: crypto.randomUUID(), data: { jobId: 'j1' } }).payload;
  const credential = createServiceCredential(async () => ({ token: 'service-token-123', expiresAt: Date.now() + 3_600_000 }));

  beforeAll(() => {
    server = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      async fetch(req) {
        const path = new URL(req.url).pathname;
        received.push({ method: req.method, path, headers: req.headers, body: await req.text() });
        if (path === '/internal/events') return Response.json({ id: event.id, duplicate: false }, { status: 202 });
        if (path === '/broken') return Response.json({ detail: 'boom' }, { status: 500 });
        if (path === '/moved') return new Response(null, { status: 302, headers: { location: '/internal/events' } });
        return Response.json({ detail: 'Only service tokens.' }, { status: 403 });
      },
    });
  });

  afterAll(() => server.stop(true));
  beforeEach(() => void received.splice(0));

  const sink = (path?: string) =>
    httpEventSink({ client: createHttpClient({ service: 'notification', baseUrl: server.url.href }), credential, path });

  it('posts the envelope as JSON to /internal/events with the service credential', async () => {
    await sink()(event);
    expect(received).toHaveLength(1);
    const [req] = received;
    expect(req!.method).toBe('POST');
    expect(req!.path).toBe('/internal/events');
    expect(req!.headers.get('authorization')).toBe('Bearer service-token-123');
    expect(req!.headers.get('content-type')).toStartWith('application/json');
    expect(JSON.parse(req!.body)).toEqual(event);
  });

  it('throws on a 5xx answer after a single attempt, leaving retries to the relay', async () => {
    const error = await sink('/broken')(event).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UpstreamError);
    expect((error as UpstreamError).upstreamStatus).toBe(500);
    expect(received).toHaveLength(1);
  });

  it('throws on a 4xx answer and on a redirect', async () => {
    const forbidden = await sink('/elsewhere')(event).catch((e: unknown) => e);
    expect((forbidden as UpstreamError).upstreamStatus).toBe(403);
    const moved = await sink('/moved')(event).catch((e: unknown) => e);
    expect((moved as UpstreamError).upstreamStatus).toBe(302);
  });
});
