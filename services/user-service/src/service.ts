/** How the runners start user-service: port 8001, Postgres schema `users`. */
import { z } from '@hono/zod-openapi';
import { kitDepsFromEnv } from '@shared/app.ts';
import { serviceEnvSchema } from '@shared/config.ts';
import { configuredKeys, createSecretBox } from '@shared/secret-box.ts';
import { defineService } from '@shared/service.ts';
import { join } from 'node:path';
import { createApp } from './app.ts';

/** Services that may ask for a service token, each with its own secret in `SERVICE_SECRET_<NAME>`. */
export const CLIENT_SERVICES = ['api-gateway', 'service-registry', 'job-processor', 'file-manager', 'notification', 'monitoring'] as const;

export function secretVariable(service: string): string {
  return `SERVICE_SECRET_${service.toUpperCase().replace(/-/g, '_')}`;
}

export const definition = defineService({
  name: 'user-service',
  version: '0.2.0',
  port: 8001,
  schema: 'users',
  envSchema: serviceEnvSchema(8001).extend({
    ACCESS_TOKEN_TTL_SECONDS: z.coerce.number().int().min(60).max(3600).default(900),
    REFRESH_TOKEN_TTL_DAYS: z.coerce.number().int().min(1).max(365).default(30),
    ENCRYPTION_KEYS: z.string().optional(),
    ...Object.fromEntries(CLIENT_SERVICES.map((name) => [secretVariable(name), z.string().min(16).optional()])),
    TRUST_FORWARDED_FOR: z.stringbool().default(true),
    LOGIN_MAX_FAILURES: z.coerce.number().int().min(1).max(100).default(5),
    LOGIN_LOCKOUT_MINUTES: z.coerce.number().int().min(1).max(1440).default(15),
    LOGIN_IP_ATTEMPTS_PER_MINUTE: z.coerce.number().int().min(1).max(10_000).default(30),
    REGISTRATIONS_PER_HOUR_PER_IP: z.coerce.number().int().min(1).max(100_000).default(10),
    ADMIN_USERNAME: z.string().optional(),
    ADMIN_EMAIL: z.email().optional(),
    ADMIN_PASSWORD: z.string().optional(),
  }),
  build: async (env, infra) => {
    const keys = await configuredKeys(env.ENCRYPTION_KEYS, join(env.DATA_DIR, 'secrets', 'encryption.key'));
    const configured = env as unknown as Record<string, string | undefined>;
    const serviceSecrets = new Map(
      CLIENT_SERVICES.flatMap((name) => (configured[secretVariable(name)] ? [[name, configured[secretVariable(name)]!] as const] : [])),
    );
    const { app, domain } = createApp({
      ...kitDepsFromEnv(env, infra.logger),
      database: infra.database,
      kv: infra.kv,
      box: await createSecretBox(keys),
      config: {
        issuer: env.JWT_ISSUER,
        accessTokenTtlSeconds: env.ACCESS_TOKEN_TTL_SECONDS,
        refreshTokenTtlMs: env.REFRESH_TOKEN_TTL_DAYS * 86_400_000,
        serviceSecrets,
        trustForwardedFor: env.TRUST_FORWARDED_FOR,
        registrationsPerHourPerIp: env.REGISTRATIONS_PER_HOUR_PER_IP,
        login: {
          maxFailures: env.LOGIN_MAX_FAILURES,
          lockoutMs: env.LOGIN_LOCKOUT_MINUTES * 60_000,
          ipAttemptsPerMinute: env.LOGIN_IP_ATTEMPTS_PER_MINUTE,
        },
      },
    });
    const adminVars = [env.ADMIN_USERNAME, env.ADMIN_EMAIL, env.ADMIN_PASSWORD].filter(Boolean).length;
    if (adminVars !== 0 && adminVars !== 3) throw new Error('ADMIN_USERNAME, ADMIN_EMAIL and ADMIN_PASSWORD must be set together');
    if (env.ADMIN_USERNAME && env.ADMIN_EMAIL && env.ADMIN_PASSWORD) {
      const created = await domain.accounts.ensureAdmin({
        username: env.ADMIN_USERNAME,
        email: env.ADMIN_EMAIL,
        password: env.ADMIN_PASSWORD,
        firstName: 'Platform',
        lastName: 'Administrator',
      });
      if (created) infra.logger.info('first admin created', { username: created.username });
    }
    return { app };
  },
});
