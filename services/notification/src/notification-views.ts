/** Stored rows → what clients see: the inbox, the live stream and the preferences page share these. */
import type { notifications } from '@db/schema/notify.ts';
import type { Notification } from '@shared/schemas/notifications.ts';

export type NotificationRow = typeof notifications.$inferSelect;

export function notificationView(row: NotificationRow): Notification {
  return {
    id: row.id,
    type: row.type,
    title: row.title,
    body: row.body,
    link: row.link,
    data: (row.data as Record<string, unknown> | null) ?? null,
    createdAt: row.createdAt.toISOString(),
    readAt: row.readAt?.toISOString() ?? null,
  };
}
