/** job-processor HTTP app: job lifecycle, durable queue, protocol adapters and result retrieval. Every route outside the kit's public ones needs a verified identity. */
import { createServiceApp, type KitDeps, type ServiceApp } from '@shared/app.ts';
import type { Authenticator } from '@shared/auth.ts';
import type { Database } from '@shared/db.ts';
import { pingCheck } from '@shared/health.ts';

export interface JobProcessorDeps extends KitDeps {
  authenticator: Authenticator;
  database: Database;
}

/** Builds the job-processor app from its dependencies; no I/O until a request arrives. */
export function createApp(deps: JobProcessorDeps): ServiceApp {
  return createServiceApp({
    ...deps,
    name: 'job-processor',
    version: '0.1.0',
    description: 'job lifecycle, durable queue, protocol adapters and result retrieval',
    auth: { authenticator: deps.authenticator },
    readiness: [pingCheck('database', deps.database)],
  });
}
