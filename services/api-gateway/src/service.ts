/** How the runners start api-gateway: port 8000, no database of its own. */
import { z } from '@hono/zod-openapi';
import { kitDepsFromEnv } from '@shared/app.ts';
import { platformUrlsEnv, serviceEnvSchema } from '@shared/config.ts';
import { defineService } from '@shared/service.ts';
import { createApp } from './app.ts';
import { createHealthFanout } from './health-fanout.ts';
import { createProxy } from './proxy.ts';

export const definition = defineService({
  name: 'api-gateway',
  version: '0.1.0',
  port: 8000,
  schema: null,
  envSchema: serviceEnvSchema(8000).extend({
    ...platformUrlsEnv,
    UPSTREAM_TIMEOUT_MS: z.coerce.number().int().min(100).default(30_000),
    UPLOAD_TIMEOUT_MS: z.coerce.number().int().min(1000).default(6 * 60 * 60_000),
    HEALTH_TIMEOUT_MS: z.coerce.number().int().min(50).default(1000),
  }),
  build: (env, infra) => {
    const upstreams = {
      'user-service': env.USER_SERVICE_URL,
      'service-registry': env.SERVICE_REGISTRY_URL,
      'job-processor': env.JOB_PROCESSOR_URL,
      'file-manager': env.FILE_MANAGER_URL,
      notification: env.NOTIFICATION_URL,
      monitoring: env.MONITORING_URL,
    };
    return {
      app: createApp({
        ...kitDepsFromEnv(env, infra.logger),
        kv: infra.kv,
        proxy: createProxy({
          upstreams,
          // An upload's response comes only after its last byte, so its wait is as long as the transfer.
          timeoutMs: (service, method) => (service === 'file-manager' && (method === 'POST' || method === 'PUT') ? env.UPLOAD_TIMEOUT_MS : env.UPSTREAM_TIMEOUT_MS),
        }),
        health: createHealthFanout({ upstreams, timeoutMs: env.HEALTH_TIMEOUT_MS }),
      }),
      // The gateway streams bodies through; size limits per route class are the upstreams' to enforce.
      maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    };
  },
});
