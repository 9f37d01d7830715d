/** In-app notifications and notification preferences as clients see them (inbox, live stream, settings). */
import { z } from '@hono/zod-openapi';
import { pageOf } from './pagination.ts';

export const NotificationSchema = z
  .object({
    id: z.uuid().openapi({ description: 'UUIDv7: ids sort in creation order; the live stream resumes after one' }),
    type: z.string().openapi({ example: 'job.completed' }),
    title: z.string().openapi({ example: 'Job “chr20 cohort” completed' }),
    body: z.string(),
    link: z.string().nullable().openapi({ description: 'Path in the platform it points at', example: '/jobs/0190a4d2-…' }),
    data: z.record(z.string(), z.unknown()).nullable().openapi({ description: 'The event’s data (ids, states, messages)' }),
    createdAt: z.string().openapi({ description: 'ISO-8601 UTC' }),
    readAt: z.string().nullable().openapi({ description: 'When it was marked read; null while unread' }),
  })
  .openapi('Notification');
export type Notification = z.infer<typeof NotificationSchema>;

export const NotificationPageSchema = pageOf(NotificationSchema, 'NotificationPage');

export const UnreadCountSchema = z.object({ count: z.number().int().min(0) }).openapi('UnreadCount');

export const ReadAllResultSchema = z
  .object({ updated: z.number().int().min(0).openapi({ description: 'How many notifications were unread and are now read' }) })
  .openapi('ReadAllResult');

export const NotificationChannelSchema = z.enum(['in_app', 'email', 'webhook']).openapi('NotificationChannel');

export const NotificationPreferenceSchema = z
  .object({
    eventType: z.string().openapi({ example: 'job.completed' }),
    channel: NotificationChannelSchema,
    enabled: z.boolean(),
    isDefault: z.boolean().openapi({ description: 'True when the user has not chosen and the default applies' }),
  })
  .openapi('NotificationPreference');

export const NotificationPreferencesSchema = z.object({ items: z.array(NotificationPreferenceSchema) }).openapi('NotificationPreferences');

/** Channel and event type are plain strings here so unknown ones get one 422 listing all of them. */
export const NotificationPreferencesUpdateSchema = z
  .object({
    items: z
      .array(
        z.object({
          eventType: z.string().min(1).max(100),
          channel: z.string().min(1).max(50).openapi({ description: 'in_app, email or webhook' }),
          enabled: z.boolean(),
        }),
      )
      .max(200),
  })
  .openapi('NotificationPreferencesUpdate');
