/** How the runners start service-registry: port 8002, Postgres schema `registry`. */
import { kitDepsFromEnv } from '@shared/app.ts';
import { serviceEnvSchema } from '@shared/config.ts';
import { createServiceAuth } from '@shared/service-auth.ts';
import { defineService } from '@shared/service.ts';
import { createApp } from './app.ts';

export const definition = defineService({
  name: 'service-registry',
  version: '0.1.0',
  port: 8002,
  schema: 'registry',
  envSchema: serviceEnvSchema(8002),
  build: (env, infra) => ({
    app: createApp({ ...kitDepsFromEnv(env, infra.logger), authenticator: createServiceAuth('service-registry', env, infra.kv).authenticator, database: infra.database }),
  }),
});
