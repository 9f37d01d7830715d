/**
 * What the job worker's tests share (worker.test.ts, worker-crash.test.ts, queue-efficiency.test.ts):
 * a migrated test database, a real file-manager served over HTTP (inputs streamed out, results stored
 * in) with a files client holding job-processor's service token, a secret box, a vault that is a map of
 * credentials, Cloudgene fakes stopped on close, and builders for the job rows those tests insert
 * directly (a `target` snapshot pointing at a fake, a sealed zip password). Each test file keeps its
 * own clock, schedules and worker options; this only holds the parts that are the same in all of them.
 */
import { jobHistory, jobResults, jobs } from '@db/schema/jobs.ts';
import type { ServiceApp } from '@shared/app.ts';
import type { Db } from '@shared/db.ts';
import { createHttpClient } from '@shared/http-client.ts';
import type { Logger } from '@shared/log.ts';
import { createSecretBox, type SecretBox } from '@shared/secret-box.ts';
import type { Subprocess } from 'bun';
import { expect } from 'bun:test';
import { asc, eq } from 'drizzle-orm';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ServerCredential } from '../../services/job-processor/src/adapters/adapter.ts';
import type { JobRequest, JobRow, JobTarget } from '../../services/job-processor/src/domain.ts';
import { passwordAad } from '../../services/job-processor/src/job-store.ts';
import { createJobWorker, type JobWorker, type JobWorkerDeps } from '../../services/job-processor/src/job-worker.ts';
import { filesClient, type FilesClient, type VaultClient } from '../../services/job-processor/src/platform-clients.ts';
import { createPollSchedule, type PollScheduleOptions } from '../../services/job-processor/src/poll-schedule.ts';
import { makeFakeJwt, startCloudgeneFake, type CloudgeneFake, type CloudgeneFakeOptions } from '../fakes/cloudgene.ts';
import { buildFileManager, serveFileManager } from './file-manager.ts';
import { json } from './json.ts';
import { createTestDatabase, migrateAll, type TestDatabase } from './test-database.ts';
import { serviceTokenFor, tokenFor } from './test-identity.ts';
import { bgzip, makeVcf } from './vcf.ts';

export interface JobWorkerHarnessOptions {
  /** Names the storage directory (`fip-<name>-…`) and the secret box's key id (a child worker gets the same). */
  name: string;
  /** The adapters workers built by `worker()` use unless told otherwise. */
  adapters: JobWorkerDeps['adapters'];
  logger: Logger;
}

/** An input uploaded through file-manager's public API. */
export interface UploadedInput {
  id: string;
  name: string;
  sizeBytes: number;
}

/** A user of the tests: an id and one uploaded input. */
export interface WorkerTestUser {
  userId: string;
  input: UploadedInput;
}

/** A job row's columns; `name` is the only one without a default here. */
export type JobValues = Partial<typeof jobs.$inferInsert> & Pick<typeof jobs.$inferInsert, 'name'>;

/** What worker-process.ts needs besides what the harness knows (database, file-manager, token, key). */
export interface ChildWorkerConfig {
  owner: string;
  leaseMs: number;
  serviceIds: string[];
  /** What the child's vault releases. */
  credentials: { userId: string; slug: string; credential: ServerCredential }[];
  pollSchedule?: PollScheduleOptions;
}

export interface JobWorkerHarness {
  testDb: TestDatabase;
  db: Db;
  /** file-manager's storage (objects/ and tmp/ below it). */
  storageDir: string;
  fileManager: ServiceApp;
  fileManagerUrl: string;
  /** file-manager as job-processor reaches it: over HTTP with its service token. */
  files: FilesClient;
  box: SecretBox;
  /** The vault as job-processor sees it: hands out what `userFor` stored per user and service slug. */
  vault: VaultClient;
  /** Stops `fake` on close; answers it. */
  track<T extends { stop(): Promise<void> }>(fake: T): T;
  /** A Cloudgene fake accepting a fresh researcher token (stopped on close), and that token. */
  cloudgene(options?: CloudgeneFakeOptions): Promise<{ fake: CloudgeneFake; token: string }>;
  /** A catalogue entry frozen into the job, pointing at `fake`; a fresh service id and slug per call. */
  cloudgeneTarget(fake: CloudgeneFake, overrides?: Partial<JobTarget['service']>): JobTarget;
  /** Uploads a small bgzipped VCF (4 samples, chromosome 20) for the user through file-manager's public API. */
  upload(userId: string, name?: string): Promise<UploadedInput>;
  /** A fresh user with one uploaded input and, when `token` is given, that token in the vault for `target`. */
  userFor(target: JobTarget, token: string | null): Promise<WorkerTestUser>;
  /** Inserts a job of `user` on `target` requesting the user's input, its zip password sealed; `values` win. */
  insertJob(target: JobTarget, user: WorkerTestUser, values: JobValues): Promise<JobRow>;
  /** A worker on the harness's database, files, vault and box: five at a time, 60 s leases, polls without jitter unless `deps` says otherwise. */
  worker(deps: Pick<JobWorkerDeps, 'owner'> & Partial<JobWorkerDeps>): JobWorker;
  /** Starts worker-process.ts on this (real PostgreSQL) database; killed on close if still running. */
  spawnWorker(config: ChildWorkerConfig): Promise<Subprocess<'ignore', 'pipe', 'pipe'>>;
  jobRow(id: string): Promise<JobRow>;
  historyOf(id: string): Promise<(typeof jobHistory.$inferSelect)[]>;
  resultsOf(id: string): Promise<(typeof jobResults.$inferSelect)[]>;
  /** Kills child workers, stops the fakes and file-manager, drops the database, removes the storage. */
  close(): Promise<void>;
}

/**
 * Builds the job worker tests' shared setup: a fresh test database (migrated), file-manager on its own
 * storage directory served on a loopback port, and the clients, box and vault a worker needs. Call it in
 * `beforeAll` (it takes a few seconds on PostgreSQL) and `close()` in `afterAll`.
 */
export async function createJobWorkerHarness(options: JobWorkerHarnessOptions): Promise<JobWorkerHarness> {
  const fakes: { stop(): Promise<void> }[] = [];
  const children: Subprocess[] = [];
  const cleanups: (() => Promise<unknown>)[] = [];
  const close = async () => {
    for (const child of children) child.kill('SIGKILL');
    await Promise.all(children.map((child) => child.exited));
    await Promise.all(fakes.map((f) => f.stop()));
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  };

  try {
    const testDb = await createTestDatabase();
    cleanups.push(() => testDb.drop());
    await migrateAll(testDb.database);
    const storageDir = await mkdtemp(join(tmpdir(), `fip-${options.name}-`));
    cleanups.push(() => rm(storageDir, { recursive: true, force: true }));
    const fileManager = buildFileManager({ database: testDb.database, storageDir });
    const fileServer = serveFileManager(fileManager);
    cleanups.push(() => fileServer.stop());
    const fileManagerUrl = fileServer.url;
    const credential = { authorization: async () => `Bearer ${await serviceTokenFor('job-processor')}` };
    const files = filesClient(createHttpClient({ service: 'file-manager', baseUrl: fileManagerUrl, timeoutMs: 10_000, retries: 0 }), credential, fileManagerUrl);
    const boxKey = crypto.getRandomValues(new Uint8Array(32));
    const box = await createSecretBox([{ id: options.name, key: boxKey }]);
    const db = testDb.database.db;

    const vaultEntries = new Map<string, ServerCredential>();
    const vault: VaultClient = {
      stored: async () => [],
      release: async (userId, slug) => vaultEntries.get(`${userId}/${slug}`) ?? null,
    };

    const track = <T extends { stop(): Promise<void> }>(fake: T): T => {
      fakes.push(fake);
      return fake;
    };

    const upload = async (userId: string, name = 'cohort.chr20.vcf.gz'): Promise<UploadedInput> => {
      const res = await fileManager.request(`/files?name=${encodeURIComponent(name)}&build=hg19`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await tokenFor(userId)}`, 'content-type': 'application/octet-stream' },
        body: bgzip(makeVcf({ samples: 4, chromosome: '20' })),
      });
      expect(res.status).toBe(201);
      const body = await json(res);
      return { id: body.id as string, name, sizeBytes: body.sizeBytes as number };
    };

    return {
      testDb,
      db,
      storageDir,
      fileManager,
      fileManagerUrl,
      files,
      box,
      vault,
      track,
      upload,
      close,

      async cloudgene(fakeOptions = {}) {
        const token = makeFakeJwt('researcher');
        const fake = track(await startCloudgeneFake({ tokens: { [token]: 'researcher' }, ...fakeOptions }));
        return { fake, token };
      },

      cloudgeneTarget(fake, overrides = {}) {
        const id = crypto.randomUUID();
        return {
          service: {
            id,
            slug: `cg-${id.slice(0, 8)}`,
            name: 'Fake Michigan',
            protocol: 'cloudgene',
            baseUrl: fake.url,
            appId: 'imputationserver2',
            credentialType: 'cloudgene-token',
            limits: { maxActiveJobsPerUser: 2 },
            ...overrides,
          },
          panel: { id: crypto.randomUUID(), externalId: 'hapmap-2', externalKey: 'apps@hapmap-2@2.0.0', displayName: 'HapMap 2', build: 'hg19' },
        };
      },

      async userFor(target, token) {
        const userId = crypto.randomUUID();
        if (token) vaultEntries.set(`${userId}/${target.service.slug}`, { type: 'cloudgene-token', token });
        return { userId, input: await upload(userId) };
      },

      async insertJob(target, user, values) {
        const id = values.id ?? Bun.randomUUIDv7();
        const request: JobRequest = {
          inputFileIds: [user.input.id],
          build: 'hg19',
          phasing: 'eagle',
          population: 'eur',
          mode: 'imputation',
          r2Filter: 0,
          inputs: [{ ...user.input, samples: 4 }],
        };
        const [row] = await db
          .insert(jobs)
          .values({
            userId: user.userId,
            serviceId: target.service.id,
            panelId: target.panel.externalId,
            request,
            target,
            passwordSealed: await box.seal('Pass-word_123', passwordAad(id)),
            ...values,
            id,
          })
          .returning();
        return row!;
      },

      worker(deps) {
        return createJobWorker({
          db,
          adapters: options.adapters,
          files,
          vault,
          secretBox: box,
          logger: options.logger,
          concurrency: 5,
          leaseMs: 60_000,
          pollSchedule: createPollSchedule({ jitter: 0 }),
          ...deps,
        });
      },

      async spawnWorker(config) {
        // A child process reaches only a real PostgreSQL database, never this process's in-memory PGlite.
        if (!testDb.url) throw new Error('spawnWorker needs DATABASE_URL (a real PostgreSQL database)');
        const childConfig = {
          databaseUrl: testDb.url,
          fileManagerUrl,
          serviceToken: await serviceTokenFor('job-processor'),
          secretKey: { id: options.name, key: Buffer.from(boxKey).toString('base64') },
          ...config,
        };
        const child = Bun.spawn([process.execPath, resolve(import.meta.dir, '../job-processor/worker-process.ts'), JSON.stringify(childConfig)], {
          cwd: resolve(import.meta.dir, '../..'),
          stdin: 'ignore',
          stdout: 'pipe',
          stderr: 'pipe',
        });
        children.push(child);
        return child;
      },

      jobRow: async (id) => (await db.select().from(jobs).where(eq(jobs.id, id)))[0]!,
      historyOf: (id) => db.select().from(jobHistory).where(eq(jobHistory.jobId, id)).orderBy(asc(jobHistory.at), asc(jobHistory.id)),
      resultsOf: (id) => db.select().from(jobResults).where(eq(jobResults.jobId, id)).orderBy(asc(jobResults.name)),
    };
  } catch (error) {
    await close();
    throw error;
  }
}
