/**
 * The transactional outbox (DESIGN §5): a producer inserts an event row in the same transaction as
 * the state change; `shared/outbox-relay.ts` delivers each row at least once. Every producing schema
 * gets the same table shape from this one definition.
 */
import { index, integer, jsonb, text, timestamp, uuid, type PgSchema } from 'drizzle-orm/pg-core';

export function outboxTable(schema: PgSchema) {
  return schema.table(
    'outbox',
    {
      id: uuid('id').primaryKey(),
      type: text('type').notNull(),
      payload: jsonb('payload').notNull(),
      attempts: integer('attempts').notNull().default(0),
      nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true }).notNull().defaultNow(),
      deliveredAt: timestamp('delivered_at', { withTimezone: true }),
      createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    },
    (t) => [index('outbox_pending').on(t.deliveredAt, t.nextAttemptAt)],
  );
}

export type OutboxTable = ReturnType<typeof outboxTable>;
