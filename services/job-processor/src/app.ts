/** job-processor HTTP app: job lifecycle, durable queue, protocol adapters and result retrieval. Every route outside the kit's public ones needs a verified identity. */
import { PLATFORM_VERSION } from '@shared/version.ts';
import { createServiceApp, type KitDeps, type ServiceApp } from '@shared/app.ts';
import type { Authenticator } from '@shared/auth.ts';
import type { Database } from '@shared/db.ts';
import { pingCheck } from '@shared/health.ts';
import type { SecretBox } from '@shared/secret-box.ts';
import type { FilesClient, RegistryClient, VaultClient } from './platform-clients.ts';
import { jobRoutes } from './routes/jobs.ts';
import { internalStatsRoutes } from './routes/internal-stats.ts';

export const JOB_PROCESSOR_VERSION = PLATFORM_VERSION;

export interface JobProcessorDeps extends KitDeps {
  authenticator: Authenticator;
  database: Database;
  box: SecretBox;
  registry: RegistryClient;
  files: FilesClient;
  vault: VaultClient;
  /** Wakes this process's workers after a commit that gave them work. */
  wake?: () => void;
  /** False for a worker-only replica: it serves the operational endpoints, not the jobs API. */
  serveApi?: boolean;
  now?: () => number;
}

/** Builds the job-processor app from its dependencies; no I/O until a request arrives. */
export function createApp(deps: JobProcessorDeps): ServiceApp {
  const app = createServiceApp({
    ...deps,
    name: 'job-processor',
    version: JOB_PROCESSOR_VERSION,
    description: 'job lifecycle, durable queue, protocol adapters and result retrieval',
    auth: { authenticator: deps.authenticator },
    readiness: [pingCheck('database', deps.database)],
  });
  if (deps.serveApi === false) return app;
  app.route('/', jobRoutes({ db: deps.database.db, box: deps.box, registry: deps.registry, files: deps.files, vault: deps.vault, wake: deps.wake, now: deps.now }));
  app.route('/', internalStatsRoutes({ db: deps.database.db, now: deps.now }));
  return app;
}
