/** Upload, list, describe, download and delete the signed-in user's files. */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '@shared/app.ts';
import { HttpProblem } from '@shared/errors.ts';
import { jsonBody, jsonContent } from '@shared/openapi.ts';
import { decodeCursor, encodeCursor, isUuidPosition, PageQuerySchema, pageOf } from '@shared/schemas/pagination.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { StoredFileSchema, type StoredFile } from '@shared/schemas/files.ts';
import type { Context } from 'hono';
import { fileHolds, storedFiles } from '@db/schema/files.ts';
import { and, desc, eq, lt, notExists, type SQL } from 'drizzle-orm';
import type { FileManagerDomain } from '../domain.ts';
import { contentDisposition, parseRange } from '../http-range.ts';
import { multipartBoundary, openMultipartFile } from '../multipart-stream.ts';
import type { FileStorage } from '../storage.ts';
import { cleanFileName, receiveUpload, type StoredFileRow } from '../uploads.ts';

const security = [{ bearerAuth: [] }];
const IdParam = z.object({ id: z.uuid().openapi({ param: { name: 'id', in: 'path' } }) });
const notFound = () => new HttpProblem(404, 'file_not_found', 'No such file.');

export function fileView(row: StoredFileRow): StoredFile {
  return {
    id: row.id,
    kind: row.kind as StoredFile['kind'],
    name: row.originalName,
    contentType: row.contentType,
    sizeBytes: row.sizeBytes,
    sha256: row.sha256,
    md5: row.md5,
    jobId: row.jobId,
    createdAt: row.createdAt.toISOString(),
    expiresAt: row.expiresAt?.toISOString() ?? null,
    validation: (row.validation as StoredFile['validation']) ?? null,
    provenance: (row.provenance as StoredFile['provenance']) ?? null,
  };
}

const upload = createRoute({
  method: 'post',
  path: '/files',
  tags: ['Files'],
  security,
  summary: 'Upload a file as the raw request body; VCFs are validated while they stream',
  description:
    'Send the bytes as the body (`Content-Type: application/octet-stream`) with the file name in `?name=` ' +
    '(or a percent-encoded `X-File-Name` header), or a browser form (`multipart/form-data`, fields before the ' +
    'file part are read, the file part streams). Files named `*.vcf`, `*.vcf.gz` or `*.vcf.bgz` get a pre-flight ' +
    'validation report; `build=hg19|hg38` (query or form field) declares the build to check contig naming against.',
  request: {
    query: z.object({
      name: z.string().min(1).max(1024).optional(),
      build: z.enum(['hg19', 'hg38']).optional(),
    }),
    headers: z.object({ 'x-file-name': z.string().max(3072).optional() }),
    body: {
      content: {
        'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) },
        // A plain schema object, not zod: a zod one would make the framework parse (buffer) the whole form.
        'multipart/form-data': {
          schema: {
            type: 'object',
            properties: { build: { type: 'string', enum: ['hg19', 'hg38'] }, file: { type: 'string', format: 'binary' } },
            required: ['file'],
          },
        },
      },
    },
  },
  responses: { 201: { description: 'Stored.', ...jsonContent(StoredFileSchema) }, ...problemResponses(400, 401, 403, 413, 422) },
});

const list = createRoute({
  method: 'get',
  path: '/files',
  tags: ['Files'],
  security,
  summary: 'Your files, newest first',
  request: { query: PageQuerySchema.extend({ kind: z.enum(['input', 'result']).optional(), jobId: z.uuid().optional() }) },
  responses: { 200: { description: 'A page of files.', ...jsonContent(pageOf(StoredFileSchema, 'StoredFilePage')) }, ...problemResponses(400, 401) },
});

const describe = createRoute({
  method: 'get',
  path: '/files/{id}',
  tags: ['Files'],
  security,
  summary: 'A file: metadata, checksums and its validation report',
  request: { params: IdParam },
  responses: { 200: { description: 'The file.', ...jsonContent(StoredFileSchema) }, ...problemResponses(400, 401, 404) },
});

const remove = createRoute({
  method: 'delete',
  path: '/files/{id}',
  tags: ['Files'],
  security,
  summary: 'Delete a file',
  request: { params: IdParam },
  responses: { 204: { description: 'Deleted.' }, ...problemResponses(400, 401, 403, 404, 409) },
});

const content = createRoute({
  method: 'get',
  path: '/files/{id}/content',
  tags: ['Files'],
  security,
  summary: 'The file’s bytes; honours Range (206), If-None-Match (ETag = SHA-256)',
  request: {
    params: IdParam,
    headers: z.object({ range: z.string().max(200).optional() }),
    query: z.object({
      expires: z.string().max(20).optional().openapi({ description: 'From a signed link' }),
      sig: z.string().max(100).optional().openapi({ description: 'From a signed link; replaces the bearer token' }),
    }),
  },
  responses: {
    200: { description: 'The whole file.', content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } } },
    206: { description: 'The requested range.', content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } } },
    304: { description: 'Unchanged (ETag matched).' },
    ...problemResponses(400, 401, 403, 404, 416),
  },
});

/** What a caller may ask of a signed link: how long it stays valid. */
export const LinkRequestSchema = z.object({ expiresInSeconds: z.number().int().min(60).max(7 * 86_400).default(3600) });
export const DownloadLinkSchema = z.object({ url: z.string(), path: z.string(), expiresAt: z.string() }).openapi('DownloadLink');
export type DownloadLink = z.infer<typeof DownloadLinkSchema>;

const createLink = createRoute({
  method: 'post',
  path: '/files/{id}/link',
  tags: ['Files'],
  security,
  summary: 'A signed, expiring download link to hand the file to a server or a browser without a token',
  request: { params: IdParam, ...jsonBody(LinkRequestSchema) },
  responses: {
    201: { description: 'The link.', ...jsonContent(DownloadLinkSchema) },
    ...problemResponses(400, 401, 404, 422),
  },
});

/**
 * A signed link to `fileId`'s public content route, absolute on the public API URL. Whoever holds it can
 * read that one file until it expires; the content route checks the signature.
 */
export function signedDownloadLink(domain: Pick<FileManagerDomain, 'links' | 'publicApiUrl'>, fileId: string, expiresInSeconds: number): DownloadLink {
  const expiresAt = new Date(Date.now() + expiresInSeconds * 1000);
  const path = `/files/${fileId}/content?${domain.links.sign(fileId, expiresAt)}`;
  return { url: `${domain.publicApiUrl.replace(/\/+$/, '')}${path}`, path, expiresAt: expiresAt.toISOString() };
}

/**
 * Answers a GET or HEAD for a file's bytes, streamed from storage without buffering: ETag (the SHA-256)
 * with If-None-Match (304), a single Range (206, or 416 when unsatisfiable), else the whole file.
 * Callers decide who may read `row`; this only serves it.
 */
export function serveFileContent(c: Context<AppEnv>, storage: FileStorage, row: StoredFileRow, rangeHeader: string | undefined): Response {
  const etag = `"${row.sha256}"`;
  const common = {
    etag,
    'accept-ranges': 'bytes',
    'content-type': row.contentType,
    'content-disposition': contentDisposition(row.originalName),
    'cache-control': 'private, no-cache',
  };
  if (c.req.header('if-none-match') === etag) return c.body(null, 304, common);
  const range = parseRange(rangeHeader, row.sizeBytes);
  if (range.kind === 'unsatisfiable') {
    throw new HttpProblem(416, 'range_not_satisfiable', `The file has ${row.sizeBytes} bytes.`, {
      headers: { 'content-range': `bytes */${row.sizeBytes}` },
    });
  }
  const head = c.req.method === 'HEAD';
  if (range.kind === 'partial') {
    const length = range.end - range.start + 1;
    // HEAD answers the same headers without opening the file.
    const body = head ? new ReadableStream<Uint8Array>({ start: (ctl) => ctl.close() }) : storage.read(row.storageKey, range);
    return c.body(body, 206, { ...common, 'content-length': String(length), 'content-range': `bytes ${range.start}-${range.end}/${row.sizeBytes}` });
  }
  const body = head ? new ReadableStream<Uint8Array>({ start: (ctl) => ctl.close() }) : storage.read(row.storageKey);
  return c.body(body, 200, { ...common, 'content-length': String(row.sizeBytes) });
}

/** The caller's file (or any file for an admin); another user's file is 404, never 403. */
async function ownFile(domain: FileManagerDomain, c: Context<AppEnv>, id: string): Promise<StoredFileRow> {
  const identity = c.get('identity');
  const [row] = await domain.db.select().from(storedFiles).where(eq(storedFiles.id, id));
  if (!row) throw notFound();
  if (row.userId !== identity.subject && !identity.roles.includes('admin')) throw notFound();
  return row;
}

function userOf(c: Context<AppEnv>): string {
  const identity = c.get('identity');
  if (identity.kind !== 'user') throw new HttpProblem(403, 'users_only', 'Files belong to users; sign in as one.');
  return identity.subject;
}

function fileName(query: string | undefined, header: string | undefined): string {
  let raw = query;
  if (raw === undefined && header !== undefined) {
    try {
      raw = decodeURIComponent(header);
    } catch {
      throw new HttpProblem(400, 'invalid_file_name', 'X-File-Name must be percent-encoded UTF-8.');
    }
  }
  if (!raw) throw new HttpProblem(400, 'file_name_required', 'Give the file name as ?name= or an X-File-Name header.');
  return cleanFileName(raw);
}

export function fileRoutes(domain: FileManagerDomain) {
  const app = new OpenAPIHono<AppEnv>();

  app.openapi(upload, async (c) => {
    const userId = userOf(c);
    const query = c.req.valid('query');
    const raw = c.req.raw.body;
    if (!raw) throw new HttpProblem(422, 'empty_file', 'The upload is empty.');
    const boundary = multipartBoundary(c.req.header('content-type'));
    let name: string;
    let body = raw;
    let build = query.build;
    let declaredLength = Number(c.req.header('content-length'));
    if (boundary) {
      const form = await openMultipartFile(raw, boundary);
      name = cleanFileName(query.name ?? form.filename);
      body = form.content;
      const formBuild = form.fields.build;
      if (formBuild !== undefined && formBuild !== 'hg19' && formBuild !== 'hg38') {
        throw new HttpProblem(422, 'validation_failed', 'build must be hg19 or hg38.', { errors: [{ path: 'body.build', message: 'must be hg19 or hg38' }] });
      }
      build = (formBuild as 'hg19' | 'hg38' | undefined) ?? build;
      // The form's length includes its envelope: no exact size is known before reading.
      declaredLength = Number.NaN;
    } else {
      name = fileName(query.name, c.req.valid('header')['x-file-name']);
    }
    const row = await domain.uploads.track(
      receiveUpload(
        { db: domain.db, storage: domain.storage, limits: domain.limits },
        {
          userId,
          originalName: name,
          contentType: /\.vcf\.b?gz$/i.test(name) ? 'application/gzip' : /\.vcf$/i.test(name) ? 'text/vcf' : 'application/octet-stream',
          body,
          contentLength: Number.isFinite(declaredLength) && c.req.header('content-length') ? declaredLength : undefined,
          validator: domain.validatorFor(name, build),
        },
      ),
    );
    return c.json(fileView(row), 201);
  });

  app.openapi(list, async (c) => {
    const userId = userOf(c);
    const { limit, cursor, kind, jobId } = c.req.valid('query');
    const before = decodeCursor(cursor, isUuidPosition);
    const filters: (SQL | undefined)[] = [
      eq(storedFiles.userId, userId),
      kind ? eq(storedFiles.kind, kind) : undefined,
      jobId ? eq(storedFiles.jobId, jobId) : undefined,
      before ? lt(storedFiles.id, before) : undefined,
    ];
    const rows = await domain.db
      .select()
      .from(storedFiles)
      .where(and(...filters))
      .orderBy(desc(storedFiles.id))
      .limit(limit + 1);
    const page = rows.slice(0, limit);
    return c.json({ items: page.map(fileView), nextCursor: rows.length > limit ? encodeCursor(page.at(-1)!.id) : null }, 200);
  });

  app.openapi(describe, async (c) => c.json(fileView(await ownFile(domain, c, c.req.valid('param').id)), 200));

  app.openapi(remove, async (c) => {
    const row = await ownFile(domain, c, c.req.valid('param').id);
    // One statement: a hold taken between a check and the delete would otherwise be ignored.
    const deleted = await domain.db
      .delete(storedFiles)
      .where(and(eq(storedFiles.id, row.id), notExists(domain.db.select().from(fileHolds).where(eq(fileHolds.fileId, row.id)))))
      .returning({ id: storedFiles.id });
    if (deleted.length === 0) throw new HttpProblem(409, 'file_in_use', 'A job is using this file; delete it once the job has ended.');
    await domain.storage.remove(row.storageKey);
    return c.body(null, 204);
  });

  app.openapi(createLink, async (c) => {
    const row = await ownFile(domain, c, c.req.valid('param').id);
    return c.json(signedDownloadLink(domain, row.id, c.req.valid('json').expiresInSeconds), 201);
  });

  app.openapi(content, async (c) => {
    const { id } = c.req.valid('param');
    const { expires, sig } = c.req.valid('query');
    let row: StoredFileRow;
    if (sig !== undefined) {
      if (!domain.links.verify(id, expires, sig)) {
        throw new HttpProblem(403, 'invalid_link', 'This download link is invalid or has expired; ask for a new one.');
      }
      const [linked] = await domain.db.select().from(storedFiles).where(eq(storedFiles.id, id));
      if (!linked) throw notFound();
      row = linked;
    } else {
      row = await ownFile(domain, c, id);
    }
    return serveFileContent(c, domain.storage, row, c.req.valid('header').range);
  });

  return app;
}
