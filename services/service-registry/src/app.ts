/** service-registry HTTP app: catalogue of imputation services and panels, health, discovery and GA4GH views. Every route outside the kit's public ones needs a verified identity. */
import { createServiceApp, type KitDeps, type ServiceApp } from '@shared/app.ts';
import type { Authenticator } from '@shared/auth.ts';
import type { Database } from '@shared/db.ts';
import { pingCheck } from '@shared/health.ts';

export interface RegistryDeps extends KitDeps {
  authenticator: Authenticator;
  database: Database;
}

/** Builds the service-registry app from its dependencies; no I/O until a request arrives. */
export function createApp(deps: RegistryDeps): ServiceApp {
  return createServiceApp({
    ...deps,
    name: 'service-registry',
    version: '0.1.0',
    description: 'catalogue of imputation services and panels, health, discovery and GA4GH views',
    auth: { authenticator: deps.authenticator },
    readiness: [pingCheck('database', deps.database)],
  });
}
