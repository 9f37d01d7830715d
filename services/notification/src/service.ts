/** How the runners start notification: port 8005, Postgres schema `notify`. */
import { kitDepsFromEnv } from '@shared/app.ts';
import { serviceEnvSchema } from '@shared/config.ts';
import { createServiceAuth } from '@shared/service-auth.ts';
import { defineService } from '@shared/service.ts';
import { createApp } from './app.ts';

export const definition = defineService({
  name: 'notification',
  version: '0.1.0',
  port: 8005,
  schema: 'notify',
  envSchema: serviceEnvSchema(8005),
  build: (env, infra) => ({
    app: createApp({ ...kitDepsFromEnv(env, infra.logger), authenticator: createServiceAuth('notification', env, infra.kv).authenticator, database: infra.database, kv: infra.kv }),
  }),
});
