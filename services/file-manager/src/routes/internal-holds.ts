/** job-processor holds the files a job uses, so neither their owner nor retention deletes them mid-run. */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '@shared/app.ts';
import { requireService } from '@shared/auth.ts';
import { HttpProblem } from '@shared/errors.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { fileHolds, storedFiles } from '@db/schema/files.ts';
import { and, eq } from 'drizzle-orm';
import type { FileManagerDomain } from '../domain.ts';

/** Only job-processor holds files. */
const onlyHolders = requireService('job-processor');
const params = z.object({ id: z.uuid(), jobId: z.uuid() });

const hold = createRoute({
  method: 'put',
  path: '/internal/files/{id}/holds/{jobId}',
  tags: ['Internal'],
  security: [{ bearerAuth: [] }],
  middleware: [onlyHolders] as const,
  summary: 'A job starts using a file (idempotent)',
  request: { params },
  responses: { 204: { description: 'Held.' }, ...problemResponses(400, 401, 403, 404) },
});

const release = createRoute({
  method: 'delete',
  path: '/internal/files/{id}/holds/{jobId}',
  tags: ['Internal'],
  security: [{ bearerAuth: [] }],
  middleware: [onlyHolders] as const,
  summary: 'The job no longer uses the file (idempotent)',
  request: { params },
  responses: { 204: { description: 'Released.' }, ...problemResponses(400, 401, 403) },
});

export function internalHoldRoutes(domain: FileManagerDomain) {
  const app = new OpenAPIHono<AppEnv>();

  app.openapi(hold, async (c) => {
    const { id, jobId } = c.req.valid('param');
    const [file] = await domain.db.select({ id: storedFiles.id }).from(storedFiles).where(eq(storedFiles.id, id));
    if (!file) throw new HttpProblem(404, 'file_not_found', 'No such file.');
    await domain.db.insert(fileHolds).values({ fileId: id, jobId }).onConflictDoNothing();
    return c.body(null, 204);
  });

  app.openapi(release, async (c) => {
    const { id, jobId } = c.req.valid('param');
    await domain.db.delete(fileHolds).where(and(eq(fileHolds.fileId, id), eq(fileHolds.jobId, jobId)));
    return c.body(null, 204);
  });

  return app;
}
