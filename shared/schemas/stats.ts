/**
 * Platform statistics: what job-processor, user-service and file-manager report to monitoring on their
 * internal stats endpoints, and the dashboard monitoring builds from them (`GET /dashboard/stats`).
 */
import { z } from '@hono/zod-openapi';
import { ROLES } from '../auth.ts';
import { JOB_STATE_VALUES } from './jobs.ts';

const count = z.number().int().min(0);

/**
 * States that end a job with an outcome: the denominator of the success rate. `cancelled` is not one:
 * the user stopped the job, the platform did not fail it.
 */
export const OUTCOME_STATES = ['completed', 'failed', 'partial', 'expired'] as const;

export const RecentJobSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    state: z.enum(JOB_STATE_VALUES),
    createdAt: z.string(),
    service: z.string().openapi({ description: "The service's slug, or `federated` for a job fanned out to several services", example: 'michigan' }),
  })
  .openapi('RecentJob');

export const JobStatsSchema = z
  .object({
    scope: z.enum(['user', 'platform']).openapi({ description: '`user`: one user’s jobs only; `platform`: every user’s' }),
    byState: z.record(z.enum(JOB_STATE_VALUES), count).openapi({ description: 'Jobs as users submitted them (a federated job counts once, its children not at all), by state' }),
    total: count,
    successRate: z
      .number()
      .min(0)
      .max(1)
      .nullable()
      .openapi({ description: 'completed ÷ (completed + failed + partial + expired), rounded to 4 places; null before any job ended that way' }),
    recent: z.array(RecentJobSchema).max(5).openapi({ description: 'The five newest jobs, newest first' }),
    oldestQueuedAgeSeconds: z
      .number()
      .int()
      .min(0)
      .nullable()
      .openapi({ description: 'How long the longest-waiting queued job (one the workers run, not a federated parent) has waited since it was last queued; null when none waits' }),
  })
  .openapi('JobStats');

export const UserStatsSchema = z
  .object({
    total: count,
    active: count,
    byRole: z.record(z.enum(ROLES), count).openapi({ description: 'Active accounts holding each role (an account may hold several)' }),
    registeredLast7Days: count,
  })
  .openapi('UserStats');

const KindStatsSchema = z.object({ files: count, bytes: count });

export const StorageStatsSchema = z
  .object({
    byKind: z.object({ input: KindStatsSchema, result: KindStatsSchema }),
    totalFiles: count,
    totalBytes: count,
    usersWithFiles: count,
  })
  .openapi('StorageStats');

export const AvailableServiceSchema = z
  .object({ slug: z.string(), name: z.string(), status: z.enum(['healthy', 'degraded']) })
  .openapi('AvailableService');

export const ServiceStatsSchema = z
  .object({
    total: count.openapi({ description: 'Services in the catalogue (retired ones are not)' }),
    active: count.openapi({ description: 'Of those, the ones accepting jobs' }),
    healthy: count.openapi({ description: 'Active services whose last probe was healthy' }),
    available: z.array(AvailableServiceSchema).openapi({ description: 'Active services that are healthy or degraded: where a job can go now' }),
  })
  .openapi('ServiceStats');

/** The platform services a dashboard section comes from; named in `unavailable` when one did not answer. */
export const STATS_SOURCES = ['job-processor', 'service-registry', 'user-service', 'file-manager'] as const;

export const DashboardStatsSchema = z
  .object({
    scope: z.enum(['user', 'platform']).openapi({ description: '`platform` only for admins; everyone else always sees their own numbers' }),
    jobs: JobStatsSchema.omit({ scope: true }).nullable(),
    services: ServiceStatsSchema.nullable(),
    users: UserStatsSchema.nullable().optional().openapi({ description: 'Platform scope (admins) only' }),
    storage: StorageStatsSchema.nullable().optional().openapi({ description: 'Platform scope (admins) only' }),
    unavailable: z.array(z.enum(STATS_SOURCES)).openapi({ description: 'Services that did not answer; their sections are null' }),
    generatedAt: z.string(),
  })
  .openapi('DashboardStats');

export type RecentJob = z.infer<typeof RecentJobSchema>;
export type JobStats = z.infer<typeof JobStatsSchema>;
export type UserStats = z.infer<typeof UserStatsSchema>;
export type StorageStats = z.infer<typeof StorageStatsSchema>;
export type ServiceStats = z.infer<typeof ServiceStatsSchema>;
export type DashboardStats = z.infer<typeof DashboardStatsSchema>;
export type StatsSource = (typeof STATS_SOURCES)[number];
