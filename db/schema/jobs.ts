/** job-processor tables: jobs (parents and children, which are also the durable queue), their history and result files, and the outbox. */
import { sql } from 'drizzle-orm';
import { bigint, index, integer, jsonb, pgSchema, text, timestamp, unique, uniqueIndex, uuid, type AnyPgColumn } from 'drizzle-orm/pg-core';
import { outboxTable } from './outbox.ts';

export const jobsSchema = pgSchema('jobs');

/**
 * The states a job never leaves, as a SQL predicate over `state`. The partial indexes below and the
 * queries meant to use them (job-processor's claim and quota count) share this one text with constants
 * inlined: PostgreSQL uses a partial index only when it can prove the query implies the index's predicate,
 * which it cannot do from bound parameters. Must list job-processor's TERMINAL_STATES (domain.ts);
 * tests/job-processor/job-states.test.ts checks that they agree.
 */
export const JOB_OPEN = sql.raw(`state not in ('completed', 'failed', 'cancelled', 'expired', 'partial')`);

export const jobs = jobsSchema.table(
  'jobs',
  {
    id: uuid('id').primaryKey(),
    userId: uuid('user_id').notNull(),
    /** Set on the children of a federated job; a parent has no service of its own. */
    parentId: uuid('parent_id').references((): AnyPgColumn => jobs.id),
    name: text('name').notNull(),
    description: text('description'),
    /** queued | submitting | running | exporting | completed | failed | cancelled | expired | partial (parents only) */
    state: text('state').notNull().default('queued'),
    progress: integer('progress').notNull().default(0),
    serviceId: uuid('service_id'),
    /** The panel's id as the server knows it (`hapmap-2`). */
    panelId: text('panel_id'),
    /** What the user asked for: inputFileIds, build, phasing, population, mode, r2Filter. */
    request: jsonb('request').notNull().default(sql`'{}'::jsonb`),
    /** The catalogue entry as it was at submission: service (slug, protocol, base URL, app id, limits) and panel (id, key). */
    target: jsonb('target'),
    /** 1 for the first run; a retry starts the next attempt on the same job. */
    attempt: integer('attempt').notNull().default(1),
    /** The job name sent upstream (`fip-<id>-<attempt>`): how a restarted worker finds a submission it cannot remember. */
    externalName: text('external_name'),
    externalId: text('external_id'),
    externalState: text('external_state'),
    /** Latest step messages from the server: `[{step, level, message, at}]`. */
    steps: jsonb('steps').notNull().default(sql`'[]'::jsonb`),
    errorCode: text('error_code'),
    errorMessage: text('error_message'),
    errorHint: text('error_hint'),
    /** Transient failures in a row (network, 5xx, maintenance); reset by any success. */
    attempts: integer('attempts').notNull().default(0),
    pollCount: integer('poll_count').notNull().default(0),
    /** When the worker should look at this job next (submit, poll, retrieve, cancel). */
    nextPollAt: timestamp('next_poll_at', { withTimezone: true }),
    leaseOwner: text('lease_owner'),
    leaseExpiresAt: timestamp('lease_expires_at', { withTimezone: true }),
    /** Set before calling the server to submit: a job found `submitting` after a crash is reconciled, not resubmitted blindly. */
    submitStartedAt: timestamp('submit_started_at', { withTimezone: true }),
    cancelRequestedAt: timestamp('cancel_requested_at', { withTimezone: true }),
    /** The result-zip password the platform generated, sealed with the service's encryption key. */
    passwordSealed: text('password_sealed'),
    /** When the server deletes the results (Cloudgene `deletedOn`). */
    resultsExpireAt: timestamp('results_expire_at', { withTimezone: true }),
    idempotencyKey: text('idempotency_key'),
    startedAt: timestamp('started_at', { withTimezone: true }),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index('jobs_user_created').on(t.userId, t.createdAt),
    // The queue: the claim reads open jobs of a service in due order; ended jobs (most rows, over time) are not in it.
    index('jobs_claimable')
      .on(t.nextPollAt.asc().nullsFirst(), t.createdAt.asc())
      .where(sql`service_id is not null and ${JOB_OPEN}`),
    // A user's open jobs on a service: the quota count under the advisory lock, and waking the next queued job when a slot frees.
    index('jobs_user_service_open').on(t.userId, t.serviceId, t.createdAt).where(sql`service_id is not null and ${JOB_OPEN}`),
    index('jobs_parent').on(t.parentId),
    uniqueIndex('jobs_user_idempotency_key').on(t.userId, t.idempotencyKey).where(sql`idempotency_key is not null`),
  ],
);

/** Every state a job passed through, and other lines worth keeping (retries, cancellations). */
export const jobHistory = jobsSchema.table(
  'job_history',
  {
    id: uuid('id').primaryKey(),
    jobId: uuid('job_id')
      .notNull()
      .references(() => jobs.id),
    at: timestamp('at', { withTimezone: true }).notNull(),
    state: text('state').notNull(),
    message: text('message'),
  },
  (t) => [index('job_history_job_at').on(t.jobId, t.at)],
);

/** The result files a server published for a job, each retrieved once into file-manager. */
export const jobResults = jobsSchema.table(
  'job_results',
  {
    id: uuid('id').primaryKey(),
    jobId: uuid('job_id')
      .notNull()
      .references(() => jobs.id),
    attempt: integer('attempt').notNull(),
    /** Relative name inside the server's output (`chr_20.zip`, `statistics/snps-excluded.txt`). */
    name: text('name').notNull(),
    /** How to fetch it: `{url}` or protocol-specific fields (Cloudgene file hash). */
    source: jsonb('source').notNull(),
    sizeBytes: bigint('size_bytes', { mode: 'number' }),
    /** pending | stored | failed */
    state: text('state').notNull().default('pending'),
    fileId: uuid('file_id'),
    error: text('error'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [unique('job_results_job_attempt_name').on(t.jobId, t.attempt, t.name)],
);

export const outbox = outboxTable(jobsSchema);
