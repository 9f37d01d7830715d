/** file-manager HTTP app: streaming uploads, VCF pre-flight validation, storage and ranged downloads. */
import { createServiceApp, type KitDeps, type ServiceApp } from '@shared/app.ts';
import type { Authenticator } from '@shared/auth.ts';
import type { Database } from '@shared/db.ts';
import { pingCheck } from '@shared/health.ts';
import type { ValidatorFor } from './domain.ts';
import { fileRoutes } from './routes/files.ts';
import { storageCheck } from './storage-check.ts';
import type { FileStorage } from './storage.ts';
import type { UploadLimits } from './uploads.ts';

export interface FileManagerDeps extends KitDeps {
  authenticator: Authenticator;
  database: Database;
  storage: FileStorage;
  storageDir: string;
  limits: UploadLimits;
  validatorFor: ValidatorFor;
}

/** Builds the file-manager app from its dependencies; no I/O until a request arrives. */
export function createApp(deps: FileManagerDeps): ServiceApp {
  const app = createServiceApp({
    ...deps,
    name: 'file-manager',
    version: '0.2.0',
    description: 'Streaming uploads, VCF pre-flight validation, storage and ranged downloads',
    auth: { authenticator: deps.authenticator },
    readiness: [pingCheck('database', deps.database), storageCheck(deps.storageDir)],
  });
  app.route('/', fileRoutes({ db: deps.database.db, storage: deps.storage, limits: deps.limits, validatorFor: deps.validatorFor }));
  return app;
}
