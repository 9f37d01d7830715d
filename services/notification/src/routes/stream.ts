/**
 * `GET /notifications/stream`: the signed-in user's notifications as Server-Sent Events.
 *
 * Lossless resumption rests on the order of two steps: subscribe to the user's live channel first,
 * then read the backlog (`id > Last-Event-ID`) from the database. Anything committed before the
 * read is in the backlog; anything committed after it was published while the subscription was
 * already listening. Live messages that repeat a backlog row are skipped by id.
 *
 * Without `Last-Event-ID` (nor `?lastEventId=`) the stream sends no backlog, only what arrives from
 * now on: a client loads its inbox with `GET /notifications` and, to close the gap between the two
 * calls, may pass the newest id it got there as `?lastEventId=`.
 *
 * The live feed can miss a message a client that stays connected would never ask for again: a
 * publish fails while the KV is down (the row is committed; the publish is only logged). So a quiet
 * stream, before each heartbeat, reads what the database holds after the newest id it has covered.
 */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '@shared/app.ts';
import type { Db } from '@shared/db.ts';
import { HttpProblem } from '@shared/errors.ts';
import type { Kv, Unsubscribe } from '@shared/kv.ts';
import type { Notification } from '@shared/schemas/notifications.ts';
import { isUuidPosition } from '@shared/schemas/pagination.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { notifications } from '@db/schema/notify.ts';
import { and, asc, desc, eq, gt } from 'drizzle-orm';
import { streamSSE } from 'hono/streaming';
import { subscribeLiveFeed } from '../live-feed.ts';
import { notificationView } from '../notification-views.ts';
import { notifiedUser } from './notifications.ts';

const BACKLOG_BATCH = 100;
/** Sorts before every UUIDv7: the cursor of a user with no notification yet. */
const ZERO_ID = '00000000-0000-0000-0000-000000000000';
/** Ids remembered to skip live repeats of backlog rows; only rows committed during the backlog read can repeat. */
const REMEMBERED_IDS = 1_000;

const stream = createRoute({
  method: 'get',
  path: '/notifications/stream',
  tags: ['Notifications'],
  security: [{ bearerAuth: [] }],
  summary: 'Your notifications, live (Server-Sent Events); resumes after `Last-Event-ID` without loss',
  description:
    'Each event is `event: notification`, `id: <notification id>`, `data: <Notification JSON>`. With `Last-Event-ID` ' +
    '(or `?lastEventId=`) every notification after that id is sent first, oldest first; without it only new ones are sent. ' +
    'A comment line (`: heartbeat`) is sent when nothing else was for a while. The server closes a stream after a ' +
    'maximum lifetime (and when the client is too slow to keep up); reconnecting with `Last-Event-ID` loses nothing.',
  request: {
    headers: z.object({ 'last-event-id': z.string().max(100).optional() }),
    query: z.object({ lastEventId: z.string().max(100).optional().openapi({ description: 'For clients that cannot send the Last-Event-ID header' }) }),
  },
  responses: {
    200: { description: 'The event stream.', content: { 'text/event-stream': { schema: z.string() } } },
    ...problemResponses(400, 401, 403, 503),
  },
});

export interface StreamRoutesDeps {
  db: Db;
  kv: Kv;
  /** Quiet time after which a heartbeat comment is sent (default 15 s), so proxies keep the connection. */
  heartbeatMs?: number;
  /** A stream ends after this long (default 15 min): the client reconnects, which checks its token again. */
  maxConnectionMs?: number;
  /** Live messages held for a client that reads slowly before its stream is ended (default 1000); it resumes from the database. */
  maxPending?: number;
  /** Aborted when the service stops: open streams end so their clients reconnect to another replica. */
  shutdown?: AbortSignal;
}

/** Where a client resumes: the header wins over the query; empty means from now. */
function resumeAfter(header: string | undefined, query: string | undefined): string | undefined {
  const value = header || query;
  if (!value) return undefined;
  if (!isUuidPosition(value.toLowerCase())) throw new HttpProblem(400, 'invalid_last_event_id', 'Last-Event-ID must be the id of a notification this stream sent.');
  return value.toLowerCase();
}

function recentIds(capacity: number) {
  const ids = new Set<string>();
  return {
    has: (id: string) => ids.has(id),
    add(id: string) {
      ids.add(id);
      // Sets iterate in insertion order: the first is the oldest.
      if (ids.size > capacity) ids.delete(ids.values().next().value!);
    },
  };
}

/** `GET /notifications/stream`. */
export function streamRoutes(deps: StreamRoutesDeps) {
  const { db, kv } = deps;
  const heartbeatMs = deps.heartbeatMs ?? 15_000;
  const maxConnectionMs = deps.maxConnectionMs ?? 15 * 60_000;
  const maxPending = deps.maxPending ?? 1_000;
  const app = new OpenAPIHono<AppEnv>();

  app.openapi(stream, async (c) => {
    const userId = notifiedUser(c);
    const after = resumeAfter(c.req.valid('header')['last-event-id'], c.req.valid('query').lastEventId);

    const pending: Notification[] = [];
    let overflowed = false;
    let wake = () => {};
    let unsubscribe: Unsubscribe;
    // Subscribed before the backlog query and before answering: see the file comment.
    try {
      unsubscribe = await subscribeLiveFeed(kv, userId, (notification) => {
        if (pending.length >= maxPending) overflowed = true;
        else pending.push(notification);
        wake();
      });
    } catch {
      throw new HttpProblem(503, 'live_feed_unavailable', 'Live notifications are unavailable right now; try again shortly.');
    }

    // Proxies such as nginx would otherwise buffer the stream.
    c.header('X-Accel-Buffering', 'no');
    // The kit's access log and metrics record this request when the stream starts (time to headers).
    return streamSSE(c, async (sse) => {
      let open = true;
      const stop = () => {
        open = false;
        wake();
      };
      sse.onAbort(stop);
      const signals = [c.req.raw.signal, deps.shutdown].filter((s): s is AbortSignal => s !== undefined);
      for (const signal of signals) {
        if (signal.aborted) stop();
        else signal.addEventListener('abort', stop, { once: true });
      }
      const lifetime = setTimeout(stop, maxConnectionMs);
      const sent = recentIds(REMEMBERED_IDS);
      // The newest id this stream has covered: sent, or already in the client's inbox when it opened
      // the stream without Last-Event-ID. Whatever follows it in the database without having come
      // through the live feed (a publish failed while the KV was down) is read before each heartbeat.
      let covered = after ?? ZERO_ID;
      const send = async (notification: Notification) => {
        if (sent.has(notification.id)) return;
        sent.add(notification.id);
        if (notification.id > covered) covered = notification.id;
        await sse.writeSSE({ id: notification.id, event: 'notification', data: JSON.stringify(notification) });
      };
      const catchUp = async () => {
        for (let more = true; more && open; ) {
          const rows = await db
            .select()
            .from(notifications)
            .where(and(eq(notifications.userId, userId), gt(notifications.id, covered)))
            .orderBy(asc(notifications.id))
            .limit(BACKLOG_BATCH);
          for (const row of rows) if (open) await send(notificationView(row));
          more = rows.length === BACKLOG_BATCH;
        }
      };

      try {
        if (after) await catchUp();
        else {
          const [newest] = await db.select({ id: notifications.id }).from(notifications).where(eq(notifications.userId, userId)).orderBy(desc(notifications.id)).limit(1);
          if (newest) covered = newest.id;
        }
        // Bun sends the response headers only with the first body chunk: without this a stream with no
        // backlog stays unanswered until the first heartbeat (EventSource's `open` waits, and a heartbeat
        // longer than the gateway's UPSTREAM_TIMEOUT_MS turns every such stream into a 504).
        if (open) await sse.write(': connected\n\n');
        while (open) {
          const next = pending.shift();
          if (next) {
            await send(next);
            continue;
          }
          // Messages were dropped for a slow reader: end the stream; it resumes from the database.
          if (overflowed) break;
          const quiet = await new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => resolve(true), heartbeatMs);
            wake = () => {
              clearTimeout(timer);
              resolve(false);
            };
          });
          wake = () => {};
          if (quiet && open) {
            await catchUp();
            await sse.write(': heartbeat\n\n');
          }
        }
      } catch (err) {
        // The client reconnects with Last-Event-ID; the error is ours to log, not theirs to read.
        c.get('logger').error('notification stream failed', { err, userId });
      } finally {
        clearTimeout(lifetime);
        for (const signal of signals) signal.removeEventListener('abort', stop);
        await unsubscribe().catch(() => {});
      }
    });
  });

  return app;
}
