/**
 * file-manager's stored objects: the list comes from `files.stored_files` (the same snapshot as the
 * dump), the bytes through file-manager's own storage module, so the backup's `files/` folder has the
 * exact layout of a STORAGE_DIR (`objects/<2>/<key>`) and can be put back as one.
 */
import type { FileStorage } from '../../services/file-manager/src/storage.ts';
import { mapLimit } from './checksum.ts';
import type { FileItem, FileStatus } from './manifest.ts';
import { toNumber, type SqlRunner } from './sql-runner.ts';

export interface StoredFileRow {
  id: string;
  storageKey: string;
  sizeBytes: number;
  sha256: string;
}

/** Every stored file as file-manager recorded it, by id; empty when the files schema has no table yet. */
export async function listStoredFiles(runner: SqlRunner): Promise<StoredFileRow[]> {
  const [found] = await runner.query<{ oid: unknown }>(`select to_regclass('files.stored_files')::text as oid`);
  if (!found?.oid) return [];
  const rows = await runner.query<{ id: string; storage_key: string; size_bytes: unknown; sha256: string }>(
    'select id::text as id, storage_key, size_bytes, sha256 from files.stored_files order by id',
  );
  return rows.map((r) => ({ id: r.id, storageKey: r.storage_key, sizeBytes: toNumber(r.size_bytes), sha256: r.sha256 }));
}

/**
 * Reads one object, hashing it and (when `target` is given) writing it under the same key there, in
 * one pass. Null when the object is not there (or vanished while being read: retention deletes the
 * row first, then the bytes).
 */
export async function copyObject(source: FileStorage, target: FileStorage | null, key: string): Promise<{ sha256: string; bytes: number } | null> {
  if ((await source.size(key)) === null) return null;
  const writer = target ? await target.createWriter() : null;
  const hasher = new Bun.CryptoHasher('sha256');
  let bytes = 0;
  try {
    for await (const chunk of source.read(key)) {
      hasher.update(chunk);
      bytes += chunk.byteLength;
      if (writer) await writer.write(chunk);
    }
    if (writer) await writer.commit(key);
  } catch (err) {
    await writer?.abort();
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  return { sha256: hasher.digest('hex'), bytes };
}

export function fileStatus(row: { sizeBytes: number; recordedSha256: string }, found: { sha256: string; bytes: number } | null): FileStatus {
  if (!found) return 'missing';
  if (found.bytes !== row.sizeBytes) return 'size_mismatch';
  return found.sha256 === row.recordedSha256.toLowerCase() ? 'ok' : 'checksum_mismatch';
}

/** Checks (and copies into `target`, unless null) every listed object; a few at a time. */
export async function backUpStoredFiles(rows: StoredFileRow[], source: FileStorage, target: FileStorage | null, concurrency = 4): Promise<FileItem[]> {
  return mapLimit(rows, concurrency, async (row) => {
    const found = await copyObject(source, target, row.storageKey);
    return {
      id: row.id,
      storageKey: row.storageKey,
      sizeBytes: row.sizeBytes,
      recordedSha256: row.sha256,
      sha256: found?.sha256 ?? null,
      bytes: found?.bytes ?? null,
      status: fileStatus({ sizeBytes: row.sizeBytes, recordedSha256: row.sha256 }, found),
    };
  });
}
