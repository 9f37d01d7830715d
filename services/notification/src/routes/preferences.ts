/**
 * Notification preferences: per event type × channel, on or off. Only choices that differ from the
 * default are stored — setting a value back to its default deletes the row — so a later change of a
 * default in `NOTIFIABLE` reaches everyone who never chose otherwise. Admin-audience event types
 * (platform health, alerts) exist only for admins: others neither see nor may set them.
 */
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '@shared/app.ts';
import type { Db } from '@shared/db.ts';
import { HttpProblem, type ProblemFieldError } from '@shared/errors.ts';
import { jsonBody, jsonContent } from '@shared/openapi.ts';
import { NotificationPreferencesSchema, NotificationPreferencesUpdateSchema } from '@shared/schemas/notifications.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { preferences } from '@db/schema/notify.ts';
import { and, eq, or, sql } from 'drizzle-orm';
import { CHANNELS, NOTIFIABLE, type Channel } from '../domain.ts';
import { notifiedUser } from './notifications.ts';

const security = [{ bearerAuth: [] }];
const tags = ['Notifications'];

const read = createRoute({
  method: 'get',
  path: '/notifications/preferences',
  tags,
  security,
  summary: 'Your notification preferences: every event type × channel, with the value in effect',
  responses: { 200: { description: 'Every preference.', ...jsonContent(NotificationPreferencesSchema) }, ...problemResponses(401, 403) },
});

const write = createRoute({
  method: 'put',
  path: '/notifications/preferences',
  tags,
  security,
  summary: 'Turn channels on or off per event type',
  description:
    'Only the listed pairs change; the answer is the whole set, as `GET` shows it. Setting a value equal to the default ' +
    'removes your choice (`isDefault` becomes true). Unknown event types or channels are refused together with one 422 naming them.',
  request: jsonBody(NotificationPreferencesUpdateSchema),
  responses: { 200: { description: 'Every preference after the change.', ...jsonContent(NotificationPreferencesSchema) }, ...problemResponses(400, 401, 403, 422) },
});

/** The event types `roles` may be notified of, in `NOTIFIABLE` order. */
export function visibleEventTypes(roles: readonly string[]): string[] {
  const admin = roles.includes('admin');
  return Object.entries(NOTIFIABLE)
    .filter(([, info]) => info.audience === 'user' || admin)
    .map(([type]) => type);
}

const isChannel = (value: string): value is Channel => (CHANNELS as readonly string[]).includes(value);

export interface PreferenceRoutesDeps {
  db: Db;
  now?: () => number;
}

/** `GET|PUT /notifications/preferences`. */
export function preferenceRoutes(deps: PreferenceRoutesDeps) {
  const { db } = deps;
  const now = () => new Date((deps.now ?? Date.now)());
  const app = new OpenAPIHono<AppEnv>();

  async function effective(userId: string, roles: readonly string[]) {
    const types = visibleEventTypes(roles);
    const chosen = await db.select().from(preferences).where(eq(preferences.userId, userId));
    const items = types.flatMap((eventType) =>
      CHANNELS.map((channel) => {
        const row = chosen.find((p) => p.eventType === eventType && p.channel === channel);
        return { eventType, channel, enabled: row?.enabled ?? NOTIFIABLE[eventType]!.defaults[channel], isDefault: !row };
      }),
    );
    return { items };
  }

  app.openapi(read, async (c) => {
    const userId = notifiedUser(c);
    return c.json(await effective(userId, c.get('identity').roles), 200);
  });

  app.openapi(write, async (c) => {
    const userId = notifiedUser(c);
    const roles = c.get('identity').roles;
    const visible = new Set(visibleEventTypes(roles));
    const { items } = c.req.valid('json');

    const errors: ProblemFieldError[] = [];
    const unknownTypes = new Set<string>();
    const unknownChannels = new Set<string>();
    items.forEach((item, i) => {
      if (!visible.has(item.eventType)) {
        unknownTypes.add(item.eventType);
        errors.push({ path: `body.items.${i}.eventType`, message: `unknown event type "${item.eventType}"`, code: 'unknown_event_type' });
      }
      if (!isChannel(item.channel)) {
        unknownChannels.add(item.channel);
        errors.push({ path: `body.items.${i}.channel`, message: `unknown channel "${item.channel}"; use ${CHANNELS.join(', ')}`, code: 'unknown_channel' });
      }
    });
    if (errors.length > 0) {
      const named = [...[...unknownTypes].map((t) => `event type "${t}"`), ...[...unknownChannels].map((ch) => `channel "${ch}"`)];
      throw new HttpProblem(422, 'unknown_preferences', `Unknown ${named.join(', ')}.`, {
        errors,
        extensions: { unknownEventTypes: [...unknownTypes], unknownChannels: [...unknownChannels] },
      });
    }

    // The last value given for a pair wins (one INSERT … ON CONFLICT may not touch a row twice).
    const wanted = new Map<string, { eventType: string; channel: Channel; enabled: boolean }>();
    for (const item of items) wanted.set(`${item.eventType}\u0000${item.channel}`, { ...item, channel: item.channel as Channel });
    const choices = [...wanted.values()];
    const toDefault = choices.filter((p) => p.enabled === NOTIFIABLE[p.eventType]!.defaults[p.channel]);
    const toStore = choices.filter((p) => p.enabled !== NOTIFIABLE[p.eventType]!.defaults[p.channel]);

    await db.transaction(async (tx) => {
      if (toDefault.length > 0) {
        await tx
          .delete(preferences)
          .where(
            and(
              eq(preferences.userId, userId),
              or(...toDefault.map((p) => and(eq(preferences.eventType, p.eventType), eq(preferences.channel, p.channel)))),
            ),
          );
      }
      if (toStore.length > 0) {
        await tx
          .insert(preferences)
          .values(toStore.map((p) => ({ userId, eventType: p.eventType, channel: p.channel, enabled: p.enabled, updatedAt: now() })))
          .onConflictDoUpdate({
            target: [preferences.userId, preferences.eventType, preferences.channel],
            set: { enabled: sql`excluded.enabled`, updatedAt: sql`excluded.updated_at` },
          });
      }
    });
    return c.json(await effective(userId, roles), 200);
  });

  return app;
}
