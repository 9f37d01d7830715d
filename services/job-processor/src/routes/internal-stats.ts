/**
 * Job statistics for monitoring: the dashboard (one user's jobs, or the platform's for an admin) and
 * the alert engine (how long the oldest queued job has waited). Counts are over the jobs users
 * submitted: a federated parent counts once, its children (one per target) not at all.
 */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { jobHistory, jobs } from '@db/schema/jobs.ts';
import type { AppEnv } from '@shared/app.ts';
import { requireService } from '@shared/auth.ts';
import type { Db } from '@shared/db.ts';
import { jsonContent } from '@shared/openapi.ts';
import { JOB_STATE_VALUES } from '@shared/schemas/jobs.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { JobStatsSchema, OUTCOME_STATES, type JobStats, type RecentJob } from '@shared/schemas/stats.ts';
import { and, count, desc, eq, isNotNull, isNull, sql, type SQL } from 'drizzle-orm';
import type { JobTarget } from '../domain.ts';

const RECENT = 5;

const jobStats = createRoute({
  method: 'get',
  path: '/internal/stats/jobs',
  tags: ['Internal'],
  security: [{ bearerAuth: [] }],
  summary: "Jobs by state, success rate, the newest jobs and the queue's oldest wait: one user's, or the platform's without `userId` (monitoring only)",
  middleware: [requireService('monitoring')] as const,
  request: { query: z.object({ userId: z.uuid().optional().openapi({ description: 'Only this user’s jobs' }) }) },
  responses: { 200: { description: 'The statistics.', ...jsonContent(JobStatsSchema) }, ...problemResponses(400, 401, 403) },
});

export interface JobStatsDeps {
  db: Db;
  now?: () => number;
}

/** `GET /internal/stats/jobs`; `db` is job-processor's database. */
export function internalStatsRoutes(deps: JobStatsDeps) {
  const app = new OpenAPIHono<AppEnv>();
  app.openapi(jobStats, async (c) => {
    const { userId } = c.req.valid('query');
    return c.json(await readJobStats(deps, userId), 200);
  });
  return app;
}

/** The statistics of `userId`'s jobs, or of every user's when it is undefined. */
async function readJobStats(deps: JobStatsDeps, userId: string | undefined): Promise<JobStats> {
  const { db } = deps;
  const owner: SQL | undefined = userId === undefined ? undefined : eq(jobs.userId, userId);
  const topLevel = and(isNull(jobs.parentId), owner);
  // A retried job is queued again long after it was created: its wait starts at its latest `queued` entry.
  const queuedSince = sql`coalesce((select max(${jobHistory.at}) from ${jobHistory} where ${jobHistory.jobId} = ${jobs.id} and ${jobHistory.state} = 'queued'), ${jobs.createdAt})`;

  const [counts, recentRows, [oldest]] = await Promise.all([
    db.select({ state: jobs.state, n: count() }).from(jobs).where(topLevel).groupBy(jobs.state),
    db
      .select({ id: jobs.id, name: jobs.name, state: jobs.state, createdAt: jobs.createdAt, target: jobs.target })
      .from(jobs)
      .where(topLevel)
      .orderBy(desc(jobs.createdAt), desc(jobs.id))
      .limit(RECENT),
    // The queue is the jobs the workers run (each has a service); a federated parent only mirrors its children.
    db
      .select({ since: sql`min(${queuedSince})`.mapWith(jobs.createdAt) })
      .from(jobs)
      .where(and(eq(jobs.state, 'queued'), isNotNull(jobs.serviceId), owner)),
  ]);

  const byState = Object.fromEntries(JOB_STATE_VALUES.map((s) => [s, 0])) as JobStats['byState'];
  let total = 0;
  for (const row of counts) {
    total += row.n;
    if (row.state in byState) byState[row.state as keyof typeof byState] += row.n;
  }
  const ended = OUTCOME_STATES.reduce((sum, s) => sum + byState[s], 0);
  const since = oldest?.since as Date | null | undefined;
  const now = (deps.now ?? Date.now)();
  return {
    scope: userId === undefined ? 'platform' : 'user',
    byState,
    total,
    successRate: ended === 0 ? null : Math.round((byState.completed / ended) * 10_000) / 10_000,
    recent: recentRows.map(recentJob),
    oldestQueuedAgeSeconds: since ? Math.max(0, Math.floor((now - since.getTime()) / 1000)) : null,
  };
}

function recentJob(row: { id: string; name: string; state: string; createdAt: Date; target: unknown }): RecentJob {
  const target = row.target as JobTarget | null;
  return {
    id: row.id,
    name: row.name,
    state: row.state as RecentJob['state'],
    createdAt: row.createdAt.toISOString(),
    // A top-level job without a target of its own is a federated parent (its children hold the targets).
    service: target?.service.slug ?? 'federated',
  };
}
