/** How the runners start job-processor: port 8003, Postgres schema `jobs`. */
import { kitDepsFromEnv } from '@shared/app.ts';
import { serviceEnvSchema } from '@shared/config.ts';
import { createServiceAuth } from '@shared/service-auth.ts';
import { defineService } from '@shared/service.ts';
import { createApp } from './app.ts';

export const definition = defineService({
  name: 'job-processor',
  version: '0.1.0',
  port: 8003,
  schema: 'jobs',
  envSchema: serviceEnvSchema(8003),
  build: (env, infra) => ({
    app: createApp({ ...kitDepsFromEnv(env, infra.logger), authenticator: createServiceAuth('job-processor', env, infra.kv).authenticator, database: infra.database }),
  }),
});
