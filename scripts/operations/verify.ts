/**
 * The comparisons a restore makes against the manifest, each answering differences rather than
 * throwing, so one run reports everything that is wrong: row counts table by table, the restored
 * `files.stored_files` against the manifest's list, and the stored files' bytes against the checksums
 * taken at backup time and file-manager's own records.
 */
import type { FileStorage } from '../../services/file-manager/src/storage.ts';
import { mapLimit, sha256File } from './checksum.ts';
import type { DumpFile, FileItem, Manifest } from './manifest.ts';
import { copyObject, type StoredFileRow } from './stored-files.ts';
import { join } from 'node:path';
import { existsSync } from 'node:fs';

export interface Difference {
  /** What was checked: `dump`, `restore`, `rows`, `table`, `migrations`, `file-record`, `file`, `secret`. */
  check: string;
  subject: string;
  expected: string;
  actual: string;
}

/** What a restored database holds, per schema; `null` tables when the schema could not be restored. */
export interface RestoredSchema {
  tables: Record<string, number> | null;
  migrationRows: number | null;
}

/** Checks every database file the manifest names against its size and SHA-256. */
export async function verifyDumpFiles(backupDir: string, manifest: Manifest): Promise<Difference[]> {
  const files: DumpFile[] = [];
  for (const entry of Object.values(manifest.schemas)) {
    if (entry.dump) files.push(entry.dump);
    if (entry.migrations?.dump) files.push(entry.migrations.dump);
  }
  if (manifest.pglite) files.push(manifest.pglite.dataDir);
  const out: Difference[] = [];
  for (const file of files) {
    const path = join(backupDir, 'db', file.file);
    if (!existsSync(path)) {
      out.push({ check: 'dump', subject: `db/${file.file}`, expected: `sha256 ${short(file.sha256)}`, actual: 'missing' });
      continue;
    }
    const found = await sha256File(path);
    if (found.sha256 !== file.sha256 || found.bytes !== file.bytes) {
      out.push({ check: 'dump', subject: `db/${file.file}`, expected: `${file.bytes} B sha256 ${short(file.sha256)}`, actual: `${found.bytes} B sha256 ${short(found.sha256)}` });
    }
  }
  return out;
}

/** Row counts and table sets, schema by schema, plus each schema's migration bookkeeping rows. */
export function compareCounts(manifest: Manifest, restored: Record<string, RestoredSchema>): Difference[] {
  const out: Difference[] = [];
  for (const [schema, entry] of Object.entries(manifest.schemas)) {
    const got = restored[schema];
    if (!got?.tables) {
      out.push({ check: 'rows', subject: `${schema}.*`, expected: `${Object.keys(entry.tables).length} tables`, actual: 'schema not restored' });
      continue;
    }
    for (const [table, rows] of Object.entries(entry.tables)) {
      const actual = got.tables[table];
      if (actual === undefined) out.push({ check: 'table', subject: `${schema}.${table}`, expected: `${rows} rows`, actual: 'table missing' });
      else if (actual !== rows) out.push({ check: 'rows', subject: `${schema}.${table}`, expected: String(rows), actual: String(actual) });
    }
    for (const table of Object.keys(got.tables)) {
      if (!(table in entry.tables)) out.push({ check: 'table', subject: `${schema}.${table}`, expected: 'not in the backup', actual: `${got.tables[table]} rows` });
    }
    const expectedMigrations = entry.migrations?.rows ?? null;
    if (expectedMigrations !== got.migrationRows) {
      out.push({ check: 'migrations', subject: entry.migrations?.table ?? `drizzle.__migrations_${schema}`, expected: String(expectedMigrations ?? 'none'), actual: String(got.migrationRows ?? 'none') });
    }
  }
  return out;
}

/** The restored `files.stored_files` must list exactly the manifest's files, with the same records. */
export function compareFileRecords(items: FileItem[], restored: StoredFileRow[]): Difference[] {
  const out: Difference[] = [];
  const byId = new Map(restored.map((r) => [r.id, r]));
  for (const item of items) {
    const row = byId.get(item.id);
    byId.delete(item.id);
    const expected = `${item.storageKey} ${item.sizeBytes} B sha256 ${short(item.recordedSha256)}`;
    if (!row) out.push({ check: 'file-record', subject: item.id, expected, actual: 'no row in files.stored_files' });
    else if (row.storageKey !== item.storageKey || row.sizeBytes !== item.sizeBytes || row.sha256 !== item.recordedSha256) {
      out.push({ check: 'file-record', subject: item.id, expected, actual: `${row.storageKey} ${row.sizeBytes} B sha256 ${short(row.sha256)}` });
    }
  }
  for (const row of byId.values()) {
    out.push({ check: 'file-record', subject: row.id, expected: 'not in the manifest', actual: `${row.storageKey} ${row.sizeBytes} B` });
  }
  return out;
}

/**
 * Hashes every stored file in `storage` (the backup's copy, or a storage directory checked in place)
 * against the checksum taken at backup time; files that already differed from file-manager's records
 * at backup time are differences too (the restored platform would hold them as they are).
 */
export async function verifyStoredFiles(items: FileItem[], storage: FileStorage, concurrency = 4): Promise<{ differences: Difference[]; bytes: number }> {
  let bytes = 0;
  const results = await mapLimit(items, concurrency, async (item): Promise<Difference[]> => {
    const out: Difference[] = [];
    if (item.status !== 'ok') {
      out.push({
        check: 'file',
        subject: `${item.id} (at backup time)`,
        expected: `${item.sizeBytes} B sha256 ${short(item.recordedSha256)} (recorded)`,
        actual: item.status === 'missing' ? 'missing from storage' : `${item.bytes} B sha256 ${short(item.sha256 ?? '')}`,
      });
    }
    if (item.sha256 === null) return out;
    const found = await copyObject(storage, null, item.storageKey);
    bytes += found?.bytes ?? 0;
    if (!found) out.push({ check: 'file', subject: item.id, expected: `sha256 ${short(item.sha256)}`, actual: 'missing' });
    else if (found.sha256 !== item.sha256 || found.bytes !== item.bytes) {
      out.push({ check: 'file', subject: item.id, expected: `${item.bytes} B sha256 ${short(item.sha256)}`, actual: `${found.bytes} B sha256 ${short(found.sha256)}` });
    }
    return out;
  });
  return { differences: results.flat(), bytes };
}

/** Key files copied into the backup, against their recorded fingerprints. */
export async function verifySecrets(backupDir: string, manifest: Manifest): Promise<Difference[]> {
  if (!manifest.secrets.included) return [];
  const out: Difference[] = [];
  for (const file of manifest.secrets.files) {
    const path = join(backupDir, 'secrets', file.name);
    const found = existsSync(path) ? await sha256File(path) : null;
    if (!found || found.sha256 !== file.sha256) {
      out.push({ check: 'secret', subject: `secrets/${file.name}`, expected: `sha256 ${short(file.sha256)}`, actual: found ? `sha256 ${short(found.sha256)}` : 'missing' });
    }
  }
  return out;
}

function short(sha: string): string {
  return sha.length > 16 ? `${sha.slice(0, 16)}…` : sha;
}
