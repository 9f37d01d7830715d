/** How the runners start file-manager: port 8004, Postgres schema `files`. */
import { z } from '@hono/zod-openapi';
import { kitDepsFromEnv } from '@shared/app.ts';
import { serviceEnvSchema } from '@shared/config.ts';
import { createServiceAuth } from '@shared/service-auth.ts';
import { defineService } from '@shared/service.ts';
import { createApp } from './app.ts';
import { join } from 'node:path';

export const definition = defineService({
  name: 'file-manager',
  version: '0.1.0',
  port: 8004,
  schema: 'files',
  envSchema: serviceEnvSchema(8004).extend({ STORAGE_DIR: z.string().optional() }),
  build: (env, infra) => ({
    app: createApp({ ...kitDepsFromEnv(env, infra.logger), authenticator: createServiceAuth('file-manager', env, infra.kv).authenticator, database: infra.database, storageDir: env.STORAGE_DIR ?? join(env.DATA_DIR, 'files') }),
  }),
});
