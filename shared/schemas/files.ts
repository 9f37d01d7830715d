/** Stored files as file-manager describes them to clients and to job-processor. */
import { z } from '@hono/zod-openapi';

export const ValidationIssueSchema = z
  .object({
    code: z.string().openapi({ example: 'multiple_chromosomes' }),
    message: z.string(),
    hint: z.string().optional(),
    line: z.number().int().optional(),
  })
  .openapi('ValidationIssue');

export const ValidationReportSchema = z
  .object({
    ok: z.boolean(),
    errors: z.array(ValidationIssueSchema),
    warnings: z.array(ValidationIssueSchema),
    stats: z.record(z.string(), z.unknown()).openapi({ description: 'samples, variants, chromosome, buildGuess, phased, ...' }),
  })
  .openapi('ValidationReport');

export const StoredFileSchema = z
  .object({
    id: z.string(),
    kind: z.enum(['input', 'result']),
    name: z.string().openapi({ description: 'The original file name (metadata only)' }),
    contentType: z.string(),
    sizeBytes: z.number().int(),
    sha256: z.string(),
    md5: z.string(),
    jobId: z.string().nullable(),
    createdAt: z.string(),
    expiresAt: z.string().nullable(),
    validation: ValidationReportSchema.nullable(),
    provenance: z
      .object({
        sourceService: z.string(),
        externalJobId: z.string().nullable(),
        externalName: z.string().nullable(),
        panel: z.string().nullable(),
      })
      .nullable()
      .openapi({ description: 'For results: where they came from' }),
  })
  .openapi('StoredFile');

export type StoredFile = z.infer<typeof StoredFileSchema>;

/** A stored file as job-processor sees it (`GET /internal/files/{id}`): the client view plus its owner. */
export const InternalStoredFileSchema = StoredFileSchema.extend({ userId: z.string() }).openapi('InternalStoredFile');
export type InternalStoredFile = z.infer<typeof InternalStoredFileSchema>;
