/** How the runners start user-service: port 8001, Postgres schema `users`. */
import { kitDepsFromEnv } from '@shared/app.ts';
import { serviceEnvSchema } from '@shared/config.ts';
import { defineService } from '@shared/service.ts';
import { createApp } from './app.ts';

export const definition = defineService({
  name: 'user-service',
  version: '0.1.0',
  port: 8001,
  schema: 'users',
  envSchema: serviceEnvSchema(8001),
  build: (env, infra) => ({
    app: createApp({ ...kitDepsFromEnv(env, infra.logger), database: infra.database, kv: infra.kv }),
  }),
});
