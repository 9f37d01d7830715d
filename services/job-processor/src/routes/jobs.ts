/** The jobs API: submit (one target or many), list, describe, cancel, retry, history, logs, results and the escrowed password. */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { jobs } from '@db/schema/jobs.ts';
import type { AppEnv } from '@shared/app.ts';
import type { Db } from '@shared/db.ts';
import { HttpProblem } from '@shared/errors.ts';
import { jsonBody, jsonContent } from '@shared/openapi.ts';
import type { SecretBox } from '@shared/secret-box.ts';
import { JOB_STATE_VALUES, JobCreateSchema, JobDetailSchema, JobHistoryEntrySchema, JobResultSchema, JobStepSchema, JobSummarySchema } from '@shared/schemas/jobs.ts';
import { decodeCursor, encodeCursor, isTimeUuidPosition, PageQuerySchema, pageOf } from '@shared/schemas/pagination.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import type { Context } from 'hono';
import { and, eq, isNull } from 'drizzle-orm';
import { TERMINAL_STATES, type JobRow, type StepLine } from '../domain.ts';
import { planJobs, type RequestChecks } from '../job-requests.ts';
import { bodyFingerprint, childrenOf, createJobs, generatePassword, historyOf, listJobs, passwordAad, resultsOf, visibleJob } from '../job-store.ts';
import { transition } from '../job-transitions.ts';
import { jobDetail, jobSummary, resultView } from '../job-views.ts';

const security = [{ bearerAuth: [] }];
const tags = ['Jobs'];
const IdParam = z.object({ id: z.string().max(100).openapi({ param: { name: 'id', in: 'path' } }) });
export interface JobRoutesDeps extends RequestChecks {
  db: Db;
  box: SecretBox;
  now?: () => number;
  /** Wakes the workers after a commit that gave them work (a new job, a cancel, a retry). */
  wake?: () => void;
}

const create = createRoute({
  method: 'post',
  path: '/jobs',
  tags,
  security,
  summary: 'Submit a job to one service, several (a federated job), or the best-ranked one ("auto")',
  description:
    'Checked before anything is queued: your files (validated VCFs with one sample set), each target (service active, panel offered with the build and ' +
    'population, sample and size limits) and your stored credential for each server; a 422 lists every problem. Answers 202 at once; workers submit. ' +
    'An `Idempotency-Key` header makes a retried request answer the job it created.',
  request: { headers: z.object({ 'idempotency-key': z.string().min(1).max(200).optional() }), ...jsonBody(JobCreateSchema) },
  responses: {
    202: { description: 'Accepted (or, with a reused Idempotency-Key, the job it created).', ...jsonContent(JobDetailSchema) },
    ...problemResponses(400, 401, 403, 422, 502, 503),
  },
});

const list = createRoute({
  method: 'get',
  path: '/jobs',
  tags,
  security,
  summary: 'Your jobs, newest first; a federated job with a summary of its children',
  request: { query: PageQuerySchema.extend({ state: z.enum(JOB_STATE_VALUES).optional(), service: z.uuid().optional().openapi({ description: 'Service id' }) }) },
  responses: { 200: { description: 'A page of jobs.', ...jsonContent(pageOf(JobSummarySchema, 'JobPage')) }, ...problemResponses(400, 401) },
});

const get = createRoute({
  method: 'get',
  path: '/jobs/{id}',
  tags,
  security,
  summary: 'A job with its children, status history and results',
  request: { params: IdParam },
  responses: { 200: { description: 'The job.', ...jsonContent(JobDetailSchema) }, ...problemResponses(401, 404) },
});

const cancel = createRoute({
  method: 'post',
  path: '/jobs/{id}/cancel',
  tags,
  security,
  summary: 'Cancel a job (a federated job cancels its children); a submitted job is cancelled on its server too',
  request: { params: IdParam },
  responses: { 202: { description: 'Cancelling (or cancelled, if it was not submitted yet).', ...jsonContent(JobDetailSchema) }, ...problemResponses(401, 404, 409) },
});

const retry = createRoute({
  method: 'post',
  path: '/jobs/{id}/retry',
  tags,
  security,
  summary: 'Run a failed job again as a new attempt (for a federated job: its failed children)',
  request: { params: IdParam },
  responses: { 202: { description: 'Queued again.', ...jsonContent(JobDetailSchema) }, ...problemResponses(401, 404, 409) },
});

const events = createRoute({
  method: 'get',
  path: '/jobs/{id}/events',
  tags,
  security,
  summary: 'Status history of the job and its children, oldest first',
  request: { params: IdParam },
  responses: {
    200: { description: 'History.', ...jsonContent(z.object({ items: z.array(JobHistoryEntrySchema.extend({ jobId: z.uuid() })) }).openapi('JobEvents')) },
    ...problemResponses(401, 404),
  },
});

const logs = createRoute({
  method: 'get',
  path: '/jobs/{id}/logs',
  tags,
  security,
  summary: "The servers' step messages as structured lines, per job",
  request: { params: IdParam },
  responses: {
    200: { description: 'Log lines.', ...jsonContent(z.object({ items: z.array(JobStepSchema.extend({ jobId: z.uuid() })) }).openapi('JobLogs')) },
    ...problemResponses(401, 404),
  },
});

const results = createRoute({
  method: 'get',
  path: '/jobs/{id}/results',
  tags,
  security,
  summary: 'Result files retrieved into platform storage (file-manager ids, with where each came from)',
  request: { params: IdParam },
  responses: { 200: { description: 'Results.', ...jsonContent(z.object({ items: z.array(JobResultSchema) }).openapi('JobResults')) }, ...problemResponses(401, 404) },
});

const password = createRoute({
  method: 'get',
  path: '/jobs/{id}/password',
  tags,
  security,
  summary: 'The password of the result zips (owner only), escrowed encrypted at rest',
  request: { params: IdParam },
  responses: { 200: { description: 'The password.', ...jsonContent(z.object({ password: z.string() }).openapi('JobPassword')) }, ...problemResponses(401, 404) },
});

function userOf(c: Context<AppEnv>): string {
  const identity = c.get('identity');
  if (identity.kind !== 'user') throw new HttpProblem(403, 'users_only', 'Jobs belong to users; sign in as one.');
  return identity.subject;
}

export function jobRoutes(deps: JobRoutesDeps) {
  const { db } = deps;
  const now = () => new Date((deps.now ?? Date.now)());
  const app = new OpenAPIHono<AppEnv>();

  async function detail(row: JobRow) {
    const children = await childrenOf(db, [row.id]);
    const ids = [row.id, ...children.map((c) => c.id)];
    const [history, stored] = await Promise.all([historyOf(db, [row.id]), resultsOf(db, ids)]);
    return jobDetail(row, children, history, stored);
  }

  async function family(row: JobRow): Promise<JobRow[]> {
    return [row, ...(await childrenOf(db, [row.id]))];
  }

  app.openapi(create, async (c) => {
    const userId = userOf(c);
    const body = c.req.valid('json');
    const idempotencyKey = c.req.valid('header')['idempotency-key'] ?? null;
    const plan = await planJobs(deps, userId, body);
    const { top, created } = await createJobs(db, deps.box, {
      userId,
      name: body.name,
      description: body.description ?? null,
      plan,
      password: body.password ?? generatePassword(),
      idempotencyKey,
      bodyHash: bodyFingerprint({ ...body, password: body.password ? bodyFingerprint(body.password) : null }),
      now: now(),
    });
    if (created) deps.wake?.();
    return c.json(await detail(top), 202);
  });

  app.openapi(list, async (c) => {
    const userId = userOf(c);
    const query = c.req.valid('query');
    const after = decodeCursor(query.cursor, isTimeUuidPosition);
    const rows = await listJobs(db, userId, { limit: query.limit, after, state: query.state, serviceId: query.service });
    const page = rows.slice(0, query.limit);
    const children = await childrenOf(db, page.filter((r) => r.serviceId === null).map((r) => r.id));
    const items = page.map((row) => jobSummary(row, children.filter((ch) => ch.parentId === row.id)));
    const last = page.at(-1);
    const nextCursor = rows.length > query.limit && last ? encodeCursor(`${last.createdAt.toISOString()}|${last.id}`) : null;
    return c.json({ items, nextCursor }, 200);
  });

  app.openapi(get, async (c) => c.json(await detail(await visibleJob(db, c.get('identity'), c.req.valid('param').id)), 200));

  app.openapi(cancel, async (c) => {
    const job = await visibleJob(db, c.get('identity'), c.req.valid('param').id);
    if (TERMINAL_STATES.has(job.state)) throw new HttpProblem(409, 'job_ended', `The job already ended (${job.state}).`);
    const at = now();
    const targets = (await family(job)).filter((j) => j.serviceId !== null && !TERMINAL_STATES.has(j.state));
    await db.transaction(async (tx) => {
      for (const target of targets) {
        // Never sent anywhere: cancelled here. Otherwise (even an ambiguous earlier try) a worker cancels it on its server first.
        if (target.state === 'queued' && target.externalId === null && target.submitStartedAt === null) {
          await transition(tx, target, 'cancelled', { message: 'cancelled by the user before submission', set: { cancelRequestedAt: at }, now: at });
        } else {
          await tx.update(jobs).set({ cancelRequestedAt: at, nextPollAt: at, updatedAt: at }).where(and(eq(jobs.id, target.id), isNull(jobs.cancelRequestedAt)));
        }
      }
      if (job.serviceId === null) await tx.update(jobs).set({ cancelRequestedAt: at, updatedAt: at }).where(eq(jobs.id, job.id));
    });
    deps.wake?.();
    return c.json(await detail(await visibleJob(db, c.get('identity'), job.id)), 202);
  });

  app.openapi(retry, async (c) => {
    const job = await visibleJob(db, c.get('identity'), c.req.valid('param').id);
    const at = now();
    const candidates = (await family(job)).filter((j) => j.serviceId !== null && (j.state === 'failed' || j.state === 'expired'));
    if (candidates.length === 0) throw new HttpProblem(409, 'nothing_to_retry', 'Only a failed job (or a federated job with failed targets) can be retried.');
    await db.transaction(async (tx) => {
      for (const target of candidates) {
        await transition(tx, target, 'queued', {
          message: `retry: attempt ${target.attempt + 1}`,
          now: at,
          set: {
            attempt: target.attempt + 1,
            progress: 0,
            externalId: null,
            externalState: null,
            externalName: null,
            steps: [],
            errorCode: null,
            errorMessage: null,
            errorHint: null,
            attempts: 0,
            pollCount: 0,
            submitStartedAt: null,
            cancelRequestedAt: null,
            resultsExpireAt: null,
            finishedAt: null,
            nextPollAt: at,
          },
        });
      }
    });
    deps.wake?.();
    return c.json(await detail(await visibleJob(db, c.get('identity'), job.id)), 202);
  });

  app.openapi(events, async (c) => {
    const job = await visibleJob(db, c.get('identity'), c.req.valid('param').id);
    const history = await historyOf(db, (await family(job)).map((j) => j.id));
    return c.json({ items: history.map((h) => ({ jobId: h.jobId, at: h.at.toISOString(), state: h.state, message: h.message })) }, 200);
  });

  app.openapi(logs, async (c) => {
    const job = await visibleJob(db, c.get('identity'), c.req.valid('param').id);
    const items = (await family(job)).flatMap((j) => (j.steps as StepLine[]).map((line) => ({ jobId: j.id, ...line })));
    return c.json({ items }, 200);
  });

  app.openapi(results, async (c) => {
    const job = await visibleJob(db, c.get('identity'), c.req.valid('param').id);
    const members = await family(job);
    const byId = new Map(members.map((j) => [j.id, j]));
    const rows = await resultsOf(db, members.map((j) => j.id));
    // Only the current attempt's files: an earlier attempt's partial results are not this job's output.
    const current = rows.filter((r) => r.attempt === byId.get(r.jobId)!.attempt);
    return c.json({ items: current.map((r) => resultView(r, byId.get(r.jobId)!)) }, 200);
  });

  app.openapi(password, async (c) => {
    const identity = c.get('identity');
    const job = await visibleJob(db, identity, c.req.valid('param').id);
    // The owner only: an admin can see the job but not open its results.
    if (job.userId !== identity.subject || !job.passwordSealed) throw new HttpProblem(404, 'job_not_found', 'No such job.');
    return c.json({ password: await deps.box.open(job.passwordSealed, passwordAad(job.id)) }, 200);
  });

  return app;
}
