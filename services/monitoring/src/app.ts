/** monitoring HTTP app: deep health of every service, host metrics, alerts and dashboard. Every route outside the kit's public ones needs a verified identity. */
import { createServiceApp, type KitDeps, type ServiceApp } from '@shared/app.ts';
import type { Authenticator } from '@shared/auth.ts';
import type { Database } from '@shared/db.ts';
import { pingCheck } from '@shared/health.ts';

export interface MonitoringDeps extends KitDeps {
  authenticator: Authenticator;
  database: Database;
}

/** Builds the monitoring app from its dependencies; no I/O until a request arrives. */
export function createApp(deps: MonitoringDeps): ServiceApp {
  return createServiceApp({
    ...deps,
    name: 'monitoring',
    version: '0.1.0',
    description: 'deep health of every service, host metrics, alerts and dashboard',
    auth: { authenticator: deps.authenticator },
    readiness: [pingCheck('database', deps.database)],
  });
}
