/** file-manager HTTP app: streaming uploads, VCF pre-flight validation, storage and ranged downloads. */
import { PLATFORM_VERSION } from '@shared/version.ts';
import { createServiceApp, type KitDeps, type ServiceApp } from '@shared/app.ts';
import { createInFlight, type InFlight } from '@shared/in-flight.ts';
import type { Authenticator } from '@shared/auth.ts';
import type { Database } from '@shared/db.ts';
import { pingCheck } from '@shared/health.ts';
import type { ValidatorFor } from './domain.ts';
import type { DownloadLinks } from './download-links.ts';
import { fileRoutes } from './routes/files.ts';
import { internalFileRoutes } from './routes/internal-files.ts';
import { internalHoldRoutes } from './routes/internal-holds.ts';
import { internalResultRoutes } from './routes/internal-results.ts';
import { internalStatsRoutes } from './routes/internal-stats.ts';
import { storageCheck } from './storage-check.ts';
import type { FileStorage } from './storage.ts';
import type { UploadLimits } from './uploads.ts';

/** The one route a signed download link opens. */
const SIGNED_CONTENT_PATH = /^\/files\/[^/]+\/content$/;

export interface FileManagerDeps extends KitDeps {
  authenticator: Authenticator;
  database: Database;
  storage: FileStorage;
  storageDir: string;
  limits: UploadLimits;
  validatorFor: ValidatorFor;
  links: DownloadLinks;
  publicApiUrl: string;
  /** Tracks uploads in progress (the service's stop waits for them); a fresh set when omitted. */
  uploads?: InFlight;
}

/** Builds the file-manager app from its dependencies; no I/O until a request arrives. */
export function createApp(deps: FileManagerDeps): ServiceApp {
  const app = createServiceApp({
    ...deps,
    name: 'file-manager',
    version: PLATFORM_VERSION,
    description: 'Streaming uploads, VCF pre-flight validation, storage and ranged downloads',
    auth: {
      authenticator: deps.authenticator,
      // A download with a signed link is authorised by the link; the public content route verifies it.
      // Only that route: the internal one has no link check and must keep its token check.
      carriesOwnProof: (c) => SIGNED_CONTENT_PATH.test(c.req.path) && c.req.query('sig') !== undefined,
    },
    readiness: [pingCheck('database', deps.database), storageCheck(deps.storageDir)],
  });
  const { database, storage, limits, validatorFor, links, publicApiUrl } = deps;
  const domain = { db: database.db, storage, limits, validatorFor, links, publicApiUrl, uploads: deps.uploads ?? createInFlight() };
  app.route('/', fileRoutes(domain));
  app.route('/', internalResultRoutes(domain));
  app.route('/', internalFileRoutes(domain));
  app.route('/', internalHoldRoutes(domain));
  app.route('/', internalStatsRoutes({ db: database.db }));
  return app;
}
