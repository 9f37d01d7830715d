/**
 * manifest.json: what a backup holds and what it held at backup time, written last (a backup
 * directory without it is not a backup). Restore reads it through the same schema, so a hand-edited
 * or truncated manifest is refused with the path of the bad field, and names inside it (dump files,
 * storage keys) cannot point outside the backup directory.
 */
import { z } from '@hono/zod-openapi';
import { join } from 'node:path';

export const MANIFEST_NAME = 'manifest.json';
export const MANIFEST_FORMAT = 'fip-backup';
export const MANIFEST_FORMAT_VERSION = 1;

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'a lowercase hex SHA-256');
const count = z.number().int().nonnegative();
/** A file inside the backup's `db/` folder: a plain name, never a path. */
const dumpName = z.string().regex(/^[a-z0-9_][a-z0-9_.-]*$/, 'a plain file name');

const dumpFile = z.object({ file: dumpName, bytes: count, sha256 });
export type DumpFile = z.infer<typeof dumpFile>;

const migrations = z.object({
  /** `drizzle.__migrations_<schema>`. */
  table: z.string(),
  rows: count,
  /** The newest applied migration's tag (from the journal) and timestamp. */
  last: z.string().nullable(),
  lastCreatedAt: z.number().nullable(),
  /** PostgreSQL backups: the bookkeeping table's own dump (it lives outside the schema). */
  dump: dumpFile.optional(),
});

const schemaEntry = z.object({
  /** PostgreSQL backups: index into `databases`. */
  database: count.optional(),
  /** PostgreSQL backups: `pg_dump -Fc -n <schema>`. */
  dump: dumpFile.optional(),
  /** Exact row counts per table, from the snapshot the dump was taken from. */
  tables: z.record(z.string(), count),
  migrations: migrations.nullable(),
});
export type SchemaEntry = z.infer<typeof schemaEntry>;

export const FILE_STATUSES = ['ok', 'missing', 'size_mismatch', 'checksum_mismatch'] as const;
export type FileStatus = (typeof FILE_STATUSES)[number];

const fileItem = z.object({
  id: z.string(),
  storageKey: z.string().regex(/^[A-Za-z0-9_-]{8,128}$/, "file-manager's storage key form"),
  /** As file-manager recorded them. */
  sizeBytes: count,
  recordedSha256: z.string(),
  /** Computed from the bytes on disk at backup time (null when the object was missing). */
  sha256: sha256.nullable(),
  bytes: count.nullable(),
  status: z.enum(FILE_STATUSES),
});
export type FileItem = z.infer<typeof fileItem>;

const secretFile = z.object({ name: dumpName, bytes: count, sha256 });

export const manifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  formatVersion: z.literal(MANIFEST_FORMAT_VERSION),
  platformVersion: z.string(),
  mode: z.enum(['postgres', 'pglite']),
  /** When the snapshot was taken (the state the backup holds). */
  createdAt: z.string(),
  completedAt: z.string(),
  databases: z.array(
    z.object({
      /** The URL without its password (PostgreSQL) or the data directory (PGlite). */
      url: z.string(),
      serverVersion: z.string(),
      schemas: z.array(z.string()),
      /** PostgreSQL: the exported snapshot every dump and count of this database used. */
      snapshot: z.string().nullable(),
    }),
  ),
  schemas: z.record(z.string(), schemaEntry),
  /** Standalone backups: the embedded data directory (PGlite dumpDataDir, gzip tarball). */
  pglite: z.object({ dataDir: dumpFile }).optional(),
  files: z.object({
    /** false for `--no-files`: listed and checked, contents not copied. */
    included: z.boolean(),
    storageDir: z.string(),
    count,
    totalBytes: count,
    /** Items whose bytes on disk differed from file-manager's record at backup time. */
    mismatches: count,
    items: z.array(fileItem),
  }),
  /** Standalone key files (DATA_DIR/secrets): fingerprints always, contents unless `--no-secrets`. */
  secrets: z.object({ included: z.boolean(), files: z.array(secretFile) }),
  durationsMs: z.record(z.string(), z.number()).optional(),
});

export type Manifest = z.infer<typeof manifestSchema>;

/** Reads and validates `<dir>/manifest.json`; throws a message an operator can act on. */
export async function readManifest(dir: string): Promise<Manifest> {
  const file = Bun.file(join(dir, MANIFEST_NAME));
  if (!(await file.exists())) throw new Error(`${dir} has no ${MANIFEST_NAME}: not a complete backup (an interrupted one is left as .<name>.partial)`);
  let raw: unknown;
  try {
    raw = await file.json();
  } catch {
    throw new Error(`${join(dir, MANIFEST_NAME)} is not valid JSON`);
  }
  const version = (raw as { formatVersion?: unknown } | null)?.formatVersion;
  if (typeof version === 'number' && version > MANIFEST_FORMAT_VERSION) {
    throw new Error(`${MANIFEST_NAME} has format version ${version}; this platform reads up to ${MANIFEST_FORMAT_VERSION} (restore with a newer release)`);
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new Error(`${join(dir, MANIFEST_NAME)} is not a valid backup manifest: ${issues.join('; ')}`);
  }
  return parsed.data;
}
