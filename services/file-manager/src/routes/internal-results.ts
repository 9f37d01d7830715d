/**
 * job-processor streams each downloaded result file into storage here, saying what it expects
 * (checksum and size when the server published them) and where it came from. A mismatch keeps nothing.
 */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '@shared/app.ts';
import { requireRole } from '@shared/auth.ts';
import { HttpProblem } from '@shared/errors.ts';
import { jsonContent } from '@shared/openapi.ts';
import { StoredFileSchema } from '@shared/schemas/files.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import type { FileManagerDomain } from '../domain.ts';
import { cleanFileName, receiveUpload } from '../uploads.ts';
import { fileView } from './files.ts';

/** Services that may store results for users. */
const STORE_FOR = new Set(['job-processor']);

const storeResult = createRoute({
  method: 'post',
  path: '/internal/results',
  tags: ['Internal'],
  security: [{ bearerAuth: [] }],
  middleware: [requireRole('service')] as const,
  summary: 'Store a result file for a user and job (job-processor only), verified against the expected checksum',
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
    }),
    body: { content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } } },
  },
  responses: { 201: { description: 'Stored.', ...jsonContent(StoredFileSchema) }, ...problemResponses(400, 401, 403, 413, 422) },
});

export function internalResultRoutes(domain: FileManagerDomain) {
  const app = new OpenAPIHono<AppEnv>();
  app.openapi(storeResult, async (c) => {
    if (!STORE_FOR.has(c.get('identity').subject)) throw new HttpProblem(403, 'forbidden', 'Only job-processor stores results.');
    const q = c.req.valid('query');
    const body = c.req.raw.body;
    if (!body) throw new HttpProblem(422, 'empty_file', 'The result is empty.');
    const name = cleanFileName(q.name);
    const row = await receiveUpload(
      { db: domain.db, storage: domain.storage, limits: domain.limits },
      {
        userId: q.userId,
        kind: 'result',
        jobId: q.jobId,
        originalName: name,
        contentType: /\.gz$/i.test(name) ? 'application/gzip' : /\.zip$/i.test(name) ? 'application/zip' : 'application/octet-stream',
        body,
        expected: { sha256: q.sha256, sizeBytes: q.sizeBytes },
        provenance: { sourceService: q.sourceService, externalJobId: q.externalJobId ?? null, externalName: q.externalName ?? null, panel: q.panel ?? null },
      },
    );
    return c.json(fileView(row), 201);
  });
  return app;
}
