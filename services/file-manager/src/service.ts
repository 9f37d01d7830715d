/** How the runners start file-manager: port 8004, Postgres schema `files`. */
import { PLATFORM_VERSION } from '@shared/version.ts';
import { z } from '@hono/zod-openapi';
import { kitDepsFromEnv } from '@shared/app.ts';
import { serviceEnvSchema } from '@shared/config.ts';
import { createServiceAuth } from '@shared/service-auth.ts';
import { defineService } from '@shared/service.ts';
import { join } from 'node:path';
import { createApp } from './app.ts';
import { createInFlight } from '@shared/in-flight.ts';
import { configuredKeys } from '@shared/secret-box.ts';
import { createDownloadLinks } from './download-links.ts';
import { createRetentionWorker } from './retention.ts';
import { createLocalStorage } from './storage.ts';
import { vcfValidatorFor } from './vcf-validation.ts';

const GiB = 1024 ** 3;

export const definition = defineService({
  name: 'file-manager',
  version: PLATFORM_VERSION,
  port: 8004,
  schema: 'files',
  envSchema: serviceEnvSchema(8004).extend({
    STORAGE_DIR: z.string().optional(),
    MAX_UPLOAD_BYTES: z.coerce.number().int().min(1).default(20 * GiB),
    USER_QUOTA_BYTES: z.coerce.number().int().min(1).default(200 * GiB),
    /** HMAC key of signed download links (`id:base64 of 32 bytes`); a local key file when unset. */
    LINK_SIGNING_KEY: z.string().optional(),
    PUBLIC_API_URL: z.url({ protocol: /^https?$/ }).default('http://127.0.0.1:8000/api'),
    /** Days an uploaded input is kept; 0 keeps it until its owner deletes it. */
    INPUT_RETENTION_DAYS: z.coerce.number().min(0).default(30),
    /** Days a result is kept; 0 (the default) keeps results until their owner deletes them. */
    RESULT_RETENTION_DAYS: z.coerce.number().min(0).default(0),
    RETENTION_INTERVAL_MINUTES: z.coerce.number().min(1).default(60),
    /** Age after which a stored object without a row, or an untouched temporary file, is a crash's leftover. */
    ORPHAN_GRACE_MINUTES: z.coerce.number().min(1).default(60),
  }),
  build: async (env, infra) => {
    const storageDir = env.STORAGE_DIR ?? join(env.DATA_DIR, 'files');
    const [linkKey] = await configuredKeys(env.LINK_SIGNING_KEY, join(env.DATA_DIR, 'secrets', 'download-links.key'));
    const days = (n: number) => (n > 0 ? n * 86_400_000 : null);
    const limits = {
      maxBytes: env.MAX_UPLOAD_BYTES,
      quotaBytes: env.USER_QUOTA_BYTES,
      retentionMs: { input: days(env.INPUT_RETENTION_DAYS), result: days(env.RESULT_RETENTION_DAYS) },
    };
    const storage = createLocalStorage(storageDir);
    const retention = createRetentionWorker({
      db: infra.database.db,
      storage,
      logger: infra.logger,
      intervalMs: env.RETENTION_INTERVAL_MINUTES * 60_000,
      orphanGraceMs: env.ORPHAN_GRACE_MINUTES * 60_000,
    });
    const uploads = createInFlight();
    return {
      start: async () => retention.start(),
      // After the HTTP drain: an upload cut short by it removes its partial file before the database closes.
      stop: async () => {
        await uploads.settled();
        await retention.stop();
      },
      app: createApp({
        ...kitDepsFromEnv(env, infra.logger),
        authenticator: createServiceAuth('file-manager', env, infra.kv).authenticator,
        database: infra.database,
        storage,
        storageDir,
        limits,
        validatorFor: vcfValidatorFor,
        links: createDownloadLinks(linkKey!.key),
        publicApiUrl: env.PUBLIC_API_URL,
        uploads,
      }),
      // Bun rejects larger bodies before the handler runs; the handler enforces the exact limit while streaming.
      maxRequestBodySize: env.MAX_UPLOAD_BYTES + 1024 * 1024,
    };
  },
});
