/** How the runners start monitoring: port 8006, Postgres schema `monitor`. */
import { kitDepsFromEnv } from '@shared/app.ts';
import { serviceEnvSchema } from '@shared/config.ts';
import { createServiceAuth } from '@shared/service-auth.ts';
import { defineService } from '@shared/service.ts';
import { createApp } from './app.ts';

export const definition = defineService({
  name: 'monitoring',
  version: '0.1.0',
  port: 8006,
  schema: 'monitor',
  envSchema: serviceEnvSchema(8006),
  build: (env, infra) => ({
    app: createApp({ ...kitDepsFromEnv(env, infra.logger), authenticator: createServiceAuth('monitoring', env, infra.kv).authenticator, database: infra.database }),
  }),
});
