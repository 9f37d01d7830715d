/**
 * The live feed: each new in-app notification is published on its user's KV channel as its client
 * view (JSON), and every replica holding a stream for that user passes it on. The feed is only a
 * fast path: the database is the record, and a stream that missed a message (a replica restarted,
 * Redis blinked) gets it from the backlog when the client reconnects with `Last-Event-ID`.
 */
import type { Kv, Unsubscribe } from '@shared/kv.ts';
import { NotificationSchema, type Notification } from '@shared/schemas/notifications.ts';
import { liveChannel } from './domain.ts';
import { notificationView, type NotificationRow } from './notification-views.ts';

/**
 * Publishes each row to its user's channel. Call it after the rows are committed (intake's
 * `delivered` hook), never inside the transaction: a stream must not show what may still roll back.
 * Rejects if any publish failed, after trying all of them.
 */
export async function publishNotifications(kv: Kv, rows: readonly NotificationRow[]): Promise<void> {
  const results = await Promise.allSettled(rows.map((row) => kv.publish(liveChannel(row.userId), JSON.stringify(notificationView(row)))));
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed.length > 0) throw new AggregateError(failed.map((r) => r.reason), `${failed.length} of ${rows.length} live notifications were not published`);
}

/** A message from the channel, or null when it is not a notification view (never trusted blindly). */
export function parseLiveMessage(message: string): Notification | null {
  try {
    const parsed = NotificationSchema.safeParse(JSON.parse(message));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** Subscribes to `userId`'s live notifications; resolves once the subscription is in place. */
export function subscribeLiveFeed(kv: Kv, userId: string, onNotification: (notification: Notification) => void): Promise<Unsubscribe> {
  return kv.subscribe(liveChannel(userId), (message) => {
    const notification = parseLiveMessage(message);
    if (notification) onNotification(notification);
  });
}
