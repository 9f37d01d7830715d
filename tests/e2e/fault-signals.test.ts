/**
 * Process faults (issue 10): the platform runs as seven processes (tests/support/platform-processes.ts)
 * and is driven only through the gateway; a service gets SIGTERM in the middle of work, or a worker
 * SIGKILL, and the test checks that nothing half-done is left behind and that the work goes on once a
 * process is back.
 *
 * - file-manager gets SIGTERM while an upload streams through the gateway. With a drain window shorter
 *   than the rest of the upload the client gets an error and nothing is kept (no file listed, no
 *   temporary or stored bytes); with a long enough window the upload completes whole. Either way the
 *   same upload succeeds once file-manager is started again.
 * - job-processor gets SIGTERM while its worker waits for a Cloudgene submission: the fake stalls the
 *   request before acting on it, or a proxy holds the answer after the fake registered the job. The
 *   process exits 0 within its drain window; once started again the job completes with exactly one
 *   job on the server (the second way, by adopting the job it finds under its external name).
 * - A worker process (ROLE=worker) is killed with SIGKILL while it holds claims (its polls hang on the
 *   fake); the other worker takes the jobs over when the leases lapse, and every job ends with one
 *   submission and one stored file per result.
 *
 * The database is read directly only to show a job is not lost while job-processor is down (its API
 * cannot answer then). Figures (drain and resume times) are printed, never asserted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { join } from 'node:path';
import postgres from 'postgres';
import { TERMINAL_STATES } from '../../services/job-processor/src/domain.ts';
import { makeFakeJwt, startCloudgeneFake, type CloudgeneFake } from '../fakes/cloudgene.ts';
import { startWesFake, type WesFake } from '../fakes/wes.ts';
import { addFakeServers, registerAndSignIn, signIn, storeCredentials, uploadVcf, type ApiUser } from '../support/gateway-api.ts';
import { PLATFORM_ADMIN, startPlatformProcesses, type PlatformProcesses } from '../support/platform-processes.ts';
import { createTestDatabase, type TestDatabase } from '../support/test-database.ts';
import { FAULT_JOBS_ENV } from './support/fault-platform.ts';
import { waitForJob } from './support/federation.ts';
import { startAnswerHoldingProxy, type AnswerHoldingProxy } from './support/signal-proxy.ts';
import { filesUnder, largeVcf, pacedBody } from './support/signal-upload.ts';
import { stopInOrder } from './support/stop-in-order.ts';
import { waitUntil } from './support/wait.ts';

const DATABASE_URL = process.env.DATABASE_URL;
const MiB = 1024 * 1024;
/** file-manager's drain window where SIGTERM must cut the upload (the test holds the rest of the body back). */
const SHORT_DRAIN_MS = 300;
/** ... and where the upload must finish inside it (below the harness's SIGKILL after 15 s). */
const LONG_DRAIN_MS = 10_000;
/** job-processor's drain window: how long a SIGTERM waits for a step stuck on the server. */
const JOB_DRAIN_MS = 1_000;
/** Each makeFakeJwt call makes a new token: one per user, made once. */
const TOKENS = { 'sig-alice': makeFakeJwt('sig-alice'), 'sig-bob': makeFakeJwt('sig-bob') };

const figures: string[] = [];
const figure = (line: string) => figures.push(line);

/** `waitUntil` for a probe that answers undefined until it has something, read every 50 ms. */
const until = <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> =>
  waitUntil(what, probe, (value) => value !== undefined, { timeoutMs, intervalMs: 50 }) as Promise<T>;

describe.skipIf(!DATABASE_URL)('SIGTERM and SIGKILL through the gateway (needs DATABASE_URL: the services run as separate processes on a real PostgreSQL)', () => {
  let testDb: TestDatabase;
  let platform: PlatformProcesses;
  let cloudgene: CloudgeneFake;
  let proxy: AnswerHoldingProxy;
  let wes: WesFake;
  let alice: ApiUser;
  let bob: ApiUser;
  let storageRoot: string;
  let serviceIds: { cloudgene: string; wes: string };

  beforeAll(async () => {
    testDb = await createTestDatabase();
    await testDb.database.close();
    cloudgene = await startCloudgeneFake({ tokens: Object.fromEntries(Object.entries(TOKENS).map(([user, token]) => [token, user])) });
    // The catalogue points at the proxy; it passes everything through until a test makes it hold an answer.
    proxy = startAnswerHoldingProxy(cloudgene.url);
    wes = await startWesFake({ version: '1.1.0', tokens: ['wes-token-sig'] });
    platform = await startPlatformProcesses({
      databaseUrl: testDb.url!,
      redisUrl: process.env.REDIS_URL,
      serviceEnv: {
        'file-manager': { SHUTDOWN_TIMEOUT_MS: String(SHORT_DRAIN_MS) },
        'job-processor': { ...FAULT_JOBS_ENV, SHUTDOWN_TIMEOUT_MS: String(JOB_DRAIN_MS) },
      },
    });
    storageRoot = join(platform.dataDir, 'files');
    const admin = await signIn(platform.url, PLATFORM_ADMIN.username, PLATFORM_ADMIN.password);
    serviceIds = await addFakeServers(admin, { cloudgene: proxy.url, wes: wes.url });
    alice = await registerAndSignIn(platform.url, 'sig-alice');
    bob = await registerAndSignIn(platform.url, 'sig-bob');
    for (const user of [alice, bob]) await storeCredentials(user, { cloudgene: TOKENS[user.username as keyof typeof TOKENS], wes: 'wes-token-sig' });
  }, 90_000);

  afterAll(async () => {
    if (figures.length) console.log(`fault-signals figures:\n  ${figures.join('\n  ')}`);
    await stopInOrder('the signal suite', [() => platform?.stopAll(), () => proxy?.stop(), () => cloudgene?.stop(), () => wes?.stop(), () => testDb?.drop()]);
  }, 60_000);

  const listedFiles = async () => (await alice.expectJson('GET', '/api/files?limit=100', 200)).items as { id: string }[];
  const ids = (files: { id: string }[]) => files.map((f) => f.id);

  describe('SIGTERM to file-manager during an upload', () => {
    let vcf: Uint8Array;
    let sha256: string;

    beforeAll(() => {
      vcf = largeVcf(24 * MiB);
      sha256 = new Bun.CryptoHasher('sha256').update(vcf).digest('hex');
    }, 30_000);

    /** Starts a streamed upload through the gateway; the body goes only as far as the test allows. */
    function startUpload(name: string) {
      const body = pacedBody(vcf);
      const response = fetch(`${platform.url}/api/files?name=${encodeURIComponent(name)}&build=hg19`, {
        method: 'POST',
        headers: { authorization: `Bearer ${alice.accessToken}`, 'content-type': 'application/octet-stream' },
        body: body.stream,
      }).then(
        async (res) => ({ status: res.status, body: await res.text() }),
        (err: unknown) => ({ status: 0, body: String(err) }),
      );
      return { body, response };
    }

    /** Lets 6 MiB go and waits until file-manager has written 2 MiB of them to its temporary file. */
    async function halfway(upload: ReturnType<typeof startUpload>): Promise<void> {
      upload.body.allow(6 * MiB);
      await until("2 MiB in file-manager's temporary file", async () => ((await filesUnder(join(storageRoot, 'tmp'))).some((p) => p.size >= 2 * MiB) ? true : undefined));
    }

    const temporaryFiles = () => filesUnder(join(storageRoot, 'tmp'));
    const storedObjects = () => filesUnder(join(storageRoot, 'objects'));

    it('cut by a short drain window: the client gets an error, nothing is kept, and the same upload succeeds after a restart', async () => {
      const before = await listedFiles();
      const objectsBefore = await storedObjects();
      const upload = startUpload('interrupted.chr20.vcf.gz');
      await halfway(upload);

      const sentAtSignal = upload.body.sent;
      const signalledAt = Date.now();
      const exited = platform.stop('file-manager', 'SIGTERM');
      const outcome = await upload.response;
      const code = await exited;
      figure(
        `file-manager SIGTERM, ${SHORT_DRAIN_MS} ms drain, upload held at ${(sentAtSignal / MiB).toFixed(1)} of ${(vcf.length / MiB).toFixed(1)} MiB: client got ${outcome.status}, exit ${code} after ${Date.now() - signalledAt} ms`,
      );
      upload.body.allowAll();

      expect(code).toBe(0);
      // The gateway answers for the service it lost mid-request.
      expect(outcome.status).toBe(502);
      expect(JSON.parse(outcome.body).code).toBe('upstream_unreachable');
      // Nothing half-written: no temporary file, no new stored object.
      expect(await temporaryFiles()).toEqual([]);
      expect(await storedObjects()).toEqual(objectsBefore);

      const restartedAt = Date.now();
      await platform.start('file-manager');
      figure(`file-manager started again and ready in ${Date.now() - restartedAt} ms`);
      expect(ids(await listedFiles())).toEqual(ids(before));
      expect(await temporaryFiles()).toEqual([]);

      const again = startUpload('interrupted.chr20.vcf.gz');
      again.body.allowAll();
      const result = await again.response;
      expect(result.status).toBe(201);
      const stored = JSON.parse(result.body);
      expect(stored.sha256).toBe(sha256);
      expect(stored.sizeBytes).toBe(vcf.length);
      expect(ids(await listedFiles())).toEqual([stored.id, ...ids(before)]);
      expect((await storedObjects()).length).toBe(objectsBefore.length + 1);
    }, 60_000);

    it('inside a long enough drain window: the upload in flight completes whole while new connections are refused, and the file is there after a restart', async () => {
      expect(await platform.stop('file-manager', 'SIGTERM')).toBe(0);
      await platform.start('file-manager', { SHUTDOWN_TIMEOUT_MS: String(LONG_DRAIN_MS) });
      const before = await listedFiles();
      const upload = startUpload('drained.chr20.vcf.gz');
      await halfway(upload);

      const sentAtSignal = upload.body.sent;
      const signalledAt = Date.now();
      const exited = platform.stop('file-manager', 'SIGTERM');
      // Draining: the listener closes at once while the upload in flight goes on.
      await until('file-manager to refuse new connections', () =>
        fetch(`${platform.urls['file-manager']}/health`).then(
          () => undefined,
          () => true,
        ),
      );
      upload.body.allowAll();
      const outcome = await upload.response;
      const answeredAt = Date.now();
      const code = await exited;
      figure(
        `file-manager SIGTERM, ${LONG_DRAIN_MS} ms drain, upload at ${(sentAtSignal / MiB).toFixed(1)} of ${(vcf.length / MiB).toFixed(1)} MiB: answered ${outcome.status} after ${answeredAt - signalledAt} ms, exit ${code} after ${Date.now() - signalledAt} ms`,
      );
      expect(outcome.status).toBe(201);
      expect(code).toBe(0);
      const stored = JSON.parse(outcome.body);
      expect(stored.sha256).toBe(sha256);
      expect(stored.sizeBytes).toBe(vcf.length);
      expect(await temporaryFiles()).toEqual([]);

      await platform.start('file-manager');
      expect(ids(await listedFiles())).toEqual([stored.id, ...ids(before)]);
      const content = await alice.call('GET', `/api/files/${stored.id}/content`);
      expect(content.status).toBe(200);
      expect(new Bun.CryptoHasher('sha256').update(new Uint8Array(await content.arrayBuffer())).digest('hex')).toBe(sha256);
    }, 60_000);
  });

  /** Uploads an input and creates a job on the Cloudgene fake (through the proxy); answers its id. */
  async function submitJob(user: ApiUser, name: string): Promise<string> {
    const input = await uploadVcf(user);
    const job = await user.expectJson('POST', '/api/jobs', 202, {
      name,
      inputFileIds: [input.id],
      build: 'hg19',
      population: 'eur',
      targets: [{ serviceId: serviceIds.cloudgene, panel: 'hapmap-2' }],
    });
    expect(job.children).toEqual([]);
    return job.id;
  }

  const jobOf = (user: ApiUser, id: string) => user.expectJson('GET', `/api/jobs/${id}`, 200);

  const ended = (user: ApiUser, id: string) => waitForJob(user, id, 'ended', (job) => TERMINAL_STATES.has(job.state), { timeoutMs: 30_000, intervalMs: 50 });

  /** The fake's jobs submitted under the job's external name (`fip-<id>-<attempt>`). */
  const fakeJobsFor = (id: string) => [...cloudgene.control.jobs.values()].filter((j) => j.name.startsWith(`fip-${id}-`));
  const submissions = () => cloudgene.control.requestsTo('/api/v2/jobs/submit', 'POST').length;

  /** The job completed with one job on the server and every result file stored exactly once. */
  async function expectCompletedOnce(user: ApiUser, id: string): Promise<void> {
    const job = await ended(user, id);
    expect({ state: job.state, error: job.error }).toEqual({ state: 'completed', error: null });
    const onServer = fakeJobsFor(id);
    expect(onServer.map((j) => j.name)).toEqual([`fip-${id}-${job.attempt}`]);
    expect(job.externalId).toBe(onServer[0]!.id);
    const results = (await user.expectJson('GET', `/api/jobs/${id}/results`, 200)).items as { name: string; state: string; fileId: string | null }[];
    expect(results.map((r) => r.name).sort()).toEqual(onServer[0]!.files.map((f) => f.name).sort());
    expect(results.every((r) => r.state === 'stored' && r.fileId !== null)).toBe(true);
    const stored = (await user.expectJson('GET', `/api/files?kind=result&jobId=${id}&limit=100`, 200)).items as { id: string }[];
    expect(ids(stored).sort()).toEqual(results.map((r) => r.fileId!).sort());
  }

  /** The job's row as stored, read while job-processor is down (its API cannot answer then). */
  async function storedJob(id: string): Promise<{ state: string; external_name: string | null; lease_owner: string | null }> {
    const sql = postgres(testDb.url!, { max: 1, onnotice: () => {} });
    try {
      const [row] = await sql`select state, external_name, lease_owner from jobs.jobs where id = ${id}`;
      return row as never;
    } finally {
      await sql.end();
    }
  }

  describe('SIGTERM to job-processor during a job submission', () => {
    it('before the server acted on the submission: exits 0 within the drain window, the job stays submitting, and after a restart it completes with one job on the server', async () => {
      cloudgene.control.addFault({ kind: 'hang', method: 'POST', path: '/api/v2/jobs/submit' });
      const submitsBefore = submissions();
      const id = await submitJob(alice, 'sigterm before the server took it');
      await until('the submission to hang on the fake', async () => (submissions() > submitsBefore ? true : undefined));

      const signalledAt = Date.now();
      const code = await platform.stop('job-processor', 'SIGTERM');
      figure(`job-processor SIGTERM, ${JOB_DRAIN_MS} ms drain, submission hanging on the server: exit ${code} after ${Date.now() - signalledAt} ms`);
      expect(code).toBe(0);
      // Not lost: marked as being submitted under its external name, for the next worker to look up.
      expect(await storedJob(id)).toMatchObject({ state: 'submitting', external_name: `fip-${id}-1` });
      expect(fakeJobsFor(id)).toEqual([]);

      cloudgene.control.clearFaults();
      const restartedAt = Date.now();
      await platform.start('job-processor');
      await ended(alice, id);
      figure(`job-processor started again; the job completed ${Date.now() - restartedAt} ms later (the abandoned lease lapses first)`);
      await expectCompletedOnce(alice, id);
    }, 60_000);

    it('after the server took the submission but before it answered: exits 0, and after a restart the job is adopted by its name, not submitted again', async () => {
      proxy.hold({ method: 'POST', pathPrefix: '/api/v2/jobs/submit' });
      const submitsBefore = submissions();
      const id = await submitJob(alice, 'sigterm after the server took it');
      await until('the fake to register the submission while its answer is held', async () => (fakeJobsFor(id).length === 1 && proxy.held === 1 ? true : undefined));

      const signalledAt = Date.now();
      const code = await platform.stop('job-processor', 'SIGTERM');
      figure(`job-processor SIGTERM, ${JOB_DRAIN_MS} ms drain, submission answer held: exit ${code} after ${Date.now() - signalledAt} ms`);
      expect(code).toBe(0);
      expect(await storedJob(id)).toMatchObject({ state: 'submitting', external_name: `fip-${id}-1` });

      proxy.releaseAll();
      const restartedAt = Date.now();
      await platform.start('job-processor');
      await ended(alice, id);
      figure(`job-processor started again; the adopted job completed ${Date.now() - restartedAt} ms later`);
      await expectCompletedOnce(alice, id);
      expect(submissions() - submitsBefore).toBe(1);
      const job = await jobOf(alice, id);
      expect(job.history.some((h: { message: string | null }) => h.message?.includes('adopted it instead of submitting again'))).toBe(true);
    }, 60_000);
  });

  describe('SIGKILL of a worker', () => {
    it('holding claims: the other worker takes the jobs over once the leases lapse; one submission per job, each result stored once', async () => {
      // The API alone on job-processor's port; the work on two worker processes.
      expect(await platform.stop('job-processor', 'SIGTERM')).toBe(0);
      await platform.start('job-processor', { ROLE: 'api' });
      const worker1 = await platform.spawnReplica('worker-1', 'job-processor', { ROLE: 'worker' });

      // Every status poll hangs, so worker-1 sits on its claims once it has submitted.
      cloudgene.control.addFault({ kind: 'hang', method: 'GET', path: /^\/api\/v2\/jobs\/[^/]+/ });
      const submitsBefore = submissions();
      // Two jobs for each of two users: the catalogue allows two active Cloudgene jobs per user.
      const owned: [ApiUser, string][] = [];
      for (const user of [alice, bob]) for (const n of [1, 2]) owned.push([user, await submitJob(user, `sigkill ${user.username} ${n}`)]);
      await until('worker-1 to submit every job and hang polling it', async () => {
        const polled = owned.every(([, id]) => {
          const externalId = fakeJobsFor(id)[0]?.id;
          return externalId !== undefined && cloudgene.control.requests.some((r) => r.method === 'GET' && r.path.startsWith(`/api/v2/jobs/${externalId}`));
        });
        return polled ? true : undefined;
      });
      const worker2 = await platform.spawnReplica('worker-2', 'job-processor', { ROLE: 'worker' });

      expect(await worker1.stop('SIGKILL')).toBeNull();
      const killedAt = Date.now();
      for (const [user, id] of owned) expect((await jobOf(user, id)).state).toBe('running');
      cloudgene.control.clearFaults();

      for (const [user, id] of owned) await ended(user, id);
      figure(`worker-1 SIGKILLed holding ${owned.length} claims (5 s lease): all completed by worker-2 ${Date.now() - killedAt} ms later`);
      for (const [user, id] of owned) await expectCompletedOnce(user, id);
      expect(submissions() - submitsBefore).toBe(owned.length);
      expect(await worker2.stop('SIGTERM')).toBe(0);
    }, 90_000);
  });
});
