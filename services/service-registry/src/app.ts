/** service-registry HTTP app: catalogue of imputation services and panels, health, discovery and GA4GH views. Every route outside the kit's public ones needs a verified identity. */
import { PLATFORM_VERSION } from '@shared/version.ts';
import { createServiceApp, type KitDeps, type ServiceApp } from '@shared/app.ts';
import type { Authenticator } from '@shared/auth.ts';
import type { Database } from '@shared/db.ts';
import { pingCheck } from '@shared/health.ts';
import type { OutboundPolicy } from '@shared/outbound.ts';
import type { Catalogue } from './catalogue-store.ts';
import type { ServiceRow } from './domain.ts';
import type { SyncReport } from './panel-sync.ts';
import { discoverRoutes } from './routes/discover.ts';
import { ga4ghRegistryRoutes } from './routes/ga4gh-registry.ts';
import { healthRoutes } from './routes/health.ts';
import { panelRoutes } from './routes/panels.ts';
import { serviceRoutes } from './routes/services.ts';
import { syncRoutes } from './routes/sync.ts';

export const REGISTRY_VERSION = PLATFORM_VERSION;

export interface RegistryDeps extends KitDeps {
  authenticator: Authenticator;
  database: Database;
  catalogue: Catalogue;
  policy: OutboundPolicy;
  /** Probes one service now and stores the outcome. */
  probe: (serviceId: string) => Promise<unknown>;
  /** Syncs one service's panels and protocol facts with the calling admin's operator credential. */
  sync: (service: ServiceRow, adminUserId: string) => Promise<SyncReport>;
  /** The platform's own services, listed in the GA4GH registry next to the catalogue. */
  platform: { name: string; url: string; version: string }[];
}

/** Builds the service-registry app from its dependencies; no I/O until a request arrives. */
export function createApp(deps: RegistryDeps): ServiceApp {
  const app = createServiceApp({
    ...deps,
    name: 'service-registry',
    version: REGISTRY_VERSION,
    description: 'catalogue of imputation services and panels, health, discovery and GA4GH views',
    auth: { authenticator: deps.authenticator },
    readiness: [pingCheck('database', deps.database)],
  });
  const { catalogue } = deps;
  // Static paths before `/services/{id}`: the first registered match answers.
  app.route('/', discoverRoutes({ catalogue }));
  app.route('/', serviceRoutes({ catalogue }));
  app.route('/', panelRoutes({ catalogue }));
  app.route('/', healthRoutes({ catalogue, db: deps.database.db, policy: deps.policy, probe: deps.probe }));
  app.route('/', syncRoutes({ catalogue, sync: deps.sync }));
  app.route(
    '/',
    ga4ghRegistryRoutes({
      snapshot: () => catalogue.snapshot(),
      platform: deps.platform,
      organization: deps.organization,
      version: REGISTRY_VERSION,
    }),
  );
  return app;
}
