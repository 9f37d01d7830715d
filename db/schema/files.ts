/** file-manager tables: stored files (inputs and results) with checksums and validation reports. */
import { bigint, index, jsonb, pgSchema, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core';

export const filesSchema = pgSchema('files');

export const storedFiles = filesSchema.table(
  'stored_files',
  {
    id: uuid('id').primaryKey(),
    userId: uuid('user_id').notNull(),
    /** input | result */
    kind: text('kind').notNull(),
    originalName: text('original_name').notNull(),
    contentType: text('content_type').notNull(),
    sizeBytes: bigint('size_bytes', { mode: 'number' }).notNull(),
    sha256: text('sha256').notNull(),
    md5: text('md5').notNull(),
    /** Generated storage key; never derived from the user's file name. */
    storageKey: text('storage_key').notNull().unique(),
    validation: jsonb('validation'),
    jobId: uuid('job_id'),
    /** For results: where they came from (source service, external job and file name, panel). */
    provenance: jsonb('provenance'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp('expires_at', { withTimezone: true }),
    /**
     * For results: job-processor's name for this download (e.g. `<jobId>:<attempt>:<file>`). Unique, so a
     * retried download after a crash finds the stored file instead of storing it twice.
     */
    resultKey: text('result_key').unique(),
  },
  (t) => [index('stored_files_user_created').on(t.userId, t.createdAt)],
);

/** Jobs holding a file: while any hold exists the file cannot be deleted, by its owner or by retention. */
export const fileHolds = filesSchema.table(
  'file_holds',
  {
    fileId: uuid('file_id')
      .notNull()
      .references(() => storedFiles.id, { onDelete: 'cascade' }),
    jobId: uuid('job_id').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.fileId, t.jobId] })],
);
