/** file-manager HTTP app: streaming uploads, VCF validation, storage and downloads. Every route outside the kit's public ones needs a verified identity. */
import { createServiceApp, type KitDeps, type ServiceApp } from '@shared/app.ts';
import type { Authenticator } from '@shared/auth.ts';
import type { Database } from '@shared/db.ts';
import { pingCheck } from '@shared/health.ts';
import { storageCheck } from './storage-check.ts';

export interface FileManagerDeps extends KitDeps {
  authenticator: Authenticator;
  database: Database;
  storageDir: string;
}

/** Builds the file-manager app from its dependencies; no I/O until a request arrives. */
export function createApp(deps: FileManagerDeps): ServiceApp {
  return createServiceApp({
    ...deps,
    name: 'file-manager',
    version: '0.1.0',
    description: 'streaming uploads, VCF validation, storage and downloads',
    auth: { authenticator: deps.authenticator },
    readiness: [pingCheck('database', deps.database), storageCheck(deps.storageDir)],
  });
}
