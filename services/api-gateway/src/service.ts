/** How the runners start api-gateway: port 8000, no database of its own (the KV holds rate limits). */
import { PLATFORM_VERSION } from '@shared/version.ts';
import { z } from '@hono/zod-openapi';
import { kitDepsFromEnv } from '@shared/app.ts';
import { createCircuitBreaker } from '@shared/circuit-breaker.ts';
import { platformUrlsEnv, serviceEnvSchema } from '@shared/config.ts';
import { createServiceAuth } from '@shared/service-auth.ts';
import { defineService } from '@shared/service.ts';
import { createApp } from './app.ts';
import { parseOrigins } from './cors.ts';
import { defaultDocsAssetsDir, loadDocsUi } from './docs-ui.ts';
import { createHealthFanout } from './health-fanout.ts';
import { createProxy } from './proxy.ts';
import { createRateLimiter, KV_DOWN_POLICIES, parseLimit, type Limit } from './rate-limits.ts';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

/** A rate limit written `<requests>/<window>` (`600/1m`, `20/30s`) or `off`. */
const limitEnv = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((text, ctx) => {
      const limit = parseLimit(text);
      if (limit === undefined) {
        ctx.addIssue({ code: 'custom', message: 'must be <requests>/<window> such as 600/1m, 20/30s or 100/1h, or off' });
        return z.NEVER;
      }
      return limit as Limit | null;
    });

/** Comma-separated origins (`https://app.example.org`) or `*`. */
const originsEnv = z
  .string()
  .default('')
  .transform((text, ctx) => {
    try {
      return parseOrigins(text);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be comma-separated origins such as https://app.example.org, or *' });
      return z.NEVER;
    }
  });

export const definition = defineService({
  name: 'api-gateway',
  version: PLATFORM_VERSION,
  port: 8000,
  schema: null,
  envSchema: serviceEnvSchema(8000).extend({
    ...platformUrlsEnv,
    UPSTREAM_TIMEOUT_MS: z.coerce.number().int().min(100).default(30_000),
    UPLOAD_TIMEOUT_MS: z.coerce.number().int().min(1000).default(6 * 60 * 60_000),
    HEALTH_TIMEOUT_MS: z.coerce.number().int().min(50).default(1000),
    /** Largest body of any route but uploads. */
    MAX_JSON_BODY_BYTES: z.coerce.number().int().min(1024).default(MiB),
    /** The same variable file-manager reads, so one setting limits uploads at both. */
    MAX_UPLOAD_BYTES: z.coerce.number().int().min(1).default(20 * GiB),
    CORS_ORIGINS: originsEnv,
    HSTS_MAX_AGE_SECONDS: z.coerce.number().int().min(0).default(0),
    /** Only behind a proxy that appends the client's address: otherwise any client could pick its own. */
    GATEWAY_TRUST_FORWARDED_FOR: z.stringbool().default(false),
    RATE_LIMIT_USER: limitEnv('600/1m'),
    RATE_LIMIT_ANONYMOUS: limitEnv('120/1m'),
    RATE_LIMIT_AUTH: limitEnv('20/1m'),
    RATE_LIMIT_UPLOADS: limitEnv('100/1h'),
    RATE_LIMIT_KV_DOWN: z.enum(KV_DOWN_POLICIES).default('closed-for-auth'),
    RATE_LIMIT_KV_TIMEOUT_MS: z.coerce.number().int().min(10).default(250),
    GATEWAY_CIRCUIT_FAILURES: z.coerce.number().int().min(1).default(5),
    GATEWAY_CIRCUIT_COOL_DOWN_MS: z.coerce.number().int().min(100).default(10_000),
    OPENAPI_REFRESH_MS: z.coerce.number().int().min(1000).default(60_000),
    OPENAPI_FETCH_TIMEOUT_MS: z.coerce.number().int().min(50).default(2000),
    /** swagger-ui-dist's files for `/docs`; unset, they are found in node_modules (images copy them and set this). */
    DOCS_ASSETS_DIR: z.string().min(1).optional(),
  }),
  build: async (env, infra) => {
    const upstreams = {
      'user-service': env.USER_SERVICE_URL,
      'service-registry': env.SERVICE_REGISTRY_URL,
      'job-processor': env.JOB_PROCESSOR_URL,
      'file-manager': env.FILE_MANAGER_URL,
      notification: env.NOTIFICATION_URL,
      monitoring: env.MONITORING_URL,
    };
    const limits = {
      user: env.RATE_LIMIT_USER,
      anonymous: env.RATE_LIMIT_ANONYMOUS,
      auth: env.RATE_LIMIT_AUTH,
      uploads: env.RATE_LIMIT_UPLOADS,
    };
    const breaker = createCircuitBreaker({ threshold: env.GATEWAY_CIRCUIT_FAILURES, coolDownMs: env.GATEWAY_CIRCUIT_COOL_DOWN_MS });
    // Multipart framing around the file is small; a MiB of room keeps a full-size upload legal here.
    const uploadBytes = env.MAX_UPLOAD_BYTES + MiB;
    const { app } = createApp({
      ...kitDepsFromEnv(env, infra.logger),
      kv: infra.kv,
      authenticator: createServiceAuth('api-gateway', env, infra.kv).authenticator,
      proxy: createProxy({
        upstreams,
        // An upload's response comes only after its last byte, so its wait is as long as the transfer.
        timeoutMs: (service, method) => (service === 'file-manager' && (method === 'POST' || method === 'PUT') ? env.UPLOAD_TIMEOUT_MS : env.UPSTREAM_TIMEOUT_MS),
        breaker,
        logger: infra.logger,
      }),
      breaker,
      health: createHealthFanout({ upstreams, timeoutMs: env.HEALTH_TIMEOUT_MS }),
      rateLimiter: createRateLimiter({ kv: infra.kv, limits, kvDown: env.RATE_LIMIT_KV_DOWN, timeoutMs: env.RATE_LIMIT_KV_TIMEOUT_MS, logger: infra.logger }),
      limits,
      bodyLimits: { jsonBytes: env.MAX_JSON_BODY_BYTES, uploadBytes },
      corsOrigins: env.CORS_ORIGINS,
      hstsMaxAgeSeconds: env.HSTS_MAX_AGE_SECONDS,
      trustForwardedFor: env.GATEWAY_TRUST_FORWARDED_FOR,
      openapi: { upstreams, timeoutMs: env.OPENAPI_FETCH_TIMEOUT_MS, refreshMs: env.OPENAPI_REFRESH_MS },
      docs: await loadDocsUi(env.DOCS_ASSETS_DIR ?? defaultDocsAssetsDir(import.meta.dir)),
    });
    return {
      app,
      // Bun refuses anything larger before a handler runs; the per-route limits are enforced by the proxy.
      maxRequestBodySize: Math.max(uploadBytes, env.MAX_JSON_BODY_BYTES),
    };
  },
});
