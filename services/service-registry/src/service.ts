/** How the runners start service-registry: port 8002, Postgres schema `registry`. */
import { PLATFORM_VERSION } from '@shared/version.ts';
import { z } from '@hono/zod-openapi';
import { outbox } from '@db/schema/registry.ts';
import { kitDepsFromEnv } from '@shared/app.ts';
import { externalCallsEnv, platformUrlsEnv, serviceEnvSchema } from '@shared/config.ts';
import { platformOutboxRelay } from '@shared/event-sink.ts';
import { createHttpClient } from '@shared/http-client.ts';
import { outboundPolicy } from '@shared/outbound.ts';
import { createServiceAuth } from '@shared/service-auth.ts';
import { defineService } from '@shared/service.ts';
import { resolve } from 'node:path';
import { createApp, REGISTRY_VERSION } from './app.ts';
import { seedCatalogue } from './catalogue-seed.ts';
import { createCatalogue } from './catalogue-store.ts';
import { createHealthProber } from './health-prober.ts';
import { createOperatorCredentials, operatorTokensEnv, vaultRelease } from './operator-credentials.ts';
import { syncService } from './panel-sync.ts';

export const definition = defineService({
  name: 'service-registry',
  version: REGISTRY_VERSION,
  port: 8002,
  schema: 'registry',
  envSchema: serviceEnvSchema(8002).extend({
    ...externalCallsEnv,
    ...platformUrlsEnv,
    /** The initial catalogue, loaded when the catalogue is empty. */
    CATALOGUE_FILE: z.string().default(resolve(import.meta.dir, '../catalogue.json')),
    CATALOGUE_CACHE_SECONDS: z.coerce.number().min(0).default(15),
    PROBE_INTERVAL_SECONDS: z.coerce.number().min(5).default(300),
    PROBE_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
    HEALTH_HISTORY_DAYS: z.coerce.number().min(1).default(30),
    /** `{"<slug>": "<token>"}`: operator credentials for probes and panel syncs of servers that need one. */
    ...operatorTokensEnv,
  }),
  build: async (env, infra) => {
    const db = infra.database.db;
    const policy = outboundPolicy(env.EXTERNAL_CALLS);
    const auth = createServiceAuth('service-registry', env, infra.kv);
    const catalogue = createCatalogue({ db, kv: infra.kv, cacheTtlMs: env.CATALOGUE_CACHE_SECONDS * 1000 });
    const userService = createHttpClient({ service: 'user-service', baseUrl: env.USER_SERVICE_URL, timeoutMs: 3_000 });
    const operators = createOperatorCredentials({ configured: env.OPERATOR_TOKENS, release: vaultRelease(userService, auth.credential) });
    const relay = platformOutboxRelay({
      db,
      table: outbox,
      logger: infra.logger,
      credential: auth.credential,
      consumers: { notification: env.NOTIFICATION_URL, monitoring: env.MONITORING_URL },
    });
    const prober = createHealthProber({
      db,
      logger: infra.logger,
      policy,
      timeoutMs: env.PROBE_TIMEOUT_MS,
      intervalMs: env.PROBE_INTERVAL_SECONDS * 1000,
      historyRetentionMs: env.HEALTH_HISTORY_DAYS * 86_400_000,
      operatorToken: (service) => operators.forProbe(service.slug),
      onStatusChange: async () => {
        await catalogue.invalidate();
        relay.wake();
      },
    });
    const platform = [
      ['api-gateway', env.API_GATEWAY_URL],
      ['user-service', env.USER_SERVICE_URL],
      ['service-registry', env.SERVICE_REGISTRY_URL],
      ['job-processor', env.JOB_PROCESSOR_URL],
      ['file-manager', env.FILE_MANAGER_URL],
      ['notification', env.NOTIFICATION_URL],
      ['monitoring', env.MONITORING_URL],
    ].map(([name, url]) => ({ name: name!, url: url!, version: PLATFORM_VERSION }));
    return {
      start: async () => {
        await seedCatalogue({ db, catalogue, logger: infra.logger }, env.CATALOGUE_FILE);
        prober.start();
        relay.start();
      },
      stop: async () => {
        await Promise.all([prober.stop(), relay.stop()]);
      },
      app: createApp({
        ...kitDepsFromEnv(env, infra.logger),
        authenticator: auth.authenticator,
        database: infra.database,
        catalogue,
        policy,
        probe: async (id) => {
          await prober.probeOne(id);
          await catalogue.invalidate();
        },
        sync: async (service, adminUserId) =>
          syncService({ db, policy, timeoutMs: env.PROBE_TIMEOUT_MS }, service, await operators.forSync(service.slug, adminUserId)),
        platform,
      }),
    };
  },
});
