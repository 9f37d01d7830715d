/** monitoring HTTP app: deep health of every service, host metrics, alerts and dashboard. Every route outside the kit's public ones needs a verified identity. */
import { PLATFORM_VERSION } from '@shared/version.ts';
import { createServiceApp, type KitDeps, type ServiceApp } from '@shared/app.ts';
import type { Authenticator } from '@shared/auth.ts';
import type { Database } from '@shared/db.ts';
import { pingCheck } from '@shared/health.ts';
import { createMetrics, type Metrics } from '@shared/metrics.ts';
import type { AlertEngine } from './alert-engine.ts';
import type { HostSampler } from './host-sampler.ts';
import { alertRoutes } from './routes/alerts.ts';
import { dashboardRoutes } from './routes/dashboard.ts';
import { healthRoutes, registerHealthGauges } from './routes/health.ts';
import { internalEventRoutes } from './routes/internal-events.ts';
import { systemMetricsRoutes } from './routes/system-metrics.ts';
import type { ServiceProber } from './service-prober.ts';
import type { StatsClients } from './stats-clients.ts';

export const MONITORING_VERSION = PLATFORM_VERSION;

export interface MonitoringDeps extends KitDeps {
  authenticator: Authenticator;
  database: Database;
  prober: ServiceProber;
  hostSampler: HostSampler;
  engine: AlertEngine;
  stats: StatsClients;
  metrics?: Metrics;
  now?: () => number;
}

/** Builds the monitoring app from its dependencies; no I/O until a request arrives. */
export function createApp(deps: MonitoringDeps): ServiceApp {
  const metrics = deps.metrics ?? createMetrics({ service: 'monitoring' });
  const activeAlerts = () => deps.engine.active();
  registerHealthGauges(metrics, { prober: deps.prober, activeAlerts, logger: deps.logger });
  const app = createServiceApp({
    ...deps,
    metrics,
    name: 'monitoring',
    version: MONITORING_VERSION,
    description: 'deep health of every service, host metrics, alerts and dashboard',
    auth: { authenticator: deps.authenticator },
    readiness: [pingCheck('database', deps.database)],
  });
  const db = deps.database.db;
  app.route('/', healthRoutes({ db, prober: deps.prober, host: () => deps.hostSampler.latest(), activeAlerts }));
  app.route('/', systemMetricsRoutes({ sampler: deps.hostSampler }));
  app.route('/', alertRoutes({ db, engine: deps.engine }));
  app.route('/', internalEventRoutes({ db, engine: deps.engine }));
  app.route('/', dashboardRoutes({ stats: deps.stats, now: deps.now }));
  return app;
}
