/** How the runners start user-service: port 8001, Postgres schema `users`. */
import { PLATFORM_VERSION } from '@shared/version.ts';
import { z } from '@hono/zod-openapi';
import { outbox } from '@db/schema/users.ts';
import { kitDepsFromEnv } from '@shared/app.ts';
import { createServiceCredential, type ServiceCredential } from '@shared/auth.ts';
import { platformUrlsEnv, serviceEnvSchema } from '@shared/config.ts';
import { platformOutboxRelay } from '@shared/event-sink.ts';
import { configuredKeys, createSecretBox } from '@shared/secret-box.ts';
import { defineService } from '@shared/service.ts';
import { join } from 'node:path';
import { createApp } from './app.ts';
import { createCredentialExpiryNotifier } from './credential-expiry.ts';
import type { TokenIssuer } from './token-issuer.ts';

/** Services that may ask for a service token, each with its own secret in `SERVICE_SECRET_<NAME>`. */
export const CLIENT_SERVICES = ['api-gateway', 'service-registry', 'job-processor', 'file-manager', 'notification', 'monitoring'] as const;

export function secretVariable(service: string): string {
  return `SERVICE_SECRET_${service.toUpperCase().replace(/-/g, '_')}`;
}

/**
 * user-service's own credential for calls to other services (its outbox relay). It is the issuer, so
 * it signs a service token for itself with its current signing key rather than asking itself over
 * HTTP with a secret; consumers verify it against the same JWKS as every other service token.
 */
export function selfServiceCredential(tokens: TokenIssuer, now: () => number = Date.now): ServiceCredential {
  return createServiceCredential(async () => {
    const issued = await tokens.serviceToken('user-service');
    return { token: issued.token, expiresAt: now() + issued.expiresIn * 1000 };
  }, now);
}

export const definition = defineService({
  name: 'user-service',
  version: PLATFORM_VERSION,
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
    /** Where credential.expiring events go. */
    NOTIFICATION_URL: platformUrlsEnv.NOTIFICATION_URL,
    /** A stored credential's owner is told this many days before its token expires. */
    CREDENTIAL_EXPIRY_NOTICE_DAYS: z.coerce.number().min(0).max(90).default(7),
    CREDENTIAL_EXPIRY_CHECK_MINUTES: z.coerce.number().min(1).max(1440).default(60),
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
    const relay = platformOutboxRelay({
      db: infra.database.db,
      table: outbox,
      logger: infra.logger,
      credential: selfServiceCredential(domain.tokens),
      consumers: { notification: env.NOTIFICATION_URL },
    });
    const expiry = createCredentialExpiryNotifier({
      db: infra.database.db,
      logger: infra.logger.child({ worker: 'credential-expiry' }),
      noticeMs: env.CREDENTIAL_EXPIRY_NOTICE_DAYS * 86_400_000,
      intervalMs: env.CREDENTIAL_EXPIRY_CHECK_MINUTES * 60_000,
      onNotified: () => relay.wake(),
    });
    return {
      app,
      start: async () => {
        relay.start();
        expiry.start();
      },
      stop: async () => {
        // The notifier first: its last round may still write events for the relay.
        await expiry.stop();
        await relay.stop();
      },
    };
  },
});
