/** notification tables: received events (deduplicated by id), users' in-app notifications, preferences, the email send queue, webhook endpoints and their deliveries. */
import { sql } from 'drizzle-orm';
import { boolean, index, integer, jsonb, pgSchema, primaryKey, text, timestamp, unique, uuid } from 'drizzle-orm/pg-core';

export const notifySchema = pgSchema('notify');

export const events = notifySchema.table('events', {
  /** The producer's event id: redelivery of the same event is a no-op. */
  id: uuid('id').primaryKey(),
  type: text('type').notNull(),
  source: text('source').notNull(),
  payload: jsonb('payload').notNull(),
  receivedAt: timestamp('received_at', { withTimezone: true }).notNull().defaultNow(),
});

export const notifications = notifySchema.table(
  'notifications',
  {
    /** UUIDv7: ordered by creation, so a stream resumes with `id > Last-Event-ID`. */
    id: uuid('id').primaryKey(),
    userId: uuid('user_id').notNull(),
    eventId: uuid('event_id').references(() => events.id),
    type: text('type').notNull(),
    title: text('title').notNull(),
    body: text('body').notNull(),
    link: text('link'),
    data: jsonb('data'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    readAt: timestamp('read_at', { withTimezone: true }),
  },
  (t) => [index('notifications_user_created').on(t.userId, t.createdAt), index('notifications_user_id').on(t.userId, t.id), unique('notifications_event_user').on(t.eventId, t.userId)],
);

/** A user's choice for one event type on one channel; absent rows mean the default. */
export const preferences = notifySchema.table(
  'preferences',
  {
    userId: uuid('user_id').notNull(),
    eventType: text('event_type').notNull(),
    /** in_app | email | webhook */
    channel: text('channel').notNull(),
    enabled: boolean('enabled').notNull(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.userId, t.eventType, t.channel] })],
);

/** Emails waiting to be sent, retried with backoff until sent or given up. */
export const emailOutbox = notifySchema.table(
  'email_outbox',
  {
    id: uuid('id').primaryKey(),
    userId: uuid('user_id').notNull(),
    eventId: uuid('event_id').references(() => events.id),
    toAddress: text('to_address').notNull(),
    subject: text('subject').notNull(),
    text: text('text').notNull(),
    html: text('html').notNull(),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true }).notNull().defaultNow(),
    sentAt: timestamp('sent_at', { withTimezone: true }),
    /** Given up after too many failures. */
    failedAt: timestamp('failed_at', { withTimezone: true }),
    lastError: text('last_error'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [unique('email_outbox_event_user').on(t.eventId, t.userId), index('email_outbox_pending').on(t.sentAt, t.nextAttemptAt)],
);

export const webhooks = notifySchema.table(
  'webhooks',
  {
    id: uuid('id').primaryKey(),
    userId: uuid('user_id').notNull(),
    url: text('url').notNull(),
    description: text('description'),
    /** Event types delivered to this endpoint (`*` for all the user may receive). */
    eventTypes: text('event_types').array().notNull(),
    /** The signing secret (`whsec_…`), sealed; shown to the user once. */
    secretSealed: text('secret_sealed').notNull(),
    active: boolean('active').notNull().default(true),
    consecutiveFailures: integer('consecutive_failures').notNull().default(0),
    disabledAt: timestamp('disabled_at', { withTimezone: true }),
    disabledReason: text('disabled_reason'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('webhooks_user').on(t.userId)],
);

/** One event to one endpoint: the send queue and the delivery log in one row. */
export const webhookDeliveries = notifySchema.table(
  'webhook_deliveries',
  {
    id: uuid('id').primaryKey(),
    webhookId: uuid('webhook_id')
      .notNull()
      .references(() => webhooks.id, { onDelete: 'cascade' }),
    /** Null for a test delivery. */
    eventId: uuid('event_id').references(() => events.id),
    eventType: text('event_type').notNull(),
    /** The JSON body sent (the Standard Webhooks payload). */
    payload: jsonb('payload').notNull(),
    /** pending | succeeded | failed (given up) */
    state: text('state').notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true }).notNull().defaultNow(),
    responseStatus: integer('response_status'),
    responseMs: integer('response_ms'),
    lastError: text('last_error'),
    deliveredAt: timestamp('delivered_at', { withTimezone: true }),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [unique('webhook_deliveries_webhook_event').on(t.webhookId, t.eventId), index('webhook_deliveries_pending').on(t.state, t.nextAttemptAt), index('webhook_deliveries_webhook_created').on(t.webhookId, t.createdAt)],
);

