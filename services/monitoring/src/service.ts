/** How the runners start monitoring: port 8006, Postgres schema `monitor`; the probe, sampling and alert loops run beside the API. */
import { z } from '@hono/zod-openapi';
import { outbox } from '@db/schema/monitor.ts';
import { kitDepsFromEnv } from '@shared/app.ts';
import { platformUrlsEnv, serviceEnvSchema } from '@shared/config.ts';
import { platformOutboxRelay } from '@shared/event-sink.ts';
import { createHttpClient } from '@shared/http-client.ts';
import { createMetrics } from '@shared/metrics.ts';
import { createServiceAuth } from '@shared/service-auth.ts';
import { defineService } from '@shared/service.ts';
import { createAlertEngine } from './alert-engine.ts';
import { alertEnv, alertThresholds } from './alert-rules.ts';
import { createApp, MONITORING_VERSION } from './app.ts';
import { createHostSampler } from './host-sampler.ts';
import { createPeriodicChecks } from './periodic-checks.ts';
import { createServiceProber } from './service-prober.ts';
import { statsClients } from './stats-clients.ts';

const DAY = 86_400_000;

export const definition = defineService({
  name: 'monitoring',
  version: MONITORING_VERSION,
  port: 8006,
  schema: 'monitor',
  envSchema: serviceEnvSchema(8006).extend({
    ...platformUrlsEnv,
    ...alertEnv,
    PROBE_INTERVAL_SECONDS: z.coerce.number().min(1).default(30),
    PROBE_TIMEOUT_MS: z.coerce.number().int().min(50).max(60_000).default(2_000),
    HEALTH_RETENTION_DAYS: z.coerce.number().min(8).default(8),
    HOST_SAMPLE_INTERVAL_SECONDS: z.coerce.number().min(1).default(30),
    HOST_SAMPLE_RETENTION_DAYS: z.coerce.number().min(1).default(7),
    /** Where the host's proc filesystem is (`/host/proc` when the host's is mounted into the container). */
    HOST_PROC_ROOT: z.string().default('/proc'),
    /** Comma-separated paths whose disk use is sampled; DATA_DIR when unset. */
    HOST_DISK_PATHS: z.string().optional(),
  }),
  build: (env, infra) => {
    const db = infra.database.db;
    const auth = createServiceAuth('monitoring', env, infra.kv);
    const http = (service: string, baseUrl: string) => createHttpClient({ service, baseUrl, timeoutMs: 2_000, retries: 1 });
    // Alerts go to notification only: monitoring does not post its own events back to itself.
    const relay = platformOutboxRelay({ db, table: outbox, logger: infra.logger, credential: auth.credential, consumers: { notification: env.NOTIFICATION_URL } });
    const stats = statsClients(
      { jobs: http('job-processor', env.JOB_PROCESSOR_URL), users: http('user-service', env.USER_SERVICE_URL), files: http('file-manager', env.FILE_MANAGER_URL), registry: http('service-registry', env.SERVICE_REGISTRY_URL) },
      auth.credential,
    );
    const engine = createAlertEngine({
      db,
      logger: infra.logger.child({ worker: 'alerts' }),
      thresholds: alertThresholds(env),
      onChange: () => relay.wake(),
      oldestQueuedAgeSeconds: async () => (await stats.jobs(undefined)).oldestQueuedAgeSeconds,
    });
    const prober = createServiceProber({
      db,
      logger: infra.logger.child({ worker: 'probes' }),
      targets: [
        { service: 'api-gateway', url: env.API_GATEWAY_URL },
        { service: 'user-service', url: env.USER_SERVICE_URL },
        { service: 'service-registry', url: env.SERVICE_REGISTRY_URL },
        { service: 'job-processor', url: env.JOB_PROCESSOR_URL },
        { service: 'file-manager', url: env.FILE_MANAGER_URL },
        { service: 'notification', url: env.NOTIFICATION_URL },
      ],
      timeoutMs: env.PROBE_TIMEOUT_MS,
      intervalMs: env.PROBE_INTERVAL_SECONDS * 1000,
      retentionMs: env.HEALTH_RETENTION_DAYS * DAY,
      onRound: (probes) => engine.onProbeRound(probes),
    });
    const hostSampler = createHostSampler({
      db,
      logger: infra.logger.child({ worker: 'host' }),
      paths: env.HOST_DISK_PATHS ? env.HOST_DISK_PATHS.split(',').map((p) => p.trim()).filter(Boolean) : [env.DATA_DIR],
      intervalMs: env.HOST_SAMPLE_INTERVAL_SECONDS * 1000,
      retentionMs: env.HOST_SAMPLE_RETENTION_DAYS * DAY,
      procRoot: env.HOST_PROC_ROOT,
      onSample: (sample) => engine.onHostSample(sample),
    });
    const checks = createPeriodicChecks({ db, engine, logger: infra.logger.child({ worker: 'periodic-checks' }), intervalMs: 60_000, eventRetentionMs: 7 * DAY });
    return {
      start: async () => {
        await Promise.all([prober.load(), hostSampler.load()]);
        relay.start();
        prober.start();
        hostSampler.start();
        checks.start();
      },
      stop: async () => {
        await Promise.all([prober.stop(), hostSampler.stop(), checks.stop(), relay.stop()]);
      },
      app: createApp({
        ...kitDepsFromEnv(env, infra.logger),
        authenticator: auth.authenticator,
        database: infra.database,
        prober,
        hostSampler,
        engine,
        stats,
        metrics: createMetrics({ service: 'monitoring' }),
      }),
    };
  },
});
