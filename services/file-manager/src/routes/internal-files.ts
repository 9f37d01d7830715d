/**
 * What job-processor needs of a user's input files: at job creation, whether a file exists, whose it
 * is and what its validation report says; at submission, its bytes (streamed on to a Cloudgene server)
 * or a signed expiring link (handed to a WES server that fetches the input itself).
 */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '@shared/app.ts';
import { requireService } from '@shared/auth.ts';
import { HttpProblem } from '@shared/errors.ts';
import { jsonBody, jsonContent } from '@shared/openapi.ts';
import { InternalStoredFileSchema } from '@shared/schemas/files.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { storedFiles } from '@db/schema/files.ts';
import { eq } from 'drizzle-orm';
import type { FileManagerDomain } from '../domain.ts';
import type { StoredFileRow } from '../uploads.ts';
import { DownloadLinkSchema, fileView, LinkRequestSchema, serveFileContent, signedDownloadLink } from './files.ts';

/** Only job-processor reads any user's files. */
const onlyReaders = requireService('job-processor');

const params = z.object({ id: z.uuid().openapi({ param: { name: 'id', in: 'path' } }) });
const binary = { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } };

const describeFile = createRoute({
  method: 'get',
  path: '/internal/files/{id}',
  tags: ['Internal'],
  security: [{ bearerAuth: [] }],
  middleware: [onlyReaders] as const,
  summary: "Any user's file with its owner and validation report (job-processor only)",
  request: { params },
  responses: { 200: { description: 'The file.', ...jsonContent(InternalStoredFileSchema) }, ...problemResponses(400, 401, 403, 404) },
});

const fileContent = createRoute({
  method: 'get',
  path: '/internal/files/{id}/content',
  tags: ['Internal'],
  security: [{ bearerAuth: [] }],
  middleware: [onlyReaders] as const,
  summary: "Any user's file's bytes, streamed; honours Range and If-None-Match like the public route (job-processor only)",
  request: { params, headers: z.object({ range: z.string().max(200).optional() }) },
  responses: {
    200: { description: 'The whole file.', content: binary },
    206: { description: 'The requested range.', content: binary },
    304: { description: 'Unchanged (ETag matched).' },
    ...problemResponses(400, 401, 403, 404, 416),
  },
});

const createLink = createRoute({
  method: 'post',
  path: '/internal/files/{id}/link',
  tags: ['Internal'],
  security: [{ bearerAuth: [] }],
  middleware: [onlyReaders] as const,
  summary: "A signed, expiring public download link to any user's file, for a server that fetches inputs itself (job-processor only)",
  request: { params, ...jsonBody(LinkRequestSchema) },
  responses: { 201: { description: 'The link.', ...jsonContent(DownloadLinkSchema) }, ...problemResponses(400, 401, 403, 404, 422) },
});

export function internalFileRoutes(domain: FileManagerDomain) {
  const app = new OpenAPIHono<AppEnv>();
  const fileById = async (id: string): Promise<StoredFileRow> => {
    const [row] = await domain.db.select().from(storedFiles).where(eq(storedFiles.id, id));
    if (!row) throw new HttpProblem(404, 'file_not_found', 'No such file.');
    return row;
  };

  app.openapi(describeFile, async (c) => {
    const row = await fileById(c.req.valid('param').id);
    return c.json({ ...fileView(row), userId: row.userId }, 200);
  });

  app.openapi(fileContent, async (c) => {
    const row = await fileById(c.req.valid('param').id);
    return serveFileContent(c, domain.storage, row, c.req.valid('header').range);
  });

  app.openapi(createLink, async (c) => {
    const row = await fileById(c.req.valid('param').id);
    return c.json(signedDownloadLink(domain, row.id, c.req.valid('json').expiresInSeconds), 201);
  });

  return app;
}
