/**
 * monitoring's reads of the other services' statistics, each with monitoring's service token and
 * parsed with the shared contract: job-processor (jobs), user-service (accounts), file-manager
 * (storage) and the registry's catalogue (which imputation services can take a job now).
 */
import type { ServiceCredential } from '@shared/auth.ts';
import type { HttpClient } from '@shared/http-client.ts';
import { ServiceSchema, type ImputationService } from '@shared/schemas/registry.ts';
import {
  JobStatsSchema,
  StorageStatsSchema,
  UserStatsSchema,
  type JobStats,
  type ServiceStats,
  type StorageStats,
  type UserStats,
} from '@shared/schemas/stats.ts';
import { z } from '@hono/zod-openapi';

export interface StatsClients {
  /** `userId`'s job statistics, or the platform's when it is undefined. */
  jobs(userId: string | undefined, requestId?: string): Promise<JobStats>;
  users(requestId?: string): Promise<UserStats>;
  storage(requestId?: string): Promise<StorageStats>;
  /** The catalogue's current services, counted: only active, non-retired ones can be available. */
  services(requestId?: string): Promise<ServiceStats>;
}

export interface StatsHttpClients {
  jobs: HttpClient;
  users: HttpClient;
  files: HttpClient;
  registry: HttpClient;
}

const ServicePageSchema = z.object({ items: z.array(ServiceSchema), nextCursor: z.string().nullable() });
/** The registry pages by 100; a catalogue of more than 2,000 services would be another system. */
const MAX_SERVICE_PAGES = 20;

/**
 * Statistics clients over `clients`, authenticating every call with `credential` (monitoring's
 * service token). Failures surface as the HTTP client's `UpstreamError` naming the service.
 */
export function statsClients(clients: StatsHttpClients, credential: ServiceCredential): StatsClients {
  const headers = async () => ({ authorization: await credential.authorization() });
  return {
    async jobs(userId, requestId) {
      return clients.jobs.call({ path: '/internal/stats/jobs', query: { userId }, headers: await headers(), requestId, schema: JobStatsSchema });
    },
    async users(requestId) {
      return clients.users.call({ path: '/internal/stats/users', headers: await headers(), requestId, schema: UserStatsSchema });
    },
    async storage(requestId) {
      return clients.files.call({ path: '/internal/stats/storage', headers: await headers(), requestId, schema: StorageStatsSchema });
    },
    async services(requestId) {
      const all: ImputationService[] = [];
      let cursor: string | undefined;
      for (let page = 0; page < MAX_SERVICE_PAGES; page++) {
        const body = await clients.registry.call({ path: '/services', query: { limit: 100, cursor }, headers: await headers(), requestId, schema: ServicePageSchema });
        all.push(...body.items);
        if (!body.nextCursor) break;
        cursor = body.nextCursor;
      }
      return serviceStats(all);
    },
  };
}

/** Counts of the catalogue; a retired or inactive service is never available, whatever its last probe said. */
export function serviceStats(services: ImputationService[]): ServiceStats {
  const current = services.filter((s) => s.retiredAt === null);
  const active = current.filter((s) => s.isActive);
  const available: ServiceStats['available'] = [];
  for (const s of active) {
    if (s.health.status === 'healthy' || s.health.status === 'degraded') available.push({ slug: s.slug, name: s.name, status: s.health.status });
  }
  return {
    total: current.length,
    active: active.length,
    healthy: active.filter((s) => s.health.status === 'healthy').length,
    available,
  };
}
