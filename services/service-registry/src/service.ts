/** How the runners start service-registry: port 8002, Postgres schema `registry`. */
import { kitDepsFromEnv } from '@shared/app.ts';
import { serviceEnvSchema } from '@shared/config.ts';
import { defineService } from '@shared/service.ts';
import { createApp } from './app.ts';

export const definition = defineService({
  name: 'service-registry',
  version: '0.1.0',
  port: 8002,
  schema: 'registry',
  envSchema: serviceEnvSchema(8002),
  build: (env, infra) => ({
    app: createApp({ ...kitDepsFromEnv(env, infra.logger), database: infra.database }),
  }),
});
