/** notification's vocabulary: channels, the event types users can be told about and the default for each. */
import type { EventType } from '@shared/schemas/events.ts';

export const CHANNELS = ['in_app', 'email', 'webhook'] as const;
export type Channel = (typeof CHANNELS)[number];

/** Who an event concerns: its `userId` (jobs, credentials), or every admin (platform events). */
export type Audience = 'user' | 'admins';

export interface EventTypeInfo {
  audience: Audience;
  /** Channels on for a user who has not chosen. */
  defaults: Record<Channel, boolean>;
}

/**
 * The event types that become notifications, with their defaults: in-app for everything worth a
 * look, email only for the transitions people wait for (job ended, credential expiring, an alert).
 * Webhooks deliver what an endpoint subscribed to.
 */
export const NOTIFIABLE: Readonly<Record<string, EventTypeInfo>> = {
  'job.completed': { audience: 'user', defaults: { in_app: true, email: true, webhook: true } },
  'job.failed': { audience: 'user', defaults: { in_app: true, email: true, webhook: true } },
  'job.cancelled': { audience: 'user', defaults: { in_app: true, email: true, webhook: true } },
  'job.created': { audience: 'user', defaults: { in_app: false, email: false, webhook: true } },
  'job.status_changed': { audience: 'user', defaults: { in_app: false, email: false, webhook: true } },
  'credential.expiring': { audience: 'user', defaults: { in_app: true, email: true, webhook: true } },
  'service.health_changed': { audience: 'admins', defaults: { in_app: true, email: false, webhook: true } },
  'alert.raised': { audience: 'admins', defaults: { in_app: true, email: true, webhook: true } },
  'alert.resolved': { audience: 'admins', defaults: { in_app: true, email: false, webhook: true } },
  // Every platform event type has its defaults here: a new type added to EVENT_TYPES fails to compile until it does.
} satisfies Record<EventType, EventTypeInfo>;

export interface Recipient {
  id: string;
  email: string;
  displayName: string;
}

/** What a notification says, for the inbox, an email and a webhook. */
export interface Rendered {
  title: string;
  body: string;
  /** Path in the platform the notification points at (`/jobs/<id>`), if any. */
  link: string | null;
  subject: string;
  text: string;
  html: string;
}

/** Channel name for a user's live notifications on the KV pub/sub. */
export const liveChannel = (userId: string) => `notify:user:${userId}`;
