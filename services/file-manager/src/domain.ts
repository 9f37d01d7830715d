/** file-manager's domain objects, built from its infrastructure and shared by the route groups. */
import type { Db } from '@shared/db.ts';
import type { InFlight } from '@shared/in-flight.ts';
import type { DownloadLinks } from './download-links.ts';
import type { FileStorage } from './storage.ts';
import type { StreamValidator, UploadLimits } from './uploads.ts';

/** Picks a streaming validator for an upload by its name (and declared build), or none. */
export type ValidatorFor = (name: string, declaredBuild?: 'hg19' | 'hg38') => StreamValidator | null;

export interface FileManagerDomain {
  db: Db;
  storage: FileStorage;
  limits: UploadLimits;
  validatorFor: ValidatorFor;
  links: DownloadLinks;
  /** Public base of the API (the gateway's `/api`), for absolute link URLs. */
  publicApiUrl: string;
  /** Uploads being received: stopping waits for them, so a cut upload removes its partial file before the database closes. */
  uploads: InFlight;
}
