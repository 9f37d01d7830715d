/** notification HTTP app: event intake, in-app notifications, live stream, email and webhooks. Every route outside the kit's public ones needs a verified identity. */
import { createServiceApp, type KitDeps, type ServiceApp } from '@shared/app.ts';
import type { Authenticator } from '@shared/auth.ts';
import type { Database } from '@shared/db.ts';
import { pingCheck } from '@shared/health.ts';
import type { Kv } from '@shared/kv.ts';
import { internalEventRoutes } from './routes/internal-events.ts';

export interface NotificationDeps extends KitDeps {
  authenticator: Authenticator;
  database: Database;
  kv: Kv;
}

/** Builds the notification app from its dependencies; no I/O until a request arrives. */
export function createApp(deps: NotificationDeps): ServiceApp {
  const app = createServiceApp({
    ...deps,
    name: 'notification',
    version: '0.1.0',
    description: 'event intake, in-app notifications, live stream, email and webhooks',
    auth: { authenticator: deps.authenticator },
    readiness: [pingCheck('database', deps.database), pingCheck('kv', deps.kv)],
  });
  app.route('/', internalEventRoutes({ db: deps.database.db }));
  return app;
}
