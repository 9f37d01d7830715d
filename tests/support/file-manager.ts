/**
 * file-manager built in-process the way the tests use it: real local storage in a directory the test
 * owns, the real VCF validator, a random signing key for download links, tokens checked with the test
 * identity (tests/support/test-identity.ts). Also serves it on a loopback port for tests that reach it
 * over HTTP (job-processor's files client).
 */
import type { ServiceApp } from '@shared/app.ts';
import type { Authenticator } from '@shared/auth.ts';
import type { Database } from '@shared/db.ts';
import { createMemoryKv } from '@shared/kv-memory.ts';
import { createLogger } from '@shared/log.ts';
import { createApp } from '../../services/file-manager/src/app.ts';
import { createDownloadLinks } from '../../services/file-manager/src/download-links.ts';
import { createLocalStorage } from '../../services/file-manager/src/storage.ts';
import type { UploadLimits } from '../../services/file-manager/src/uploads.ts';
import { vcfValidatorFor } from '../../services/file-manager/src/vcf-validation.ts';
import { testAuthenticator } from './test-identity.ts';

/** Room for every job test's inputs and results, kept until deleted (no retention sweep to race). */
export const JOB_TEST_LIMITS: UploadLimits = { maxBytes: 64 * 1024 * 1024, quotaBytes: 1024 * 1024 * 1024, retentionMs: { input: null, result: null } };

export interface FileManagerOptions {
  /** Migrated for the `files` schema (migrateAll does that). */
  database: Database;
  /** Where objects and temp files go; the test creates and removes it. */
  storageDir: string;
  /** Default JOB_TEST_LIMITS. */
  limits?: UploadLimits;
  /** The public API base signed links are made for. Default `http://127.0.0.1:1/api` (nothing listens there). */
  publicApiUrl?: string;
  /** Default the test identity over a fresh in-memory KV; pass one to share a KV with another service. */
  authenticator?: Authenticator;
}

/** Builds the file-manager app on real storage in `storageDir`; no I/O until a request arrives. */
export function buildFileManager(options: FileManagerOptions): ServiceApp {
  return createApp({
    logger: createLogger({ level: 'silent' }),
    readyTimeoutMs: 1000,
    organization: { name: 'test', url: 'https://example.org' },
    authenticator: options.authenticator ?? testAuthenticator(createMemoryKv()),
    database: options.database,
    storage: createLocalStorage(options.storageDir),
    storageDir: options.storageDir,
    limits: options.limits ?? JOB_TEST_LIMITS,
    validatorFor: vcfValidatorFor,
    links: createDownloadLinks(crypto.getRandomValues(new Uint8Array(32))),
    publicApiUrl: options.publicApiUrl ?? 'http://127.0.0.1:1/api',
  });
}

/** Serves `app` on a free loopback port; `stop` closes open connections too. */
export function serveFileManager(app: ServiceApp): { url: string; stop(): Promise<void> } {
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: app.fetch });
  return { url: `http://127.0.0.1:${server.port}`, stop: () => server.stop(true) };
}
