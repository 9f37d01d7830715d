/**
 * The live notification stream over a real HTTP server, read by a real fetch: notifications
 * published through the KV (real Redis pub/sub when REDIS_URL is set, from a second connection as
 * another replica would) arrive as Server-Sent Events; a client that reconnects with Last-Event-ID
 * gets exactly what it missed; heartbeats flow; nobody sees anyone else's notifications.
 */
import { createServiceApp } from '@shared/app.ts';
import { createKv } from '@shared/kv-factory.ts';
import type { Kv } from '@shared/kv.ts';
import { createLogger } from '@shared/log.ts';
import { createMetrics } from '@shared/metrics.ts';
import { NotificationSchema } from '@shared/schemas/notifications.ts';
import { notifications } from '@db/schema/notify.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { liveChannel } from '../../services/notification/src/domain.ts';
import { publishNotifications } from '../../services/notification/src/live-feed.ts';
import { notificationView } from '../../services/notification/src/notification-views.ts';
import { streamRoutes, type StreamRoutesDeps } from '../../services/notification/src/routes/stream.ts';
import { json } from '../support/json.ts';
import { createTestDatabase, migrateAll, type TestDatabase } from '../support/test-database.ts';
import { serviceTokenFor, testAuthenticator, tokenFor } from '../support/test-identity.ts';

const HEARTBEAT_MS = 100;
/** Only to keep a broken stream from hanging the run; no assertion is about time. */
const WAIT_LIMIT_MS = 5_000;

let testDb: TestDatabase;
/** The stream's KV, counting live subscriptions per channel. */
let streamKv: Kv;
/** Where notifications are published from: another connection when Redis is real, as another replica. */
let publisherKv: Kv;
const subscriptions = new Map<string, number>();
const metrics = createMetrics({ service: 'notification' });
let baseUrl: string;

/** A KV that counts live subscriptions, to see the stream unsubscribe when its client goes. */
function countingSubscriptions(kv: Kv): Kv {
  return {
    ...kv,
    async subscribe(channel, onMessage) {
      const unsubscribe = await kv.subscribe(channel, onMessage);
      subscriptions.set(channel, (subscriptions.get(channel) ?? 0) + 1);
      let done = false;
      return async () => {
        if (!done) subscriptions.set(channel, subscriptions.get(channel)! - 1);
        done = true;
        await unsubscribe();
      };
    },
  };
}

/** The stream routes on the kit's app, served on a real port. */
function serveStream(options: Partial<StreamRoutesDeps> = {}) {
  const app = createServiceApp({
    name: 'notification',
    version: 'test',
    description: 'stream under test',
    logger: createLogger({ level: 'silent' }),
    metrics,
    auth: { authenticator: testAuthenticator(kv) },
  });
  app.route('/', streamRoutes({ db: testDb.database.db, kv: streamKv, heartbeatMs: HEARTBEAT_MS, ...options }));
  const server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: app.fetch });
  return { url: `http://127.0.0.1:${server.port}`, stop: () => server.stop(true) };
}

let kv: Kv;
let served: ReturnType<typeof serveStream>;

beforeAll(async () => {
  testDb = await createTestDatabase();
  await migrateAll(testDb.database);
  kv = await createKv({ url: process.env.REDIS_URL });
  streamKv = countingSubscriptions(kv);
  publisherKv = process.env.REDIS_URL ? await createKv({ url: process.env.REDIS_URL }) : kv;
  served = serveStream();
  baseUrl = served.url;
}, 60_000);

afterAll(async () => {
  await served.stop();
  if (publisherKv !== kv) await publisherKv.close();
  await kv.close();
  await testDb.drop();
});

interface SseEvent {
  id?: string;
  event?: string;
  data?: string;
  /** Comment lines (`: …`), e.g. heartbeats. */
  comments: string[];
}

/** A real SSE client over fetch: parses the body as it arrives. */
async function connect(token: string | undefined, options: { lastEventId?: string; query?: string; url?: string } = {}) {
  const controller = new AbortController();
  const headers: Record<string, string> = { accept: 'text/event-stream' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (options.lastEventId) headers['last-event-id'] = options.lastEventId;
  const res = await fetch(`${options.url ?? baseUrl}/notifications/stream${options.query ?? ''}`, { headers, signal: controller.signal });
  const events: SseEvent[] = [];
  let waiters: (() => void)[] = [];
  let ended = false;
  if (res.ok && res.body) {
    (async () => {
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          buffer += value;
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const event: SseEvent = { comments: [] };
            for (const line of block.split('\n')) {
              if (line.startsWith(':')) event.comments.push(line.slice(1).trim());
              else {
                const colon = line.indexOf(':');
                const field = line.slice(0, colon);
                const value = line.slice(colon + 1).replace(/^ /, '');
                if (field === 'data') event.data = event.data === undefined ? value : `${event.data}\n${value}`;
                else if (field === 'id' || field === 'event') event[field] = value;
              }
            }
            events.push(event);
            for (const wake of waiters) wake();
            waiters = [];
          }
        }
      } catch {
        // Aborted by the test.
      } finally {
        ended = true;
        for (const wake of waiters) wake();
      }
    })();
  }
  /** Waits until `predicate` holds for the events so far (fails after WAIT_LIMIT_MS instead of hanging). */
  async function until(predicate: (events: SseEvent[]) => boolean, what: string): Promise<SseEvent[]> {
    const limit = Date.now() + WAIT_LIMIT_MS;
    while (!predicate(events)) {
      if (ended) throw new Error(`stream ended before ${what}`);
      if (Date.now() > limit) throw new Error(`no ${what} within ${WAIT_LIMIT_MS} ms; got ${JSON.stringify(events)}`);
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
    return events;
  }
  const notificationsSoFar = () => events.filter((e) => e.event === 'notification');
  return {
    res,
    events,
    notifications: notificationsSoFar,
    /** Waits for `n` notification events in total and returns them. */
    async received(n: number) {
      await until(() => notificationsSoFar().length >= n, `${n} notification event(s)`);
      return notificationsSoFar();
    },
    until,
    /** Resolves when the server has ended the stream. */
    ended: () => until(() => ended, 'the end of the stream'),
    close: () => controller.abort(),
  };
}

async function insert(userId: string, title: string) {
  const [row] = await testDb.database.db
    .insert(notifications)
    .values({ id: Bun.randomUUIDv7(), userId, type: 'job.completed', title, body: 'Its results are in your files.', link: '/jobs/x', data: { title } })
    .returning();
  return row!;
}

/** Inserts and publishes, as intake's `delivered` hook does after commit. */
async function notify(userId: string, title: string) {
  const row = await insert(userId, title);
  await publishNotifications(publisherKv, [row]);
  return row;
}

async function untilSubscriptions(userId: string, count: number) {
  const limit = Date.now() + WAIT_LIMIT_MS;
  while ((subscriptions.get(liveChannel(userId)) ?? 0) !== count) {
    if (Date.now() > limit) throw new Error(`subscriptions for ${userId} stayed at ${subscriptions.get(liveChannel(userId))}, expected ${count}`);
    await Bun.sleep(10);
  }
}

async function user() {
  const id = crypto.randomUUID();
  return { id, token: await tokenFor(id) };
}

describe('GET /notifications/stream', () => {
  it('delivers a notification inserted and published after connecting as an SSE event', async () => {
    const a = await user();
    const stream = await connect(a.token);
    try {
      expect(stream.res.status).toBe(200);
      expect(stream.res.headers.get('content-type')).toContain('text/event-stream');
      const row = await notify(a.id, 'first');
      const [event] = await stream.received(1);
      expect(event!.id).toBe(row.id);
      expect(event!.event).toBe('notification');
      expect(NotificationSchema.parse(JSON.parse(event!.data!))).toEqual(notificationView(row));
    } finally {
      stream.close();
    }
  });

  it('sends no backlog without Last-Event-ID, only what arrives afterwards', async () => {
    const a = await user();
    await insert(a.id, 'before connecting');
    const stream = await connect(a.token);
    try {
      const live = await notify(a.id, 'after connecting');
      const events = await stream.received(1);
      expect(events.map((e) => e.id)).toEqual([live.id]);
    } finally {
      stream.close();
    }
  });

  it('resumes after Last-Event-ID with exactly the notifications missed while disconnected, in order', async () => {
    const a = await user();
    const first = await connect(a.token);
    const n1 = await notify(a.id, 'n1');
    const [seen] = await first.received(1);
    expect(seen!.id).toBe(n1.id);
    first.close();
    // The server notices the client left and drops its subscription.
    await untilSubscriptions(a.id, 0);

    const n2 = await notify(a.id, 'n2');
    const n3 = await notify(a.id, 'n3');

    const second = await connect(a.token, { lastEventId: seen!.id });
    try {
      const n4 = await notify(a.id, 'n4');
      const events = await second.received(3);
      expect(events.map((e) => e.id)).toEqual([n2.id, n3.id, n4.id]);
      expect(events.map((e) => JSON.parse(e.data!).title)).toEqual(['n2', 'n3', 'n4']);
      // A heartbeat after the last notification shows nothing else was queued behind it.
      await second.until((all) => all.findIndex((e) => e.id === n4.id) < all.findLastIndex((e) => e.comments.includes('heartbeat')), 'a heartbeat after n4');
      expect(second.notifications().map((e) => e.id)).toEqual([n2.id, n3.id, n4.id]);
    } finally {
      second.close();
    }
  });

  it('resumes from ?lastEventId= for clients that cannot send the header', async () => {
    const a = await user();
    const n1 = await insert(a.id, 'n1');
    const n2 = await insert(a.id, 'n2');
    const stream = await connect(a.token, { query: `?lastEventId=${n1.id}` });
    try {
      expect((await stream.received(1)).map((e) => e.id)).toEqual([n2.id]);
    } finally {
      stream.close();
    }
  });

  it('does not repeat a backlog notification that is also published live', async () => {
    const a = await user();
    const n0 = await insert(a.id, 'n0');
    const n1 = await insert(a.id, 'n1');
    const stream = await connect(a.token, { lastEventId: n0.id });
    try {
      await stream.received(1);
      // n1 again on the live channel (its publish raced the backlog read), then a new one.
      await publishNotifications(publisherKv, [n1]);
      const n2 = await notify(a.id, 'n2');
      await stream.received(2);
      await stream.until((all) => all.findIndex((e) => e.id === n2.id) < all.findLastIndex((e) => e.comments.includes('heartbeat')), 'a heartbeat after n2');
      expect(stream.notifications().map((e) => e.id)).toEqual([n1.id, n2.id]);
    } finally {
      stream.close();
    }
  });

  it('answers with the stream headers at once, before any notification or heartbeat', async () => {
    // Bun sends headers with the first body chunk: a stream with nothing to send must still open.
    const quiet = serveStream({ heartbeatMs: 600_000 });
    try {
      const a = await user();
      const stream = await connect(a.token, { url: quiet.url });
      try {
        expect(stream.res.status).toBe(200);
        await stream.until((all) => all.some((e) => e.comments.includes('connected')), 'the connected comment');
        expect(stream.notifications()).toHaveLength(0);
      } finally {
        stream.close();
      }
    } finally {
      await quiet.stop();
    }
  }, 10_000);

  it('sends heartbeat comments while nothing happens', async () => {
    const a = await user();
    const stream = await connect(a.token);
    try {
      const events = await stream.until((all) => all.filter((e) => e.comments.includes('heartbeat')).length >= 2, 'two heartbeats');
      expect(events.filter((e) => e.event === 'notification')).toHaveLength(0);
    } finally {
      stream.close();
    }
  });

  it('never carries another user’s notifications, live or from the backlog', async () => {
    const [a, b] = [await user(), await user()];
    const before = await insert(a.id, 'a0');
    const streamA = await connect(a.token);
    const streamB = await connect(b.token);
    try {
      const b1 = await notify(b.id, 'b1');
      const a1 = await notify(a.id, 'a1');
      const b2 = await notify(b.id, 'b2');
      await streamB.received(2);
      await streamA.received(1);
      await streamA.until((all) => all.findIndex((e) => e.id === a1.id) < all.findLastIndex((e) => e.comments.includes('heartbeat')), 'a heartbeat after a1');
      expect(streamA.notifications().map((e) => e.id)).toEqual([a1.id]);
      expect(streamB.notifications().map((e) => e.id)).toEqual([b1.id, b2.id]);
    } finally {
      streamA.close();
      streamB.close();
    }
    const resumed = await connect(a.token, { lastEventId: before.id });
    try {
      await resumed.until((all) => all.some((e) => e.comments.includes('heartbeat')), 'a heartbeat after the backlog');
      expect(resumed.notifications().map((e) => JSON.parse(e.data!).title)).toEqual(['a1']);
    } finally {
      resumed.close();
    }
  });

  it('unsubscribes from the live channel when the client disconnects', async () => {
    const a = await user();
    const stream = await connect(a.token);
    await untilSubscriptions(a.id, 1);
    stream.close();
    await untilSubscriptions(a.id, 0);
    expect(subscriptions.get(liveChannel(a.id))).toBe(0);
  });

  it('refuses a request without a token with 401', async () => {
    const res = await fetch(`${baseUrl}/notifications/stream`);
    expect(res.status).toBe(401);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
  });

  it('refuses a service token with 403', async () => {
    const res = await fetch(`${baseUrl}/notifications/stream`, { headers: { authorization: `Bearer ${await serviceTokenFor('job-processor')}` } });
    expect(res.status).toBe(403);
  });

  it('rejects a Last-Event-ID that is not a notification id with 400', async () => {
    const a = await user();
    const res = await fetch(`${baseUrl}/notifications/stream`, { headers: { authorization: `Bearer ${a.token}`, 'last-event-id': "1' or 1=1" } });
    expect(res.status).toBe(400);
    expect((await json(res)).code).toBe('invalid_last_event_id');
    expect(subscriptions.get(liveChannel(a.id)) ?? 0).toBe(0);
  });

  it('records finished streams in the request metrics under the route', async () => {
    const text = await metrics.render();
    expect(text).toContain('route="/notifications/stream",status="200"');
    expect(text).toContain('route="/notifications/stream",status="401"');
  });
});

describe('GET /notifications/stream endings', () => {
  it('ends the stream of a client that cannot keep up, and the client loses nothing on resume', async () => {
    // No room to hold live messages at all: the first one ends the stream instead of queueing.
    const strict = serveStream({ maxPending: 0 });
    try {
      const a = await user();
      const n0 = await insert(a.id, 'n0');
      const stream = await connect(a.token, { url: strict.url, lastEventId: n0.id });
      await untilSubscriptions(a.id, 1);
      const n1 = await notify(a.id, 'n1');
      await stream.ended();
      expect(stream.notifications()).toHaveLength(0);
      await untilSubscriptions(a.id, 0);

      const resumed = await connect(a.token, { lastEventId: n0.id });
      try {
        expect((await resumed.received(1)).map((e) => e.id)).toEqual([n1.id]);
      } finally {
        resumed.close();
      }
    } finally {
      await strict.stop();
    }
  });

  it('ends a stream after its maximum lifetime and unsubscribes', async () => {
    const brief = serveStream({ maxConnectionMs: 200 });
    try {
      const a = await user();
      const stream = await connect(a.token, { url: brief.url });
      await stream.ended();
      await untilSubscriptions(a.id, 0);
    } finally {
      await brief.stop();
    }
  });

  it('ends open streams when the service shuts down', async () => {
    const shutdown = new AbortController();
    const stopping = serveStream({ shutdown: shutdown.signal });
    try {
      const a = await user();
      const stream = await connect(a.token, { url: stopping.url });
      await untilSubscriptions(a.id, 1);
      shutdown.abort();
      await stream.ended();
      await untilSubscriptions(a.id, 0);
    } finally {
      await stopping.stop();
    }
  });
});
