/** Jobs as job-processor accepts and describes them (through the gateway under /api/jobs). */
import { z } from '@hono/zod-openapi';

export const JOB_STATE_VALUES = ['queued', 'submitting', 'running', 'exporting', 'completed', 'failed', 'cancelled', 'expired', 'partial'] as const;

const TargetSchema = z
  .object({
    serviceId: z.string().min(1).max(100).openapi({ description: 'Service id or slug', example: 'michigan' }),
    panel: z.string().min(1).max(200).openapi({ description: 'Panel id or Cloudgene key', example: 'hapmap-2' }),
  })
  .strict()
  .openapi('JobTarget');

/** Printable ASCII without quotes, backslash or spaces: survives shells and every unzip tool. */
const PASSWORD = /^[A-Za-z0-9!#$%&()*+,\-./:;<=>?@[\]^_{|}~]{8,128}$/;

export const JobCreateSchema = z
  .object({
    name: z.string().trim().min(1).max(200),
    description: z.string().max(4000).optional(),
    inputFileIds: z
      .array(z.uuid())
      .min(1)
      .max(50)
      .refine((ids) => new Set(ids).size === ids.length, 'each file once'),
    build: z.enum(['hg19', 'hg38']),
    phasing: z.enum(['eagle', 'beagle', 'no_phasing']).default('eagle'),
    population: z.string().min(1).max(64).default('off'),
    mode: z.enum(['imputation', 'qc_only']).default('imputation'),
    r2Filter: z.union([z.literal(0), z.literal(0.001), z.literal(0.1), z.literal(0.2), z.literal(0.3)]).default(0),
    targets: z.union([z.array(TargetSchema).min(1).max(10), z.literal('auto')]),
    /** With `targets: "auto"`: the panel to look for. */
    panel: z.string().min(1).max(200).optional(),
    password: z.string().regex(PASSWORD, '8–128 printable characters without spaces, quotes or backslashes').optional(),
  })
  .strict()
  .refine((b) => b.targets !== 'auto' || b.panel !== undefined, { message: 'targets "auto" needs a panel', path: ['panel'] })
  .refine((b) => b.targets === 'auto' || new Set(b.targets.map((t) => `${t.serviceId}\u0000${t.panel}`)).size === b.targets.length, {
    message: 'each target once',
    path: ['targets'],
  })
  .openapi('JobCreate');

export const JobHistoryEntrySchema = z.object({ at: z.string(), state: z.string(), message: z.string().nullable() }).openapi('JobHistoryEntry');

export const JobStepSchema = z
  .object({ step: z.string(), level: z.enum(['info', 'warning', 'error', 'running']), message: z.string(), at: z.string().nullable() })
  .openapi('JobStep');

export const JobResultSchema = z
  .object({
    jobId: z.uuid(),
    name: z.string(),
    state: z.enum(['pending', 'stored', 'failed']),
    fileId: z.uuid().nullable(),
    sizeBytes: z.number().int().nullable(),
    error: z.string().nullable(),
    service: z.string().nullable().openapi({ description: 'Slug of the server it came from' }),
    panel: z.string().nullable(),
    externalJobId: z.string().nullable(),
  })
  .openapi('JobResult');

const JobCoreShape = {
  id: z.uuid(),
  parentId: z.uuid().nullable(),
  name: z.string(),
  description: z.string().nullable(),
  state: z.enum(JOB_STATE_VALUES),
  progress: z.number().int(),
  service: z.object({ id: z.string(), slug: z.string(), name: z.string(), protocol: z.string() }).nullable(),
  panel: z.string().nullable(),
  request: z.object({
    inputFileIds: z.array(z.string()),
    build: z.string(),
    phasing: z.string(),
    population: z.string(),
    mode: z.string(),
    r2Filter: z.number(),
  }),
  attempt: z.number().int(),
  externalId: z.string().nullable(),
  externalState: z.string().nullable(),
  error: z.object({ code: z.string(), message: z.string().nullable(), hint: z.string().nullable() }).nullable(),
  cancelRequested: z.boolean(),
  resultsExpireAt: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
};

export const JobChildSummarySchema = z
  .object({ id: z.uuid(), service: z.string().nullable(), panel: z.string().nullable(), state: z.enum(JOB_STATE_VALUES), progress: z.number().int() })
  .openapi('JobChildSummary');

export const JobSummarySchema = z.object({ ...JobCoreShape, children: z.array(JobChildSummarySchema) }).openapi('JobSummary');

export const JobDetailSchema = z
  .object({
    ...JobCoreShape,
    children: z.array(z.object(JobCoreShape).openapi('JobChild')),
    history: z.array(JobHistoryEntrySchema),
    results: z.array(JobResultSchema),
  })
  .openapi('Job');

export type JobCreate = z.infer<typeof JobCreateSchema>;
export type JobDetail = z.infer<typeof JobDetailSchema>;
export type JobSummary = z.infer<typeof JobSummarySchema>;
