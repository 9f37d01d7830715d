/** notification HTTP app: event intake, in-app notifications, live stream, email and webhooks. Domain routes arrive with their issues; today it serves the kit. */
import { createServiceApp, type KitDeps, type ServiceApp } from '@shared/app.ts';
import type { Database } from '@shared/db.ts';
import { pingCheck } from '@shared/health.ts';
import type { Kv } from '@shared/kv.ts';

export interface NotificationDeps extends KitDeps {
  database: Database;
  kv: Kv;
}

/** Builds the notification app from its dependencies; no I/O until a request arrives. */
export function createApp(deps: NotificationDeps): ServiceApp {
  return createServiceApp({
    ...deps,
    name: 'notification',
    version: '0.1.0',
    description: 'event intake, in-app notifications, live stream, email and webhooks',
    readiness: [pingCheck('database', deps.database), pingCheck('kv', deps.kv)],
  });
}
