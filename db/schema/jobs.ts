/** job-processor tables: jobs (parents and children) and the transactional outbox of events. */
import { sql } from 'drizzle-orm';
import { index, integer, jsonb, pgSchema, text, timestamp, uuid, type AnyPgColumn } from 'drizzle-orm/pg-core';
import { outboxTable } from './outbox.ts';

export const jobsSchema = pgSchema('jobs');

export const jobs = jobsSchema.table(
  'jobs',
  {
    id: uuid('id').primaryKey(),
    userId: uuid('user_id').notNull(),
    parentId: uuid('parent_id').references((): AnyPgColumn => jobs.id),
    name: text('name').notNull(),
    /** queued | submitting | running | exporting | completed | failed | cancelled | expired | partial */
    state: text('state').notNull().default('queued'),
    progress: integer('progress').notNull().default(0),
    serviceId: uuid('service_id'),
    panelId: text('panel_id'),
    request: jsonb('request').notNull().default(sql`'{}'::jsonb`),
    externalId: text('external_id'),
    externalState: text('external_state'),
    errorCode: text('error_code'),
    errorMessage: text('error_message'),
    attempts: integer('attempts').notNull().default(0),
    nextPollAt: timestamp('next_poll_at', { withTimezone: true }),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('jobs_user_created').on(t.userId, t.createdAt), index('jobs_state_next_poll').on(t.state, t.nextPollAt)],
);

export const outbox = outboxTable(jobsSchema);
