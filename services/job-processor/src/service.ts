/** How the runners start job-processor: port 8003, Postgres schema `jobs`; the API, the workers, or both (`ROLE`). */
import { z } from '@hono/zod-openapi';
import { outbox } from '@db/schema/jobs.ts';
import { kitDepsFromEnv } from '@shared/app.ts';
import { externalCallsEnv, platformUrlsEnv, serviceEnvSchema } from '@shared/config.ts';
import { platformOutboxRelay } from '@shared/event-sink.ts';
import { createHttpClient } from '@shared/http-client.ts';
import { outboundPolicy } from '@shared/outbound.ts';
import { configuredKeys, createSecretBox } from '@shared/secret-box.ts';
import { createServiceAuth } from '@shared/service-auth.ts';
import { defineService } from '@shared/service.ts';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { createAdapters } from './adapters/adapters.ts';
import { createApp, JOB_PROCESSOR_VERSION } from './app.ts';
import { createPollSchedule } from './poll-schedule.ts';
import { createJobWorker } from './job-worker.ts';
import { filesClient, registryClient, vaultClient } from './platform-clients.ts';

export const definition = defineService({
  name: 'job-processor',
  version: JOB_PROCESSOR_VERSION,
  port: 8003,
  schema: 'jobs',
  envSchema: serviceEnvSchema(8003).extend({
    ...externalCallsEnv,
    ...platformUrlsEnv,
    /** `api` serves HTTP only, `worker` only runs workers (its HTTP server answers health and metrics), `both` does both. */
    ROLE: z.enum(['api', 'worker', 'both']).default('both'),
    WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(8),
    WORKER_LEASE_SECONDS: z.coerce.number().int().min(5).max(3600).default(120),
    /** Seals the result-zip passwords the platform escrows (`id:base64 of 32 bytes`, comma-separated); a local key file when unset. */
    ENCRYPTION_KEYS: z.string().optional(),
    EXTERNAL_TIMEOUT_MS: z.coerce.number().int().min(1000).max(600_000).default(60_000),
    /** WES nodes run this workflow for an imputation job. */
    WES_WORKFLOW_URL: z.string().url().default('https://github.com/genepi/imputationserver2'),
    WES_WORKFLOW_TYPE: z.string().default('Nextflow'),
    WES_WORKFLOW_TYPE_VERSION: z.string().default('23.04'),
    /** The poll schedule (poll-schedule.ts): first poll after a change, its cap, transient retries and their limit. */
    POLL_FIRST_MS: z.coerce.number().int().min(10).max(3_600_000).default(5_000),
    POLL_MAX_MS: z.coerce.number().int().min(10).max(86_400_000).default(300_000),
    RETRY_BASE_MS: z.coerce.number().int().min(10).max(3_600_000).default(5_000),
    RETRY_MAX_MS: z.coerce.number().int().min(10).max(86_400_000).default(600_000),
    RETRY_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(1_000).default(10),
    /** How often an idle worker looks for due work (a new or cancelled job wakes it at once). */
    WORKER_IDLE_MS: z.coerce.number().int().min(10).max(60_000).default(1_000),
  }),
  build: async (env, infra) => {
    const db = infra.database.db;
    const auth = createServiceAuth('job-processor', env, infra.kv);
    const box = await createSecretBox(await configuredKeys(env.ENCRYPTION_KEYS, join(env.DATA_DIR, 'secrets', 'job-passwords.key')));
    const client = (service: string, baseUrl: string) => createHttpClient({ service, baseUrl, timeoutMs: 10_000 });
    const registry = registryClient(client('service-registry', env.SERVICE_REGISTRY_URL), auth.credential);
    const files = filesClient(client('file-manager', env.FILE_MANAGER_URL), auth.credential, env.FILE_MANAGER_URL);
    const vault = vaultClient(client('user-service', env.USER_SERVICE_URL), auth.credential);
    const relay = platformOutboxRelay({
      db,
      table: outbox,
      logger: infra.logger,
      credential: auth.credential,
      consumers: { notification: env.NOTIFICATION_URL, monitoring: env.MONITORING_URL },
    });
    const worker =
      env.ROLE === 'api'
        ? null
        : createJobWorker({
            db,
            adapters: createAdapters({
              policy: outboundPolicy(env.EXTERNAL_CALLS),
              timeoutMs: env.EXTERNAL_TIMEOUT_MS,
              workflow: { url: env.WES_WORKFLOW_URL, type: env.WES_WORKFLOW_TYPE, typeVersion: env.WES_WORKFLOW_TYPE_VERSION },
            }),
            files,
            vault,
            secretBox: box,
            logger: infra.logger.child({ worker: 'jobs' }),
            owner: `${hostname()}:${process.pid}:${crypto.randomUUID().slice(0, 8)}`,
            concurrency: env.WORKER_CONCURRENCY,
            leaseMs: env.WORKER_LEASE_SECONDS * 1000,
            idleMs: env.WORKER_IDLE_MS,
            pollSchedule: createPollSchedule({
              firstPollMs: env.POLL_FIRST_MS,
              maxPollMs: env.POLL_MAX_MS,
              retryBaseMs: env.RETRY_BASE_MS,
              retryMaxMs: env.RETRY_MAX_MS,
              maxAttempts: env.RETRY_MAX_ATTEMPTS,
              cancelPollMs: Math.min(5_000, env.POLL_FIRST_MS),
            }),
            onTransition: () => relay.wake(),
          });
    return {
      start: async () => {
        relay.start();
        worker?.start();
      },
      stop: async () => {
        // The kit bounds the HTTP drain by SHUTDOWN_TIMEOUT_MS; the worker's in-flight steps get the same bound.
        await Promise.all([worker?.stop(env.SHUTDOWN_TIMEOUT_MS), relay.stop()]);
      },
      app: createApp({
        ...kitDepsFromEnv(env, infra.logger),
        authenticator: auth.authenticator,
        database: infra.database,
        box,
        registry,
        files,
        vault,
        wake: () => {
          worker?.wake();
          relay.wake();
        },
        serveApi: env.ROLE !== 'worker',
      }),
    };
  },
});
