/**
 * Receiving one upload without holding it in memory: bytes go to a temporary object while SHA-256
 * and MD5 are computed and the VCF validator reads them, all in one pass; the size limit and the
 * user's quota are enforced while streaming. Only a complete upload becomes a stored object and a
 * database row; any failure (a client that disconnects included) leaves neither.
 */
import type { Db } from '@shared/db.ts';
import { HttpProblem } from '@shared/errors.ts';
import { storedFiles } from '@db/schema/files.ts';
import { and, eq, sql } from 'drizzle-orm';
import type { FileStorage } from './storage.ts';
import { formatBytes } from '@shared/format-bytes.ts';

export interface StreamValidator {
  push(chunk: Uint8Array): void | Promise<void>;
  finish(): unknown;
}

export interface UploadLimits {
  maxBytes: number;
  quotaBytes: number;
  /** How long each kind is kept; null keeps it until its owner deletes it. */
  retentionMs?: { input: number | null; result: number | null };
}

export interface UploadRequest {
  userId: string;
  originalName: string;
  contentType: string;
  body: ReadableStream<Uint8Array>;
  /** Declared by the client; checked against limits before reading a byte. */
  contentLength?: number;
  validator?: StreamValidator | null;
  /** `input` (a user's upload, counted against the quota) or `result` (fetched for a job; not counted). */
  kind?: 'input' | 'result';
  jobId?: string | null;
  provenance?: Record<string, unknown> | null;
  /** When given, the stored bytes must match exactly or nothing is kept (422). */
  expected?: { sha256?: string; sizeBytes?: number };
  /** job-processor's key for a result: inserted with the row, so a second copy can never be stored. */
  resultKey?: string | null;
}

export type StoredFileRow = typeof storedFiles.$inferSelect;

/** A safe display name: the last path segment, no control characters, at most 255 characters. */
export function cleanFileName(name: string): string {
  const base = name.split(/[/\\]/).pop() ?? '';
  const cleaned = base
    .replace(/[\u0000-\u001f\u007f]/g, '')
    .trim()
    .slice(0, 255);
  return cleaned === '' || cleaned === '.' || cleaned === '..' ? 'upload' : cleaned;
}

/** Bytes of a user's inputs: what the quota limits (results never count against it). */
export async function bytesUsed(db: Db, userId: string): Promise<number> {
  const [row] = await db
    .select({ used: sql<string>`coalesce(sum(${storedFiles.sizeBytes}), 0)` })
    .from(storedFiles)
    .where(and(eq(storedFiles.userId, userId), eq(storedFiles.kind, 'input')));
  return Number(row?.used ?? 0);
}

export async function receiveUpload(
  deps: { db: Db; storage: FileStorage; limits: UploadLimits; now?: () => number },
  request: UploadRequest,
): Promise<StoredFileRow> {
  const now = deps.now ?? Date.now;
  const kind = request.kind ?? 'input';
  // Results must always land: they are the point of the job, so they never count against the quota.
  const used = kind === 'input' ? await bytesUsed(deps.db, request.userId) : 0;
  const allowed = Math.min(deps.limits.maxBytes, kind === 'input' ? deps.limits.quotaBytes - used : Number.MAX_SAFE_INTEGER);
  const tooLarge = () =>
    allowed < deps.limits.maxBytes
      ? new HttpProblem(413, 'quota_exceeded', `This upload would exceed your storage quota (${formatBytes(deps.limits.quotaBytes)}); delete files you no longer need.`)
      : new HttpProblem(413, 'file_too_large', `Files may be at most ${formatBytes(deps.limits.maxBytes)}.`);
  if (request.contentLength !== undefined && request.contentLength > allowed) throw tooLarge();

  const writer = await deps.storage.createWriter();
  const sha256 = new Bun.CryptoHasher('sha256');
  const md5 = new Bun.CryptoHasher('md5');
  let size = 0;
  try {
    const reader = request.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > allowed) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      sha256.update(value);
      md5.update(value);
      await request.validator?.push(value);
      await writer.write(value);
    }
    if (size === 0) throw new HttpProblem(422, 'empty_file', 'The upload is empty.');
    const digest = sha256.digest('hex');
    const expected = request.expected;
    if ((expected?.sha256 && expected.sha256.toLowerCase() !== digest) || (expected?.sizeBytes !== undefined && expected.sizeBytes !== size)) {
      throw new HttpProblem(422, 'checksum_mismatch', `The bytes received (${size} bytes, SHA-256 ${digest}) do not match what was expected.`, {
        extensions: { receivedSha256: digest, receivedSize: size },
      });
    }
    const retention = deps.limits.retentionMs?.[kind] ?? null;
    const id = Bun.randomUUIDv7();
    const storageKey = id.replace(/-/g, '');
    const validation = request.validator ? request.validator.finish() : null;
    await writer.commit(storageKey);
    try {
      const [row] = await deps.db
        .insert(storedFiles)
        .values({
          id,
          userId: request.userId,
          kind,
          jobId: request.jobId ?? null,
          resultKey: request.resultKey ?? null,
          provenance: request.provenance ?? null,
          originalName: request.originalName,
          contentType: request.contentType,
          sizeBytes: size,
          sha256: digest,
          md5: md5.digest('hex'),
          storageKey,
          validation: validation as Record<string, unknown> | null,
          createdAt: new Date(now()),
          expiresAt: retention ? new Date(now() + retention) : null,
        })
        .returning();
      return row!;
    } catch (err) {
      await deps.storage.remove(storageKey);
      throw err;
    }
  } catch (err) {
    await writer.abort();
    throw err;
  }
}
