/**
 * The signed-in user's in-app inbox: list (newest first, unread filter), unread count, mark read,
 * mark all read, delete. Every query is scoped to the caller, so another user's notification id
 * answers 404 exactly like one that never existed.
 */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '@shared/app.ts';
import type { Db } from '@shared/db.ts';
import { HttpProblem } from '@shared/errors.ts';
import { jsonContent } from '@shared/openapi.ts';
import { NotificationPageSchema, NotificationSchema, ReadAllResultSchema, UnreadCountSchema } from '@shared/schemas/notifications.ts';
import { decodeCursor, encodeCursor, isUuidPosition, PageQuerySchema } from '@shared/schemas/pagination.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { notifications } from '@db/schema/notify.ts';
import { and, count, desc, eq, isNotNull, isNull, lt, type SQL } from 'drizzle-orm';
import type { Context } from 'hono';
import { notificationView } from '../notification-views.ts';

const security = [{ bearerAuth: [] }];
const tags = ['Notifications'];
const IdParam = z.object({ id: z.uuid().openapi({ param: { name: 'id', in: 'path' } }) });
const notFound = () => new HttpProblem(404, 'notification_not_found', 'No such notification.');

/** The user a notification route acts for; service tokens act for nobody. */
export function notifiedUser(c: Context<AppEnv>): string {
  const identity = c.get('identity');
  if (identity.kind !== 'user') throw new HttpProblem(403, 'users_only', 'Notifications belong to users; sign in as one.');
  return identity.subject;
}

const list = createRoute({
  method: 'get',
  path: '/notifications',
  tags,
  security,
  summary: 'Your notifications, newest first',
  request: {
    query: PageQuerySchema.extend({
      unread: z
        .enum(['true', 'false'])
        .transform((v) => v === 'true')
        .optional()
        .openapi({ type: 'string', enum: ['true', 'false'], description: '`true`: unread only; `false`: read only; absent: all' }),
    }),
  },
  responses: { 200: { description: 'A page of notifications.', ...jsonContent(NotificationPageSchema) }, ...problemResponses(400, 401, 403) },
});

const unreadCount = createRoute({
  method: 'get',
  path: '/notifications/unread-count',
  tags,
  security,
  summary: 'How many of your notifications are unread',
  responses: { 200: { description: 'The count.', ...jsonContent(UnreadCountSchema) }, ...problemResponses(401, 403) },
});

const markRead = createRoute({
  method: 'post',
  path: '/notifications/{id}/read',
  tags,
  security,
  summary: 'Mark a notification read (idempotent: the first read time is kept)',
  request: { params: IdParam },
  responses: { 200: { description: 'The notification.', ...jsonContent(NotificationSchema) }, ...problemResponses(400, 401, 403, 404) },
});

const markAllRead = createRoute({
  method: 'post',
  path: '/notifications/read-all',
  tags,
  security,
  summary: 'Mark every unread notification of yours read',
  responses: { 200: { description: 'How many changed.', ...jsonContent(ReadAllResultSchema) }, ...problemResponses(401, 403) },
});

const remove = createRoute({
  method: 'delete',
  path: '/notifications/{id}',
  tags,
  security,
  summary: 'Delete a notification',
  request: { params: IdParam },
  responses: { 204: { description: 'Deleted.' }, ...problemResponses(400, 401, 403, 404) },
});

export interface NotificationRoutesDeps {
  db: Db;
  /** Clock for read times (ms). */
  now?: () => number;
}

/** `/notifications` inbox routes; mount on an app whose auth middleware sets the identity. */
export function notificationRoutes(deps: NotificationRoutesDeps) {
  const { db } = deps;
  const now = () => new Date((deps.now ?? Date.now)());
  const app = new OpenAPIHono<AppEnv>();
  const own = (userId: string, id: string) => and(eq(notifications.userId, userId), eq(notifications.id, id));

  app.openapi(list, async (c) => {
    const userId = notifiedUser(c);
    const { limit, cursor, unread } = c.req.valid('query');
    const before = decodeCursor(cursor, isUuidPosition);
    const filters: (SQL | undefined)[] = [
      eq(notifications.userId, userId),
      unread === undefined ? undefined : unread ? isNull(notifications.readAt) : isNotNull(notifications.readAt),
      // Ids are UUIDv7, so id order is creation order and a stable cursor.
      before ? lt(notifications.id, before) : undefined,
    ];
    const rows = await db
      .select()
      .from(notifications)
      .where(and(...filters))
      .orderBy(desc(notifications.id))
      .limit(limit + 1);
    const page = rows.slice(0, limit);
    return c.json({ items: page.map(notificationView), nextCursor: rows.length > limit ? encodeCursor(page.at(-1)!.id) : null }, 200);
  });

  app.openapi(unreadCount, async (c) => {
    const userId = notifiedUser(c);
    const [row] = await db
      .select({ count: count() })
      .from(notifications)
      .where(and(eq(notifications.userId, userId), isNull(notifications.readAt)));
    return c.json({ count: row?.count ?? 0 }, 200);
  });

  app.openapi(markAllRead, async (c) => {
    const userId = notifiedUser(c);
    const changed = await db
      .update(notifications)
      .set({ readAt: now() })
      .where(and(eq(notifications.userId, userId), isNull(notifications.readAt)))
      .returning({ id: notifications.id });
    return c.json({ updated: changed.length }, 200);
  });

  app.openapi(markRead, async (c) => {
    const userId = notifiedUser(c);
    const { id } = c.req.valid('param');
    // Only an unread row changes, so a second read keeps the first read time.
    const [changed] = await db
      .update(notifications)
      .set({ readAt: now() })
      .where(and(own(userId, id), isNull(notifications.readAt)))
      .returning();
    const row = changed ?? (await db.select().from(notifications).where(own(userId, id)))[0];
    if (!row) throw notFound();
    return c.json(notificationView(row), 200);
  });

  app.openapi(remove, async (c) => {
    const userId = notifiedUser(c);
    const deleted = await db.delete(notifications).where(own(userId, c.req.valid('param').id)).returning({ id: notifications.id });
    if (deleted.length === 0) throw notFound();
    return c.body(null, 204);
  });

  return app;
}
