/** job-processor HTTP app: job lifecycle, durable queue, protocol adapters and result retrieval. Domain routes arrive with their issues; today it serves the kit. */
import { createServiceApp, type KitDeps, type ServiceApp } from '@shared/app.ts';
import type { Database } from '@shared/db.ts';
import { pingCheck } from '@shared/health.ts';

export interface JobProcessorDeps extends KitDeps {
  database: Database;

}

/** Builds the job-processor app from its dependencies; no I/O until a request arrives. */
export function createApp(deps: JobProcessorDeps): ServiceApp {
  return createServiceApp({
    ...deps,
    name: 'job-processor',
    version: '0.1.0',
    description: 'job lifecycle, durable queue, protocol adapters and result retrieval',
    readiness: [pingCheck('database', deps.database)],
  });
}
