/**
 * `bun bench/jobs.ts [--jobs 1000] [--users 100] [--wes-users 10] [--concurrency 16] [--pool 10]
 * [--idle-ms 50] [--first-poll-ms 50] [--busy-ms 500] [--qc-only] [--timeout-s 90]`: DESIGN.md §9 "Queue: 1,000 jobs
 * against a fake server complete with zero lost or duplicated submissions, with throughput limited by
 * the fake, not by the platform".
 *
 * On a scratch PostgreSQL database it starts the Cloudgene and WES fakes and a real file-manager (served
 * over HTTP on 127.0.0.1, results are stored through it) in this process, and job-processor's real job
 * worker as a child process (`bench/jobs-worker.ts`, so its RSS and CPU are its own). It inserts
 * `--jobs` queued jobs round-robin over `--users` users (the last `--wes-users` of them on the WES fake,
 * the others on Cloudgene, which lets each user run 2 jobs at once), waits until every job has ended,
 * and then counts: completed / failed / lost, submissions per external name on the fakes (requests and
 * fake jobs), stored results per result key, wall time and jobs/s, worker RSS idle and peak, CPU per
 * process, and where the worker's time went (its HTTP calls by kind, its transactions, its claims; the
 * child measures them, see jobs-worker.ts). Claim latency is also measured afterwards by calling
 * `claimJobs` from here on the same table with `--jobs` more queued rows. Finally the same jobs are
 * driven through fresh fakes by a plain `fetch()` loop in a child process (no platform), which is what
 * "limited by the fake" is judged against. README.md ("Jobs") explains every figure.
 *
 * Loopback only; the scratch database and directory are removed and every child stopped at the end,
 * also on error or Ctrl-C. Prints tables, asserts nothing.
 */
import { jobResults, jobs } from '@db/schema/jobs.ts';
import { storedFiles } from '@db/schema/files.ts';
import { openDatabase } from '@shared/db.ts';
import { createMemoryKv } from '@shared/kv-memory.ts';
import { createLogger } from '@shared/log.ts';
import { migrate } from '@shared/migrations.ts';
import { createSecretBox } from '@shared/secret-box.ts';
import { and, count, eq, inArray, isNotNull, max, notInArray, sql } from 'drizzle-orm';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { createApp as createFileManagerApp } from '../services/file-manager/src/app.ts';
import { createDownloadLinks } from '../services/file-manager/src/download-links.ts';
import { createLocalStorage } from '../services/file-manager/src/storage.ts';
import { vcfValidatorFor } from '../services/file-manager/src/vcf-validation.ts';
import { TERMINAL_STATES, type JobRequest, type JobTarget } from '../services/job-processor/src/domain.ts';
import { claimJobs } from '../services/job-processor/src/job-queue.ts';
import { passwordAad } from '../services/job-processor/src/job-store.ts';
import { makeFakeJwt, startCloudgeneFake } from '../tests/fakes/cloudgene.ts';
import { startWesFake } from '../tests/fakes/wes.ts';
import { serviceTokenFor, testAuthenticator, tokenFor } from '../tests/support/test-identity.ts';
import { bgzip, makeVcf } from '../tests/support/vcf.ts';
import type { DirectModeConfig, DirectResult, WorkerModeConfig, WorkerTimings } from './jobs-worker.ts';
import { CLK_TCK, cpuTicks, machineTicks, statusMiB } from './proc-stats.ts';
import { openScratch, type Proc } from './scratch.ts';

const ROOT = resolve(import.meta.dir, '..');
const ADMIN_URL = process.env.BENCH_ADMIN_URL ?? 'postgres://root@127.0.0.1:5432/postgres';
const SAMPLE_MS = 100;
const PROGRESS_MS = 250;
const SETTLE_MS = 1000;
const LEASE_MS = 30_000;

const { values: args } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    jobs: { type: 'string', default: '1000' },
    users: { type: 'string', default: '100' },
    'wes-users': { type: 'string', default: '10' },
    concurrency: { type: 'string', default: '16' },
    pool: { type: 'string', default: '10' },
    'idle-ms': { type: 'string', default: '50' },
    'first-poll-ms': { type: 'string', default: '50' },
    'busy-ms': { type: 'string', default: '500' },
    'qc-only': { type: 'boolean', default: false },
    'timeout-s': { type: 'string', default: '90' },
  },
});
const JOBS = Number(args.jobs);
const USERS = Number(args.users);
const WES_USERS = Math.min(Number(args['wes-users']), USERS);
const CONCURRENCY = Number(args.concurrency);
const POOL = Number(args.pool);
const IDLE_MS = Number(args['idle-ms']);
const FIRST_POLL_MS = Number(args['first-poll-ms']);
const BUSY_MS = Number(args['busy-ms']);
const JOB_MODE = args['qc-only'] ? ('qc_only' as const) : ('imputation' as const);
const TIMEOUT_MS = Number(args['timeout-s']) * 1000;
if (![JOBS, USERS, CONCURRENCY, POOL, IDLE_MS, FIRST_POLL_MS, BUSY_MS, TIMEOUT_MS].every((n) => Number.isFinite(n) && n >= 0) || JOBS < 1 || USERS < 1) {
  console.error(
    'usage: bun bench/jobs.ts [--jobs 1000] [--users 100] [--wes-users 10] [--concurrency 16] [--pool 10] [--idle-ms 50] [--first-poll-ms 50] [--busy-ms 500] [--qc-only] [--timeout-s 90]',
  );
  process.exit(2);
}
/** Result files a completed job has: Cloudgene's QC files (+ the chr20 zip when imputing), WES's three outputs. */
const EXPECTED_RESULTS = { cloudgene: JOB_MODE === 'imputation' ? 4 : 3, wes: 3 };

// ---------------------------------------------------------------------------------------------
// Figures from /proc

/** `JOBS_BENCH_CPU_PROFILE=<dir>`: the worker child writes a CPU profile (and its markdown summary) there on exit. */
function profileFlags(): string[] {
  const dir = process.env.JOBS_BENCH_CPU_PROFILE;
  return dir ? ['--cpu-prof', '--cpu-prof-md', `--cpu-prof-dir=${dir}`] : [];
}

/** A /proc status field in KiB; throws once the process is gone. */
async function procStatusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const mib = await statusMiB(pid, field);
  if (Number.isNaN(mib)) throw new Error(`no ${field} for pid ${pid}`);
  return mib * 1024;
}

/** Writing 5 to clear_refs resets VmHWM to the current RSS (Linux ≥ 4.0); false when not allowed. */
const resetPeak = (pid: number) => writeFile(`/proc/${pid}/clear_refs`, '5').then(() => true, () => false);

/** utime + stime of a process in seconds; null when it is gone or unreadable. */
async function cpuSeconds(pid: number): Promise<number | null> {
  const ticks = await cpuTicks(pid);
  return Number.isNaN(ticks) ? null : ticks / CLK_TCK;
}

const loadAverage = async () => (await Bun.file('/proc/loadavg').text()).split(' ').slice(0, 3).join(' ');

const percentile = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : NaN);
const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const mib = (kib: number) => (kib / 1024).toFixed(1);
const fixed = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '–');

// ---------------------------------------------------------------------------------------------
// Setup

const scratch = await openScratch({ name: 'jobs', adminUrl: ADMIN_URL });
/** Writes a child's configuration into the scratch directory (removed at the end) and answers its path. */
const configFile = async (name: string, config: WorkerModeConfig | DirectModeConfig) => {
  const path = join(scratch.dir, `${name}.json`);
  await writeFile(path, JSON.stringify(config), { mode: 0o600 });
  return path;
};
const logger = createLogger({ level: 'silent' });
const stops: (() => Promise<unknown>)[] = [];
let workerStderr = '';

try {
  await scratch.createDatabase();
  const database = await openDatabase({ url: scratch.databaseUrl, maxConnections: 10 });
  stops.push(() => database.close());
  for (const schema of ['jobs', 'files']) await migrate(database, { schema, migrationsDir: join(ROOT, 'db/migrations') });
  const db = database.db;
  /** A connection of its own for statistics and VACUUM (which cannot run inside drizzle's transactions). */
  const stats = postgres(scratch.databaseUrl, { max: 1, onnotice: () => {} });
  stops.push(() => stats.end({ timeout: 5 }));

  // file-manager, served over HTTP as job-processor would reach it.
  const storageDir = join(scratch.dir, 'files');
  const fileManager = createFileManagerApp({
    logger,
    readyTimeoutMs: 1000,
    organization: { name: 'bench', url: 'https://example.org' },
    authenticator: testAuthenticator(createMemoryKv()),
    database,
    storage: createLocalStorage(storageDir),
    storageDir,
    limits: { maxBytes: 64 * 1024 * 1024, quotaBytes: 1024 * 1024 * 1024, retentionMs: { input: null, result: null } },
    validatorFor: vcfValidatorFor,
    links: createDownloadLinks(crypto.getRandomValues(new Uint8Array(32))),
    publicApiUrl: 'http://127.0.0.1:1/api',
  });
  const fileServer = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: fileManager.fetch });
  stops.push(() => fileServer.stop(true));
  const fileManagerUrl = `http://127.0.0.1:${fileServer.port}`;

  // Users: the first USERS - WES_USERS on Cloudgene (each with a token of its own), the rest on WES.
  const users = Array.from({ length: USERS }, (_, i) => ({
    userId: crypto.randomUUID(),
    protocol: i < USERS - WES_USERS ? ('cloudgene' as const) : ('ga4gh-wes' as const),
    token: makeFakeJwt(`user${i}`),
    username: `user${i}`,
  }));
  const cloudgeneTokens = Object.fromEntries(users.filter((u) => u.protocol === 'cloudgene').map((u) => [u.token, u.username]));
  const startFakes = async () => {
    const cloudgene = await startCloudgeneFake({ tokens: cloudgeneTokens });
    const wes = await startWesFake({ version: '1.1.0' });
    stops.push(() => cloudgene.stop(), () => wes.stop());
    return { cloudgene, wes };
  };
  const { cloudgene, wes } = await startFakes();

  const panel = { id: crypto.randomUUID(), externalId: 'hapmap-2', externalKey: 'apps@hapmap-2@2.0.0', displayName: 'HapMap 2', build: 'hg19' as const };
  const targets: Record<'cloudgene' | 'ga4gh-wes', JobTarget> = {
    cloudgene: {
      service: { id: crypto.randomUUID(), slug: 'bench-cloudgene', name: 'Fake Michigan', protocol: 'cloudgene', baseUrl: cloudgene.url, appId: 'imputationserver2', credentialType: 'cloudgene-token', limits: { maxActiveJobsPerUser: 2 } },
      panel,
    },
    'ga4gh-wes': {
      service: { id: crypto.randomUUID(), slug: 'bench-wes', name: 'Fake WES', protocol: 'ga4gh-wes', baseUrl: wes.url, appId: null, credentialType: 'none', limits: {} },
      panel: { ...panel, externalKey: null },
    },
  };

  // One uploaded input per user (validated by file-manager like any upload); a user's jobs share it.
  const vcf = bgzip(makeVcf({ samples: 4, chromosome: '20' }));
  const inputs = new Map<string, { id: string; name: string; sizeBytes: number }>();
  for (let i = 0; i < users.length; i += 10) {
    await Promise.all(
      users.slice(i, i + 10).map(async (user) => {
        const name = 'cohort.chr20.vcf.gz';
        const res = await fileManager.request(`/files?name=${name}&build=hg19`, {
          method: 'POST',
          headers: { authorization: `Bearer ${await tokenFor(user.userId)}`, 'content-type': 'application/octet-stream' },
          body: vcf,
        });
        const body = (await res.json()) as { id: string; sizeBytes: number };
        if (res.status !== 201) throw new Error(`upload: ${res.status} ${JSON.stringify(body)}`);
        inputs.set(user.userId, { id: body.id, name, sizeBytes: body.sizeBytes });
      }),
    );
  }

  // Job rows as job-processor's API creates them (password escrowed), round-robin over the users, so
  // the queue's order (created_at) does not hand one user's ten jobs to the worker in a row.
  const keyBytes = crypto.getRandomValues(new Uint8Array(32));
  const box = await createSecretBox([{ id: 'bench', key: keyBytes }]);
  const createdBase = Date.now() - JOBS - 1000;
  const jobRows = await Promise.all(
    Array.from({ length: JOBS }, async (_, k) => {
      const user = users[k % USERS]!;
      const input = inputs.get(user.userId)!;
      const id = Bun.randomUUIDv7();
      const request: JobRequest = { inputFileIds: [input.id], build: 'hg19', phasing: 'eagle', population: 'eur', mode: JOB_MODE, r2Filter: 0, inputs: [{ ...input, samples: 4 }] };
      const target = targets[user.protocol];
      const at = new Date(createdBase + k);
      return {
        id,
        userId: user.userId,
        name: `bench job ${k}`,
        serviceId: target.service.id,
        panelId: panel.externalId,
        request,
        target,
        passwordSealed: await box.seal('Pass-word_123', passwordAad(id)),
        createdAt: at,
        updatedAt: at,
      };
    }),
  );

  // ---- the worker process, idle first ----------------------------------------------------------

  const workerConfig: WorkerModeConfig = {
    mode: 'worker',
    databaseUrl: scratch.databaseUrl,
    fileManagerUrl,
    serviceToken: await serviceTokenFor('job-processor'),
    credentials: users.filter((u) => u.protocol === 'cloudgene').map((u) => ({ userId: u.userId, slug: 'bench-cloudgene', credential: { type: 'cloudgene-token' as const, token: u.token } })),
    secretKey: { id: 'bench', key: Buffer.from(keyBytes).toString('base64') },
    owner: `bench-worker-${process.pid}`,
    concurrency: CONCURRENCY,
    maxConnections: POOL,
    leaseMs: LEASE_MS,
    idleMs: IDLE_MS,
    timingsFile: join(scratch.dir, 'worker-timings.json'),
    poll: { firstPollMs: FIRST_POLL_MS, maxPollMs: FIRST_POLL_MS * 8, retryBaseMs: 200, retryMaxMs: 2000, busyDelayMs: BUSY_MS, cancelPollMs: FIRST_POLL_MS, jitter: 0.2 },
  };
  const worker = scratch.track(
    Bun.spawn([process.execPath, '--no-install', ...profileFlags(), join(ROOT, 'bench/jobs-worker.ts'), await configFile('worker', workerConfig)], { cwd: ROOT, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' }),
  );
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of worker.stderr) workerStderr = (workerStderr + decoder.decode(chunk, { stream: true })).slice(-8192);
  })().catch(() => {});
  const workerStdout = stdoutOf(worker);
  await workerStdout.waitFor('ready', 20_000);
  await Bun.sleep(SETTLE_MS);
  const rssIdleBefore = await procStatusKiB(worker.pid, 'VmRSS');
  const hwmReset = await resetPeak(worker.pid);

  // ---- the run -----------------------------------------------------------------------------------

  const pgPids = async () =>
    (await scratch.admin<{ pid: number }[]>`select pid from pg_stat_activity where datname = ${scratch.databaseName}`).map((r) => r.pid);
  /** Counters of the jobs table and the database (cumulative; read before and after the run). */
  const pgCounters = async () => {
    const [table] = await stats<{ writes: string; dead: string; seq_scan: string; idx_scan: string }[]>`
      select n_tup_upd + n_tup_ins as writes, n_dead_tup as dead, seq_scan, idx_scan
      from pg_stat_user_tables where schemaname = 'jobs' and relname = 'jobs'`;
    const [xacts] = await stats<{ xacts: string }[]>`select xact_commit + xact_rollback as xacts from pg_stat_database where datname = current_database()`;
    return { writes: Number(table?.writes ?? 0), dead: Number(table?.dead ?? 0), seqScans: Number(table?.seq_scan ?? 0), idxScans: Number(table?.idx_scan ?? 0), xacts: Number(xacts?.xacts ?? 0) };
  };
  const autovacuum = (await stats<{ autovacuum: string }[]>`show autovacuum`)[0]?.autovacuum ?? '?';
  const countersBefore = await pgCounters();
  const pgBefore = new Map<number, number | null>();
  for (const pid of await pgPids()) pgBefore.set(pid, await cpuSeconds(pid));
  const cpuBefore = { worker: (await cpuSeconds(worker.pid))!, bench: process.cpuUsage(), machine: await machineTicks() };
  const loadBefore = await loadAverage();

  const rssSamples: number[] = [];
  const rssTimer = setInterval(() => {
    procStatusKiB(worker.pid, 'VmRSS').then((kib) => rssSamples.push(kib), () => {});
  }, SAMPLE_MS);

  const insertedAt = new Date();
  const started = performance.now();
  await db.transaction(async (tx) => {
    for (let i = 0; i < jobRows.length; i += 250) await tx.insert(jobs).values(jobRows.slice(i, i + 250));
  });
  const insertMs = performance.now() - started;

  const ENDED = [...TERMINAL_STATES];
  let open = JOBS;
  /** Jobs the worker held a lease on at each look: how full its slots were. */
  const inFlight: number[] = [];
  while (performance.now() - started < TIMEOUT_MS) {
    const [progress] = await db
      .select({ open: count(), leased: sql<number>`count(*) filter (where ${jobs.leaseOwner} is not null)`.mapWith(Number) })
      .from(jobs)
      .where(notInArray(jobs.state, ENDED));
    open = progress!.open;
    if (open === 0) break;
    inFlight.push(progress!.leased);
    if (worker.exitCode !== null) throw new Error(`the worker exited with ${worker.exitCode}: ${workerStderr}`);
    await Bun.sleep(PROGRESS_MS);
  }
  const observedMs = performance.now() - started;
  clearInterval(rssTimer);
  const cpuAfter = { worker: (await cpuSeconds(worker.pid))!, bench: process.cpuUsage(cpuBefore.bench), machine: await machineTicks() };
  const loadAfter = await loadAverage();
  let pgCpu = 0;
  for (const pid of await pgPids()) {
    const now = await cpuSeconds(pid);
    if (now !== null) pgCpu += now - (pgBefore.get(pid) ?? 0);
  }
  const hwm = await procStatusKiB(worker.pid, 'VmHWM');
  // The statistics collector publishes with a delay of up to ~0.5 s.
  await Bun.sleep(SETTLE_MS);
  const countersAfter = await pgCounters();
  await Bun.sleep(SETTLE_MS);
  const rssIdleAfter = await procStatusKiB(worker.pid, 'VmRSS');
  await scratch.stopChild(worker);
  const timings = (await Bun.file(workerConfig.timingsFile).json().catch(() => null)) as WorkerTimings | null;

  // ---- what happened -----------------------------------------------------------------------------

  const byState = await db.select({ state: jobs.state, n: count() }).from(jobs).groupBy(jobs.state);
  const stateCount = (s: string) => byState.find((r) => r.state === s)?.n ?? 0;
  const [{ lastFinished }] = (await db.select({ lastFinished: max(jobs.finishedAt) }).from(jobs)) as [{ lastFinished: Date | null }];
  const wallMs = lastFinished && open === 0 ? lastFinished.getTime() - insertedAt.getTime() : observedMs;
  const latencies = sorted(
    (await db.select({ finished: jobs.finishedAt }).from(jobs).where(isNotNull(jobs.finishedAt))).map((r) => r.finished!.getTime() - insertedAt.getTime()),
  );
  const failures = await db
    .select({ code: jobs.errorCode, n: count() })
    .from(jobs)
    .where(inArray(jobs.state, ['failed', 'expired', 'cancelled']))
    .groupBy(jobs.errorCode);

  // Submissions as the fakes saw them, per external name (`fip-<jobId>-<attempt>`).
  const tally = (names: (string | undefined)[]) => {
    const counts = new Map<string, number>();
    for (const name of names) if (name) counts.set(name, (counts.get(name) ?? 0) + 1);
    return counts;
  };
  const cgSubmits = cloudgene.control.requestsTo('/api/v2/jobs/submit', 'POST');
  const cgSubmitsOk = tally(cgSubmits.filter((r) => r.status === 200).map((r) => str(r.form?.['job-name'])));
  const cgJobs = tally([...cloudgene.control.jobs.values()].map((j) => j.name));
  const wesSubmits = wes.control.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/runs'));
  const wesSubmitNames = tally(wesSubmits.map((r) => tagOf(r.parts?.find((p) => p.name === 'tags')?.value)));
  const wesRuns = tally([...wes.control.runs.values()].map((r) => r.request.tags?.fip_job));
  const over = (counts: Map<string, number>) => [...counts.values()].filter((n) => n > 1).length;
  const jobNames = new Set((await db.select({ name: jobs.externalName }).from(jobs)).map((r) => r.name));

  // Results: stored once per key (a unique column, so also per job and name), and every completed job has all of its files.
  const storedByKey = await db
    .select({ key: storedFiles.resultKey, n: count() })
    .from(storedFiles)
    .where(and(eq(storedFiles.kind, 'result'), isNotNull(storedFiles.resultKey)))
    .groupBy(storedFiles.resultKey);
  const storedByJobAndName = await db
    .select({ n: count() })
    .from(storedFiles)
    .where(eq(storedFiles.kind, 'result'))
    .groupBy(storedFiles.jobId, storedFiles.originalName);
  const resultRows = await db
    .select({ jobId: jobResults.jobId, state: jobResults.state, protocol: sql<string>`${jobs.target}->'service'->>'protocol'` })
    .from(jobResults)
    .innerJoin(jobs, eq(jobs.id, jobResults.jobId))
    .where(eq(jobs.state, 'completed'));
  const storedPerJob = new Map<string, { n: number; protocol: string }>();
  for (const r of resultRows) {
    const entry = storedPerJob.get(r.jobId) ?? { n: 0, protocol: r.protocol };
    if (r.state === 'stored') entry.n++;
    storedPerJob.set(r.jobId, entry);
  }
  const completedIds = (await db.select({ id: jobs.id }).from(jobs).where(eq(jobs.state, 'completed'))).map((r) => r.id);
  const incomplete = completedIds.filter((id) => {
    const entry = storedPerJob.get(id);
    return !entry || entry.n < (entry.protocol === 'cloudgene' ? EXPECTED_RESULTS.cloudgene : EXPECTED_RESULTS.wes);
  }).length;

  const fakeRequests = cloudgene.control.requests.length + wes.control.requests.length;
  const cgStatus = cloudgene.control.requests.filter((r) => r.method === 'GET' && /^\/api\/v2\/jobs\/[^/]+\/status$/.test(r.path)).length;
  const cgFinds = cloudgene.control.requests.filter((r) => r.method === 'GET' && r.path === '/api/v2/jobs').length;
  const cgBusy = cgSubmits.filter((r) => r.status === 400).length;

  // ---- claim latency on the same table, with JOBS more queued rows -----------------------------

  const claimRows = jobRows.map((row) => ({ ...row, id: Bun.randomUUIDv7(), passwordSealed: null, createdAt: new Date(), updatedAt: new Date() }));
  await db.transaction(async (tx) => {
    for (let i = 0; i < claimRows.length; i += 250) await tx.insert(jobs).values(claimRows.slice(i, i + 250));
  });
  const claimIds = claimRows.map((r) => r.id);
  const farFuture = new Date(Date.now() + 86_400_000);
  /** Claims batches of CONCURRENCY until nothing is due; each claimed batch is pushed into the future (untimed), as a worker's poll would. */
  const drainClaims = async (claimers: number): Promise<number[]> => {
    await db.update(jobs).set({ nextPollAt: null, leaseOwner: null, leaseExpiresAt: null }).where(inArray(jobs.id, claimIds));
    const samples: number[] = [];
    await Promise.all(
      Array.from({ length: claimers }, async (_, c) => {
        for (;;) {
          const t = performance.now();
          const claimed = await claimJobs(db, { owner: `bench-claim-${c}`, limit: CONCURRENCY, leaseMs: LEASE_MS, now: new Date() });
          const ms = performance.now() - t;
          if (claimed.length === 0) return;
          samples.push(ms);
          await db
            .update(jobs)
            .set({ nextPollAt: farFuture, leaseOwner: null, leaseExpiresAt: null })
            .where(inArray(jobs.id, claimed.map((j) => j.id)));
        }
      }),
    );
    return sorted(samples);
  };
  const idleClaims = async () => {
    const samples: number[] = [];
    for (let i = 0; i < 100; i++) {
      const t = performance.now();
      await claimJobs(db, { owner: 'bench-claim-idle', limit: CONCURRENCY, leaseMs: LEASE_MS, now: new Date() });
      samples.push(performance.now() - t);
    }
    return sorted(samples);
  };
  const deadBeforeClaims = (await pgCounters()).dead;
  const claims = { one: await drainClaims(1), four: await drainClaims(4), empty: await idleClaims() };
  // Autovacuum may be off (it is on these machines): the same after a VACUUM, as autovacuum would leave the table.
  await stats`vacuum analyze jobs.jobs`;
  const vacuumed = { one: await drainClaims(1), four: await drainClaims(4), empty: await idleClaims() };
  const tableRows = (await db.select({ n: count() }).from(jobs))[0]!.n;

  // ---- the fakes alone: a plain fetch loop from a child process ---------------------------------

  const direct = await startFakes();
  const perUser = (i: number) => Math.floor(JOBS / USERS) + (i < JOBS % USERS ? 1 : 0);
  const directConfig: DirectModeConfig = {
    mode: 'direct',
    cloudgeneUrl: direct.cloudgene.url,
    wesUrl: direct.wes.url,
    users: users.map((u, i) => ({ token: u.protocol === 'cloudgene' ? u.token : null, jobs: perUser(i) })),
    concurrency: CONCURRENCY,
    jobMode: JOB_MODE,
  };
  const directCpuBefore = process.cpuUsage();
  const client = scratch.track(
    Bun.spawn([process.execPath, '--no-install', join(ROOT, 'bench/jobs-worker.ts'), await configFile('direct', directConfig)], { cwd: ROOT, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' }),
  );
  const directOut = await new Response(client.stdout).text();
  await client.exited;
  const directCpu = process.cpuUsage(directCpuBefore);
  const clientUsage = client.resourceUsage();
  const directClientCpuS = clientUsage ? Number(clientUsage.cpuTime.user + clientUsage.cpuTime.system) / 1e6 : NaN;
  const directResult = JSON.parse(directOut.trim().split('\n').at(-1) ?? '{}') as DirectResult;
  if (!directResult.ms) throw new Error(`the direct client failed: ${await new Response(client.stderr).text()}`);
  const directFakeRequests = direct.cloudgene.control.requests.length + direct.wes.control.requests.length;

  // ---- report ----------------------------------------------------------------------------------

  const benchCpu = (cpuAfter.bench.user + cpuAfter.bench.system) / 1e6;
  const workerCpu = cpuAfter.worker - cpuBefore.worker;
  const machineBusy = (cpuAfter.machine.busy - cpuBefore.machine.busy) / (cpuAfter.machine.total - cpuBefore.machine.total);
  const runS = observedMs / 1000;
  const pct = (cpuS: number) => fixed((cpuS / runS) * 100, 0);
  const peakKib = Math.max(...rssSamples, hwmReset ? hwm : 0);
  const cgJobsCount = jobRows.filter((r) => (r.target as JobTarget).service.protocol === 'cloudgene').length;
  const completed = stateCount('completed');
  const ended = stateCount('failed') + stateCount('expired') + stateCount('cancelled');
  const total = (counts: Map<string, number>) => [...counts.values()].reduce((a, b) => a + b, 0);
  const row = (...cells: (string | number)[]) => console.log(`| ${cells.join(' | ')} |`);
  const head = (...cells: string[]) => {
    row(...cells);
    console.log(`|${cells.map(() => '---').join('|')}|`);
  };

  console.log(
    `Bun ${Bun.version}; PostgreSQL scratch database ${scratch.databaseName} (autovacuum ${autovacuum}); ${JOBS} jobs (mode ${JOB_MODE}) round-robin over ${USERS} users: ` +
      `${cgJobsCount} on the Cloudgene fake (${USERS - WES_USERS} users, 2 active jobs each), ${JOBS - cgJobsCount} on the WES 1.1 fake (${WES_USERS} users). ` +
      `One worker process: concurrency ${CONCURRENCY}, pool ${POOL}, idleMs ${IDLE_MS}, first poll ${FIRST_POLL_MS} ms, busy delay ${BUSY_MS} ms, lease ${LEASE_MS / 1000} s. ` +
      `The fakes and file-manager (HTTP on 127.0.0.1) run in the bench process. Load average ${loadBefore} before, ${loadAfter} after.\n`,
  );
  head('jobs', 'completed', 'failed', 'lost (not ended)', 'names submitted twice', 'names run twice on a fake', 'results stored twice', 'wall s', 'jobs/s', 'job ended p50 / p95 s');
  row(
    JOBS,
    completed,
    ended,
    open,
    over(cgSubmitsOk) + over(wesSubmitNames),
    over(cgJobs) + over(wesRuns),
    storedByKey.filter((r) => r.n > 1).length + storedByJobAndName.filter((r) => r.n > 1).length,
    fixed(wallMs / 1000),
    fixed((completed / wallMs) * 1000),
    `${fixed(percentile(latencies, 50) / 1000)} / ${fixed(percentile(latencies, 95) / 1000)}`,
  );
  if (failures.length) console.log(`\nNot completed, by error code: ${failures.map((f) => `${f.code ?? 'none'} × ${f.n}`).join(', ')}`);

  console.log('');
  head('submissions (as the fakes saw them)', 'Cloudgene', 'WES');
  row('jobs with a submission on the fake', [...cgJobs.keys()].filter((n) => jobNames.has(n)).length, [...wesRuns.keys()].filter((n) => jobNames.has(n)).length);
  row('submit requests accepted', total(cgSubmitsOk), total(wesSubmitNames));
  row('external names in more than one submit request', over(cgSubmitsOk), over(wesSubmitNames));
  row('external names with more than one job / run', over(cgJobs), over(wesRuns));
  row('"only 2 jobs per user" 400s met', cgBusy, '–');
  row('job-list lookups (find before a resubmission)', cgFinds, '–');

  console.log('');
  head('results', 'count');
  row('result files stored in file-manager', storedByKey.reduce((a, r) => a + r.n, 0));
  row('result keys stored more than once', storedByKey.filter((r) => r.n > 1).length);
  row('(job, file name) stored more than once', storedByJobAndName.filter((r) => r.n > 1).length);
  row(`completed jobs with fewer than ${EXPECTED_RESULTS.cloudgene} (Cloudgene) / ${EXPECTED_RESULTS.wes} (WES) stored results`, incomplete);

  console.log('');
  head('worker process', 'RSS idle before', 'RSS peak', 'RSS idle after (+1 s)');
  row('MiB', mib(rssIdleBefore), `${mib(peakKib)}${hwmReset ? '' : ' (sampled)'}`, mib(rssIdleAfter));

  console.log('');
  head('CPU during the run', 's', '% of one core');
  row('worker process', fixed(workerCpu), pct(workerCpu));
  row('bench process (fakes + file-manager + this bench)', fixed(benchCpu), pct(benchCpu));
  row('PostgreSQL backends of the scratch database', fixed(pgCpu), pct(pgCpu));
  row('whole machine, every process (2 cores = 200 %)', '', fixed(machineBusy * 200, 0));
  console.log(
    `\nRun: ${fixed(runS)} s observed (ended jobs counted every ${PROGRESS_MS} ms; *wall* is the last finished_at − the insert), insert of ${JOBS} rows ${fixed(insertMs, 0)} ms; ` +
      `${fakeRequests} requests to the fakes (${fixed(fakeRequests / JOBS)} per job; ${cgStatus} Cloudgene status polls), ${fixed(fakeRequests / runS, 0)} req/s. ` +
      `PostgreSQL: ${countersAfter.xacts - countersBefore.xacts} transactions (${fixed((countersAfter.xacts - countersBefore.xacts) / JOBS)} per job, file-manager's included), ` +
      `${countersAfter.writes - countersBefore.writes} row writes to jobs.jobs (${fixed((countersAfter.writes - countersBefore.writes) / JOBS)} per job), ` +
      `${countersAfter.seqScans - countersBefore.seqScans} sequential and ${countersAfter.idxScans - countersBefore.idxScans} index scans of it, ${countersAfter.dead} dead row versions left.`,
  );

  if (timings) {
    const slotMs = CONCURRENCY * observedMs;
    const share = (ms: number) => `${fixed((ms / slotMs) * 100, 0)} %`;
    const claimMs = timings.claims.map((c) => c.ms);
    const found = timings.claims.filter((c) => c.n > 0);
    const claimTotal = claimMs.reduce((a, b) => a + b, 0);
    const txTotal = timings.transactions.reduce((a, b) => a + b, 0);
    const calls = Object.entries(timings.calls).sort((a, b) => b[1].ms - a[1].ms);
    const callsTotal = calls.reduce((a, [, c]) => a + c.ms, 0);
    const meanInFlight = inFlight.reduce((a, b) => a + b, 0) / Math.max(1, inFlight.length);
    const freeMs = slotMs * Math.max(0, 1 - meanInFlight / CONCURRENCY);
    console.log(
      `\nWhere the worker's time went: ${CONCURRENCY} slots × ${fixed(runS)} s = ${fixed(slotMs / 1000, 0)} slot-s; on average ${fixed(meanInFlight)} jobs were leased ` +
        `(sampled every ${PROGRESS_MS} ms). Claims run in the loop, outside the slots.\n`,
    );
    head('call', 'n', 'total s', 'mean ms', 'share of slot time');
    for (const [kind, c] of calls) row(kind, c.n, fixed(c.ms / 1000), fixed(c.ms / c.n), share(c.ms));
    row('db transactions: quota check + submitting, a child and its parent, results with the completion', timings.transactions.length, fixed(txTotal / 1000), fixed(txTotal / timings.transactions.length), share(txTotal));
    row('free slots (from the sampled leases)', '', fixed(freeMs / 1000), '', share(freeMs));
    const restMs = slotMs - callsTotal - txTotal - freeMs;
    row('rest: single statements (state changes with history and events, polls, busy deferrals, result rows), worker CPU', '', fixed(restMs / 1000), '', share(restMs));
    const claimSorted = sorted(claimMs);
    const foundSorted = sorted(found.map((c) => c.ms));
    console.log('');
    head('claimJobs in the worker during the run', 'claims', 'jobs per claim', 'p50 ms', 'p95 ms', 'max ms', 'total s');
    row('every claim', claimMs.length, fixed(found.reduce((a, c) => a + c.n, 0) / Math.max(1, claimMs.length), 2), fixed(percentile(claimSorted, 50), 2), fixed(percentile(claimSorted, 95), 2), fixed(claimSorted.at(-1) ?? NaN, 2), fixed(claimTotal / 1000));
    row('claims that found work', found.length, fixed(found.reduce((a, c) => a + c.n, 0) / Math.max(1, found.length), 2), fixed(percentile(foundSorted, 50), 2), fixed(percentile(foundSorted, 95), 2), fixed(foundSorted.at(-1) ?? NaN, 2), '');
  }

  const claimLine = (label: string, xs: number[]) => row(label, xs.length, fixed(percentile(xs, 50), 2), fixed(percentile(xs, 95), 2), fixed(xs.at(-1) ?? NaN, 2));
  console.log('');
  head(`claimJobs afterwards, from the bench (limit ${CONCURRENCY}; ${tableRows} rows, ${JOBS} of them due)`, 'claims', 'p50 ms', 'p95 ms', 'max ms');
  claimLine(`as the run left the table (${deadBeforeClaims} dead rows): one claimer until drained`, claims.one);
  claimLine('… four claimers at once (SKIP LOCKED)', claims.four);
  claimLine('… nothing due (an idle round)', claims.empty);
  claimLine('after VACUUM ANALYZE: one claimer until drained', vacuumed.one);
  claimLine('… four claimers at once (SKIP LOCKED)', vacuumed.four);
  claimLine('… nothing due (an idle round)', vacuumed.empty);

  const directCpuS = (directCpu.user + directCpu.system) / 1e6;
  const directS = directResult.ms / 1000;
  console.log('');
  head('the same jobs', 'wall s', 'jobs/s', 'requests to the fakes', 'req/s', 'CPU % of one core: fakes\' process', '… client');
  row('through the platform', fixed(wallMs / 1000), fixed((completed / wallMs) * 1000), fakeRequests, fixed(fakeRequests / runS, 0), `${pct(benchCpu)} (with file-manager)`, `${pct(workerCpu)} (worker)`);
  row(
    `plain fetch loop, no platform (${CONCURRENCY} users at a time; ${directResult.failed} failed)`,
    fixed(directS),
    fixed(directResult.jobs / directS),
    directFakeRequests,
    fixed(directFakeRequests / directS, 0),
    fixed((directCpuS / directS) * 100, 0),
    fixed((directClientCpuS / directS) * 100, 0),
  );
  console.log(`\nThe platform ran the jobs at ${fixed(((completed / wallMs) * 1000 * 100) / (directResult.jobs / directS))} % of the rate the fakes answer a plain client at.`);
} catch (err) {
  console.error(err);
  if (workerStderr) console.error(`worker stderr (tail):\n${workerStderr}`);
  process.exitCode = 1;
} finally {
  for (const stop of stops.reverse()) await stop().catch(() => {});
  await scratch.cleanup();
}

// ---------------------------------------------------------------------------------------------

/** Drains a child's stdout as it comes (so the pipe never fills); `waitFor` resolves once a line equal to `line` arrived. */
function stdoutOf(proc: Proc) {
  let text = '';
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stdout as ReadableStream<Uint8Array>) text += decoder.decode(chunk, { stream: true });
  })().catch(() => {});
  return {
    async waitFor(line: string, timeoutMs: number): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (!text.split('\n').includes(line)) {
        if (proc.exitCode !== null) throw new Error(`the child exited before "${line}": ${workerStderr}`);
        if (Date.now() > deadline) throw new Error(`no "${line}" from the child after ${timeoutMs} ms: ${workerStderr}`);
        await Bun.sleep(20);
      }
    },
  };
}

function str(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function tagOf(tags: string | undefined): string | undefined {
  if (!tags) return undefined;
  try {
    const parsed = JSON.parse(tags) as Record<string, unknown>;
    return typeof parsed.fip_job === 'string' ? parsed.fip_job : undefined;
  } catch {
    return undefined;
  }
}
