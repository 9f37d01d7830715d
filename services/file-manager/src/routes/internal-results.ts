/**
 * job-processor streams each downloaded result file into storage here, saying what it expects
 * (checksum and size when the server published them) and where it came from. A mismatch keeps nothing.
 *
 * A result may carry job-processor's key for the download (`resultKey`, e.g. `<jobId>:<attempt>:<name>`).
 * The key is unique, so a worker that crashed after this service stored the file but before it recorded
 * the file id finds the stored file (`GET /internal/results?key=`, or a repeated POST answered 200)
 * instead of storing it twice; two workers racing with one key end with one file as well.
 */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '@shared/app.ts';
import { requireService } from '@shared/auth.ts';
import { isUniqueViolation } from '@shared/db.ts';
import { HttpProblem } from '@shared/errors.ts';
import { jsonContent } from '@shared/openapi.ts';
import { StoredFileSchema } from '@shared/schemas/files.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { storedFiles } from '@db/schema/files.ts';
import { eq } from 'drizzle-orm';
import type { FileManagerDomain } from '../domain.ts';
import { cleanFileName, receiveUpload, type StoredFileRow } from '../uploads.ts';
import { fileView } from './files.ts';

/** Only job-processor stores results for users. */
const onlyStorers = requireService('job-processor');

const ResultKey = z
  .string()
  .min(1)
  .max(300)
  .regex(/^[^\u0000-\u001f\u007f]+$/, 'no control characters')
  .openapi({ example: '0197a0b2-5c1e-7c3a-9f00-3b1f2a4c5d6e:1:chr20.zip' });

const storeResult = createRoute({
  method: 'post',
  path: '/internal/results',
  tags: ['Internal'],
  security: [{ bearerAuth: [] }],
  middleware: [onlyStorers] as const,
  summary: 'Store a result file for a user and job (job-processor only), verified against the expected checksum',
  description:
    'With `resultKey`, storing is idempotent: when a result with that key exists the body is not read and the ' +
    'existing file is answered with 200 (409 `result_key_conflict` when it is not the same result: another user ' +
    'or job, or a different checksum or size than the one given).',
  request: {
    query: z.object({
      userId: z.uuid(),
      jobId: z.uuid(),
      name: z.string().min(1).max(1024),
      sha256: z.string().regex(/^[0-9a-fA-F]{64}$/).optional(),
      sizeBytes: z.coerce.number().int().min(1).optional(),
      sourceService: z.string().min(1).max(200),
      externalJobId: z.string().max(200).optional(),
      externalName: z.string().max(1024).optional(),
      panel: z.string().max(200).optional(),
      resultKey: ResultKey.optional(),
    }),
    body: { content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } } },
  },
  responses: {
    200: { description: 'Already stored under this result key; nothing new was stored.', ...jsonContent(StoredFileSchema) },
    201: { description: 'Stored.', ...jsonContent(StoredFileSchema) },
    ...problemResponses(400, 401, 403, 409, 413, 422),
  },
});

const findResult = createRoute({
  method: 'get',
  path: '/internal/results',
  tags: ['Internal'],
  security: [{ bearerAuth: [] }],
  middleware: [onlyStorers] as const,
  summary: 'The result stored under a result key, so a download already stored can be skipped (job-processor only)',
  request: { query: z.object({ key: ResultKey }) },
  responses: { 200: { description: 'The stored result.', ...jsonContent(StoredFileSchema) }, ...problemResponses(400, 401, 403, 404) },
});

/** The stored row is the result the caller means, or the key was reused for something else (409). */
function sameResult(row: StoredFileRow, expected: { userId: string; jobId: string; sha256?: string; sizeBytes?: number }): StoredFileRow {
  const differs =
    row.userId !== expected.userId ||
    row.jobId !== expected.jobId ||
    (expected.sha256 !== undefined && expected.sha256.toLowerCase() !== row.sha256) ||
    (expected.sizeBytes !== undefined && expected.sizeBytes !== row.sizeBytes);
  if (differs) {
    throw new HttpProblem(409, 'result_key_conflict', 'A different result is already stored under this result key.', {
      extensions: { fileId: row.id, storedSha256: row.sha256, storedSize: row.sizeBytes },
    });
  }
  return row;
}

export function internalResultRoutes(domain: FileManagerDomain) {
  const app = new OpenAPIHono<AppEnv>();
  const byKey = async (key: string): Promise<StoredFileRow | undefined> =>
    (await domain.db.select().from(storedFiles).where(eq(storedFiles.resultKey, key)))[0];

  app.openapi(storeResult, async (c) => {
    const q = c.req.valid('query');
    const body = c.req.raw.body;
    if (q.resultKey !== undefined) {
      const existing = await byKey(q.resultKey);
      if (existing) {
        // Already stored: the bytes are not needed, so stop receiving them rather than store a copy.
        await body?.cancel().catch(() => {});
        return c.json(fileView(sameResult(existing, q)), 200);
      }
    }
    if (!body) throw new HttpProblem(422, 'empty_file', 'The result is empty.');
    const name = cleanFileName(q.name);
    let row;
    try {
      row = await domain.uploads.track(
        receiveUpload(
          { db: domain.db, storage: domain.storage, limits: domain.limits },
          {
            userId: q.userId,
            kind: 'result',
            jobId: q.jobId,
            originalName: name,
            contentType: /\.gz$/i.test(name) ? 'application/gzip' : /\.zip$/i.test(name) ? 'application/zip' : 'application/octet-stream',
            body,
            expected: { sha256: q.sha256, sizeBytes: q.sizeBytes },
            resultKey: q.resultKey ?? null,
            provenance: { sourceService: q.sourceService, externalJobId: q.externalJobId ?? null, externalName: q.externalName ?? null, panel: q.panel ?? null },
          },
        ),
      );
    } catch (err) {
      // Two requests that both found no result raced; the unique key let one row in, and this
      // request's object was removed with its failed insert. Answer the winner's file.
      const winner = q.resultKey !== undefined && isUniqueViolation(err) ? await byKey(q.resultKey) : undefined;
      if (!winner) throw err;
      return c.json(fileView(sameResult(winner, q)), 200);
    }
    return c.json(fileView(row), 201);
  });

  app.openapi(findResult, async (c) => {
    const row = await byKey(c.req.valid('query').key);
    if (!row) throw new HttpProblem(404, 'result_not_found', 'No result is stored under this key.');
    return c.json(fileView(row), 200);
  });

  return app;
}
