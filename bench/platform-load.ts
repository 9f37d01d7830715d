/**
 * `bun bench/platform-load.ts [--users 50] [--concurrency 50] [--seconds 30] [--max-requests 100000]
 * [--drain-seconds 60] [--weights listJobs=20,pollJob=25,submitJob=10,uploadFile=10,listFiles=15,unreadCount=20]
 * [--max-open-jobs 2] [--worker-concurrency N] [--seed 1] [--log-level warn]` (DATABASE_URL required, REDIS_URL
 * used when set):
 * a bounded mixed load through the gateway from many users, on loopback.
 *
 * Starts the Cloudgene (`perPoll`) and WES fakes in this process and the seven services as separate
 * processes (tests/support/platform-processes.ts) on a scratch database, with job-processor's fast
 * poll schedule and the rate limits raised (every virtual user comes from 127.0.0.1, so the per-IP
 * limits on registration and login, and the per-user buckets, would otherwise refuse the load itself).
 * Setup, not measured: the admin adds the fakes to the catalogue; `--users` accounts register, sign
 * in, store their fake-server credentials and upload one VCF each. Then `--concurrency` virtual users
 * (bench/platform-load/virtual-users.ts, in its own process) list jobs, poll their jobs, submit jobs
 * (federated or to one server), upload small VCFs, list files and read their unread count for
 * `--seconds` (at most 60) or until `--max-requests` were sent. Afterwards it waits (at most
 * `--drain-seconds`) for the submitted jobs to end.
 *
 * Prints per route: count, status classes, p50/p90/p99/max latency; req/s; the jobs' outcome and
 * submit → completed time, and where that time went (from each job's events); RSS (after setup, at
 * the end of the load, peak) and CPU of every service process, the bench process (the fakes) and the
 * load process; the machine's load and PostgreSQL's connection count during the load. Exits 1 when any request answered 5xx
 * or got no HTTP answer (printing the first few with their bodies and the services' error log lines),
 * 2 on bad arguments or without DATABASE_URL. Every process, the scratch database and the data
 * directory are removed at the end, also on failure or Ctrl-C.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { makeFakeJwt, startCloudgeneFake, type CloudgeneFake } from '../tests/fakes/cloudgene.ts';
import { startWesFake, type WesFake } from '../tests/fakes/wes.ts';
import { addFakeServers, registerAndSignIn, signIn, storeCredentials, uploadVcf, type ApiUser } from '../tests/support/gateway-api.ts';
import { FAST_JOBS_ENV, PLATFORM_ADMIN, SERVICE_NAMES, startPlatformProcesses, type PlatformProcesses, type ServiceName } from '../tests/support/platform-processes.ts';
import { createTestDatabase, type TestDatabase } from '../tests/support/test-database.ts';
import { CLK_TCK, cpuTicks, fixed, machineTicks, statusMiB } from './proc-stats.ts';
import { printTable } from './table.ts';
import { parseWeights, TERMINAL_STATES, type JobKind, type LoadConfig, type LoadOutcome, type Sample, type Weights } from './platform-load/protocol.ts';

const MAX_SECONDS = 60;
/** Raised so no request of the load is refused while each is still charged (one GCRA round trip). */
const RAISED_LIMITS = {
  'api-gateway': { RATE_LIMIT_USER: '100000000/1m', RATE_LIMIT_ANONYMOUS: '100000000/1m', RATE_LIMIT_AUTH: '100000000/1m', RATE_LIMIT_UPLOADS: '100000000/1h' },
  // The largest values user-service accepts.
  'user-service': { REGISTRATIONS_PER_HOUR_PER_IP: '100000', LOGIN_IP_ATTEMPTS_PER_MINUTE: '10000' },
};
/** job-processor polls soon and often, so a job against the fakes ends in seconds instead of minutes. */
const FAST_POLLS = FAST_JOBS_ENV;
const SETUP_PARALLEL = 8;
const PANEL = 'hapmap-2';

function usage(message: string): never {
  console.error(`platform-load: ${message}`);
  console.error(
    'usage: DATABASE_URL=postgres://… [REDIS_URL=redis://…] bun bench/platform-load.ts [--users 50] [--concurrency 50] [--seconds 30 (≤ 60)]\n' +
      '       [--max-requests 100000] [--drain-seconds 60] [--weights listJobs=20,pollJob=25,submitJob=10,uploadFile=10,listFiles=15,unreadCount=20]\n' +
      '       [--max-open-jobs 2] [--worker-concurrency N] [--seed 1] [--log-level warn]',
  );
  process.exit(2);
}

let parsed: ReturnType<typeof parseOptions>;
function parseOptions() {
  const { values } = parseArgs({
    args: Bun.argv.slice(2),
    options: {
      users: { type: 'string', default: '50' },
      concurrency: { type: 'string', default: '50' },
      seconds: { type: 'string', default: '30' },
      'max-requests': { type: 'string', default: '100000' },
      'drain-seconds': { type: 'string', default: '60' },
      weights: { type: 'string' },
      'max-open-jobs': { type: 'string', default: '2' },
      seed: { type: 'string', default: '1' },
      'log-level': { type: 'string', default: 'warn' },
      'worker-concurrency': { type: 'string' },
    },
  });
  const int = (name: keyof typeof values, min: number, max = Number.MAX_SAFE_INTEGER) => {
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < min || n > max) usage(`--${name} must be a whole number from ${min} to ${max}`);
    return n;
  };
  let weights: Weights;
  try {
    weights = parseWeights(values.weights);
  } catch (err) {
    usage((err as Error).message);
  }
  if (!['debug', 'info', 'warn', 'error'].includes(values['log-level']!)) usage('--log-level must be debug, info, warn or error');
  return {
    users: int('users', 1, 10_000),
    concurrency: int('concurrency', 1, 10_000),
    seconds: int('seconds', 1, MAX_SECONDS),
    maxRequests: int('max-requests', 1),
    drainSeconds: int('drain-seconds', 0, 600),
    maxOpenJobs: int('max-open-jobs', 1, 100),
    seed: int('seed', 0),
    weights,
    logLevel: values['log-level']!,
    /** job-processor's WORKER_CONCURRENCY; unset = the service's default. */
    workerConcurrency: values['worker-concurrency'] === undefined ? undefined : int('worker-concurrency', 1, 256),
  };
}
try {
  parsed = parseOptions();
} catch (err) {
  usage((err as Error).message);
}
const options = parsed;
const databaseAdminUrl = process.env.DATABASE_URL;
if (!databaseAdminUrl) {
  console.error(
    'platform-load: DATABASE_URL is not set. The services run as separate processes, which cannot share an in-memory PGlite: point\n' +
      'DATABASE_URL at a PostgreSQL server this user may create databases on (e.g. postgres://root@127.0.0.1:5432/postgres);\n' +
      'the bench creates a scratch database there and drops it at the end. REDIS_URL (optional) makes every service share one KV.',
  );
  process.exit(2);
}
const redisUrl = process.env.REDIS_URL || undefined;

// ---------------------------------------------------------------------------------------------
// Cleanup: whatever was started is stopped, in reverse order, once, also on Ctrl-C.

let platform: PlatformProcesses | undefined;
let database: TestDatabase | undefined;
let cloudgene: CloudgeneFake | undefined;
let wes: WesFake | undefined;
let loadProcess: Bun.Subprocess | undefined;
let cleaning: Promise<void> | undefined;
let interrupted = false;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    const step = async (what: string, run: () => Promise<unknown> | undefined) => {
      try {
        await run();
      } catch (err) {
        console.error(`cleanup: ${what}:`, err instanceof Error ? err.message : err);
      }
    };
    if (loadProcess && loadProcess.exitCode === null) {
      loadProcess.kill('SIGTERM');
      await step('load process', () => loadProcess!.exited);
    }
    await step('services', () => platform?.stopAll());
    // Ctrl-C while the services were still starting leaves processes `platform` does not know yet.
    await step('other child processes', () => stopChildren());
    await step('Cloudgene fake', () => cloudgene?.stop());
    await step('WES fake', () => wes?.stop());
    await step('scratch database', () => database?.drop());
  })();
  return cleaning;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    console.error(`\n${signal}: stopping every process and dropping the scratch database…`);
    void cleanup().finally(() => process.exit(130));
  });
}
/** Process ids whose parent is this process (every service and the load process), from /proc. */
function childPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Field 4 (ppid) follows the command name, which may hold spaces, in parentheses.
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function sendSignal(pids: number[], name: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, name);
    } catch {
      // already gone
    }
  }
}

/** SIGTERM to every child still running, SIGKILL to those left after 10 s. */
async function stopChildren(): Promise<void> {
  sendSignal(childPids(), 'SIGTERM');
  const deadline = Date.now() + 10_000;
  // A zombie (exited, not yet reaped) still has a /proc entry: count only those in another state.
  const alive = () => childPids().filter((pid) => !/\) Z /.test(readFileSafe(`/proc/${pid}/stat`)));
  while (alive().length > 0 && Date.now() < deadline) await Bun.sleep(100);
  sendSignal(alive(), 'SIGKILL');
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

// Last resort if the bench dies without cleaning up: 'exit' handlers must be synchronous.
process.on('exit', () => sendSignal(childPids(), 'SIGKILL'));

// ---------------------------------------------------------------------------------------------

interface ProcessRow {
  label: string;
  pid: number | 'self';
  rssAfterSetup: number;
  ticksAtStart: number;
}

interface JobView {
  id: string;
  state: string;
  createdAt: string;
  finishedAt: string | null;
  updatedAt: string;
  error: { code: string; message: string | null } | null;
  children: { service: string | null; state: string }[];
}

async function inBatches<T, R>(items: T[], size: number, run: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(size, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        results[index] = await run(items[index]!, index);
      }
    }),
  );
  return results;
}

const percentile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
};

/**
 * Where the completed jobs' time went, per job sent to one server (a federated job's children, or a
 * single-server job), from each job's events: waiting in the queue (for a worker slot or the
 * server's per-user limit), the submit, the polls until the fake finished, and storing the results.
 */
async function jobPhases(jobs: { id: string; username: string }[], userOf: Map<string, ApiUser>): Promise<void> {
  const phases = { queued: [] as number[], submitting: [] as number[], running: [] as number[], exporting: [] as number[] };
  let targets = 0;
  await inBatches(jobs, 8, async (job) => {
    const { items } = (await userOf.get(job.username)!.expectJson('GET', `/api/jobs/${job.id}/events`, 200)) as { items: { jobId: string; at: string; state: string }[] };
    const byJob = new Map<string, { at: number; state: string }[]>();
    for (const e of items) byJob.set(e.jobId, [...(byJob.get(e.jobId) ?? []), { at: Date.parse(e.at), state: e.state }]);
    for (const events of byJob.values()) {
      events.sort((a, b) => a.at - b.at);
      const first = (state: string) => events.find((e) => e.state === state)?.at;
      const running = first('running');
      const exporting = first('exporting');
      const completed = first('completed');
      // The last submit attempt before the job ran: earlier ones were deferred back to the queue.
      const submitting = events.filter((e) => e.state === 'submitting' && (running === undefined || e.at <= running)).at(-1)?.at;
      if (submitting === undefined || running === undefined || exporting === undefined || completed === undefined) continue;
      targets += 1;
      phases.queued.push((submitting - events[0]!.at) / 1000);
      phases.submitting.push((running - submitting) / 1000);
      phases.running.push((exporting - running) / 1000);
      phases.exporting.push((completed - exporting) / 1000);
    }
  });
  if (targets === 0) return;
  const labels = {
    queued: 'queued → submitting (waiting for a worker, or for the server\'s per-user limit)',
    submitting: 'submitting → running (input sent to the fake)',
    running: 'running → exporting (polls until the fake finished)',
    exporting: 'exporting → completed (results fetched and stored)',
  };
  printTable(
    `Where the time of the ${targets} completed jobs sent to one server went (children of federated jobs and single-server jobs; from their events), in s.`,
    ['phase', 'p50 s', 'p90 s', 'max s'],
    (Object.keys(phases) as (keyof typeof phases)[]).map((phase) => [labels[phase], fixed(percentile(phases[phase], 0.5), 2), fixed(percentile(phases[phase], 0.9), 2), fixed(Math.max(...phases[phase]), 2)]),
  );
}

/**
 * Samples PostgreSQL's connection count every second: a server shared with other test runs can run
 * out of connections (`max_connections`), which the services then answer with 5xx.
 */
function watchConnections(adminUrl: string, databaseName: string): { stop(): Promise<{ all: number; ours: number; max: number } | undefined> } {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {}, connect_timeout: 5 });
  const peak = { all: 0, ours: 0, max: NaN };
  let sampled = false;
  let running = true;
  const loop = (async () => {
    try {
      peak.max = Number((await sql`show max_connections`)[0]!.max_connections);
      while (running) {
        const [row] = await sql`select count(*)::int as "all", (count(*) filter (where datname = ${databaseName}))::int as ours from pg_stat_activity`;
        peak.all = Math.max(peak.all, row!.all);
        peak.ours = Math.max(peak.ours, row!.ours);
        sampled = true;
        await Bun.sleep(1000);
      }
    } catch {
      // No connection to spare (or none at all): the figures are left out, the load is not disturbed.
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      await sql.end({ timeout: 2 }).catch(() => {});
      return sampled ? peak : undefined;
    },
  };
}

async function main(): Promise<number> {
  const tag = crypto.randomUUID().slice(0, 6);
  const usernames = Array.from({ length: options.users }, (_, i) => `load-${tag}-${String(i + 1).padStart(4, '0')}`);
  const cloudgeneTokens = new Map(usernames.map((u) => [u, makeFakeJwt(u)]));
  const wesTokens = new Map(usernames.map((u) => [u, `wes-token-${u}`]));

  console.log(`Bun ${Bun.version}, ${availableParallelism()} cores shared by the load process, seven services, the fakes, PostgreSQL${redisUrl ? ' and Redis' : ''}; loopback only.`);
  console.log(`Load average before: ${loadavg().map((x) => x.toFixed(2)).join(' ')} (other work on the machine moves every figure).`);
  console.log(
    `Rate limits raised for the bench: gateway RATE_LIMIT_USER/ANONYMOUS/AUTH 100000000/1m, RATE_LIMIT_UPLOADS 100000000/1h (still charged, never refused), ` +
      `user-service REGISTRATIONS_PER_HOUR_PER_IP=100000 and LOGIN_IP_ATTEMPTS_PER_MINUTE=10000: every virtual user comes from 127.0.0.1, so the shipped ` +
      `per-IP and per-user limits would refuse the load itself.`,
  );
  console.log(
    `job-processor: ${Object.entries(FAST_POLLS).map(([k, v]) => `${k}=${v}`).join(' ')} (fast polls against the fakes), ` +
      `WORKER_CONCURRENCY ${options.workerConcurrency ?? 'as shipped (8)'}; LOG_LEVEL=${options.logLevel}.`,
  );

  const setupStarted = performance.now();
  cloudgene = await startCloudgeneFake({ tokens: Object.fromEntries([...cloudgeneTokens].map(([u, t]) => [t, u])), progression: 'perPoll' });
  wes = await startWesFake({ version: '1.1.0', tokens: [...wesTokens.values()] });
  database = await createTestDatabase();
  await database.database.close();
  platform = await startPlatformProcesses({
    databaseUrl: database.url!,
    redisUrl,
    env: { LOG_LEVEL: options.logLevel },
    serviceEnv: { ...RAISED_LIMITS, 'job-processor': { ...FAST_POLLS, ...(options.workerConcurrency ? { WORKER_CONCURRENCY: String(options.workerConcurrency) } : {}) } },
  });
  const gatewayUrl = platform.url;
  const servicesReady = performance.now();
  console.log(`KV: ${redisUrl ? `Redis (${redisUrl}), shared by every service` : 'in memory, one per process (REDIS_URL unset)'}; scratch database ${new URL(database.url!).pathname.slice(1)}.`);

  // Setup, not measured.
  const admin = await signIn(gatewayUrl, PLATFORM_ADMIN.username, PLATFORM_ADMIN.password);
  const services = await addFakeServers(admin, { cloudgene: cloudgene.url, wes: wes.url });
  const accounts = await inBatches(usernames, SETUP_PARALLEL, async (username) => {
    const user = await registerAndSignIn(gatewayUrl, username);
    await storeCredentials(user, { cloudgene: cloudgeneTokens.get(username)!, wes: wesTokens.get(username)! });
    const file = await uploadVcf(user, { samples: 5 });
    if (!file.body?.validation?.ok) throw new Error(`setup upload for ${username} did not validate: ${JSON.stringify(file.body?.validation)}`);
    // Every route the load uses once, so a broken one fails here with its answer.
    for (const path of ['/api/jobs?limit=20', '/api/files?limit=20', '/api/notifications/unread-count']) await user.expectJson('GET', path, 200);
    return { user, fileIds: [file.id] };
  });
  const setupDone = performance.now();
  console.log(
    `Setup (not measured): services ready in ${fixed((servicesReady - setupStarted) / 1000, 1)} s; ${options.users} users registered, signed in, ` +
      `stored credentials, uploaded a VCF and read each route once in ${fixed((setupDone - servicesReady) / 1000, 1)} s.`,
  );

  const processes: ProcessRow[] = [];
  for (const name of SERVICE_NAMES) {
    const pid = platform.pid(name)!;
    processes.push({ label: name, pid, rssAfterSetup: await statusMiB(pid, 'VmRSS'), ticksAtStart: 0 });
  }
  processes.push({ label: 'bench process (Cloudgene + WES fakes)', pid: 'self', rssAfterSetup: await statusMiB('self', 'VmRSS'), ticksAtStart: 0 });

  const config: LoadConfig = {
    gatewayUrl,
    seconds: options.seconds,
    maxRequests: options.maxRequests,
    concurrency: options.concurrency,
    requestTimeoutMs: 30_000,
    seed: options.seed,
    weights: options.weights,
    maxOpenJobsPerUser: options.maxOpenJobs,
    federatedShare: 0.5,
    replayShare: 0.1,
    services,
    panel: PANEL,
    vcf: { samples: 20, positions: 150 },
    users: accounts.map(({ user, fileIds }) => ({ username: user.username, accessToken: user.accessToken, fileIds })),
  };
  console.log(
    `\nLoad: ${options.concurrency} virtual users over ${options.users} accounts for ${options.seconds} s (cap ${options.maxRequests} requests), ` +
      `weights ${Object.entries(options.weights).map(([k, v]) => `${k}=${v}`).join(' ')}; a user submits while it has < ${options.maxOpenJobs} unfinished jobs ` +
      `(else it polls one); half the submits federated (both fakes), the rest to one fake; 10% resend the previous submit with the same Idempotency-Key.`,
  );

  const machineAtStart = await machineTicks();
  const benchCpuAtStart = process.cpuUsage();
  for (const row of processes) if (row.pid !== 'self') row.ticksAtStart = await cpuTicks(row.pid);
  const loadStarted = performance.now();
  loadProcess = Bun.spawn([process.execPath, join(import.meta.dir, 'platform-load/virtual-users.ts')], {
    stdin: new Blob([JSON.stringify(config)]),
    stdout: 'pipe',
    stderr: 'inherit',
  });
  const connections = watchConnections(databaseAdminUrl!, new URL(database.url!).pathname.slice(1));
  const [stdout, code] = await Promise.all([new Response(loadProcess.stdout as ReadableStream).text(), loadProcess.exited]);
  const connectionPeak = await connections.stop();
  const loadWindowMs = performance.now() - loadStarted;
  const machineAtEnd = await machineTicks();
  const benchCpu = process.cpuUsage(benchCpuAtStart);
  const endTicks = await Promise.all(processes.map((row) => (row.pid === 'self' ? NaN : cpuTicks(row.pid))));
  const rssAtEnd = await Promise.all(processes.map((row) => statusMiB(row.pid, 'VmRSS')));
  const peakRss = await Promise.all(processes.map((row) => statusMiB(row.pid, 'VmHWM')));
  const loadAverageAfterLoad = loadavg();
  const loadEndedAt = Date.now();
  if (code !== 0) throw new Error(`the load process exited with ${code}`);
  const outcome = JSON.parse(stdout.trim().split('\n').at(-1)!) as LoadOutcome;

  // Per route.
  const seconds = outcome.elapsedMs / 1000;
  const order = ['GET /api/jobs', 'GET /api/jobs/{id}', 'POST /api/jobs (federated)', 'POST /api/jobs (one server)', 'POST /api/jobs (same key again)', 'POST /api/files', 'GET /api/files', 'GET /api/notifications/unread-count'];
  const routes = [...outcome.routes].sort((a, b) => order.indexOf(a.route) - order.indexOf(b.route));
  const total = routes.reduce((sum, r) => ({ count: sum.count + r.count, s2xx: sum.s2xx + r.s2xx, s4xx: sum.s4xx + r.s4xx, s5xx: sum.s5xx + r.s5xx, other: sum.other + r.s3xx + r.transport }), {
    count: 0,
    s2xx: 0,
    s4xx: 0,
    s5xx: 0,
    other: 0,
  });
  printTable(
    `Per route, through the gateway (${fixed(seconds, 1)} s, ${outcome.requests} requests, ${fixed(outcome.requests / seconds)} req/s${outcome.capped ? `; stopped by the ${options.maxRequests}-request cap` : ''}). ` +
      `Latency from the request's first byte written to its last byte read, in ms; "other" = 3xx or no HTTP answer.`,
    ['route', 'count', 'req/s', '2xx', '4xx', '5xx', 'other', 'p50', 'p90', 'p99', 'max'],
    [
      ...routes.map((r) => [
        r.route,
        String(r.count),
        fixed(r.count / seconds, 1),
        String(r.s2xx),
        String(r.s4xx),
        String(r.s5xx),
        String(r.s3xx + r.transport),
        fixed(r.p50Ms, 1),
        fixed(r.p90Ms, 1),
        fixed(r.p99Ms, 1),
        fixed(r.maxMs, 1),
      ]),
      ['all', String(total.count), fixed(total.count / seconds, 1), String(total.s2xx), String(total.s4xx), String(total.s5xx), String(total.other), '', '', '', ''],
    ],
  );
  const unusual = routes.filter((r) => r.s2xx !== r.count).map((r) => `${r.route}: ${Object.entries(r.statuses).map(([s, n]) => `${s === '0' ? 'no answer' : s} ×${n}`).join(', ')}`);
  if (unusual.length) console.log(`\nStatus codes where not all 2xx: ${unusual.join('; ')}`);
  console.log(
    `\nUploads ${outcome.uploadBytes.min}–${outcome.uploadBytes.max} bytes (bgzipped VCF, 20 samples × 150 sites). ` +
      `Same Idempotency-Key again: ${outcome.replays.matched} answered the same job, ${outcome.replays.mismatched} another. ` +
      `Submits turned into a poll (user at ${options.maxOpenJobs} unfinished jobs): ${outcome.submitsDeferred}.`,
  );

  // Jobs: wait (bounded) for every submitted job to end, reading each user's job list.
  const drainStarted = performance.now();
  const drainDeadline = drainStarted + options.drainSeconds * 1000;
  const byUser = new Map<string, Set<string>>();
  for (const job of outcome.jobs) byUser.set(job.username, (byUser.get(job.username) ?? new Set()).add(job.id));
  const userOf = new Map(accounts.map(({ user }) => [user.username, user]));
  const views = new Map<string, JobView>();
  const readJobs = async (user: ApiUser, wanted: Set<string>) => {
    let cursor: string | null = null;
    let seen = 0;
    do {
      const page: { items: JobView[]; nextCursor: string | null } = await user.expectJson('GET', `/api/jobs?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, 200);
      for (const item of page.items) {
        if (wanted.has(item.id)) {
          views.set(item.id, item);
          seen += 1;
        }
      }
      cursor = page.nextCursor;
    } while (cursor && seen < wanted.size);
  };
  const unfinished = () => outcome.jobs.filter((j) => !TERMINAL_STATES.has(views.get(j.id)?.state ?? ''));
  for (;;) {
    const pending = new Map<string, Set<string>>();
    for (const job of unfinished()) pending.set(job.username, byUser.get(job.username)!);
    if (pending.size === 0) break;
    await inBatches([...pending], 10, ([username, wanted]) => readJobs(userOf.get(username)!, wanted));
    if (unfinished().length === 0 || performance.now() > drainDeadline) break;
    await Bun.sleep(500);
  }
  const drainMs = performance.now() - drainStarted;

  const kinds: (JobKind | 'all')[] = ['federated', 'cloudgene', 'wes', 'all'];
  const kindLabel = { federated: 'federated (Cloudgene + WES)', cloudgene: 'one server: Cloudgene', wes: 'one server: WES', all: 'all' };
  printTable(
    `Jobs submitted during the load (202), as they stood ${fixed(drainMs / 1000, 1)} s after it ended (wait bounded by --drain-seconds ${options.drainSeconds}). ` +
      `Time = the job's createdAt → finishedAt (server clocks), completed jobs only, in s.`,
    ['jobs', 'submitted', 'completed', 'of which during the load', 'partial', 'failed', 'cancelled/expired', 'not ended', 'p50 s', 'p99 s', 'max s'],
    kinds.map((kind) => {
      const list = outcome.jobs.filter((j) => kind === 'all' || j.kind === kind);
      const states = list.map((j) => views.get(j.id)?.state ?? 'unknown');
      const count = (...wanted: string[]) => String(states.filter((s) => wanted.includes(s)).length);
      const completed = list.map((j) => views.get(j.id)).filter((v): v is JobView => v?.state === 'completed');
      const durations = completed.map((v) => (Date.parse(v.finishedAt ?? v.updatedAt) - Date.parse(v.createdAt)) / 1000);
      return [
        kindLabel[kind],
        String(list.length),
        count('completed'),
        String(completed.filter((v) => Date.parse(v.finishedAt ?? v.updatedAt) <= loadEndedAt).length),
        count('partial'),
        count('failed'),
        count('cancelled', 'expired'),
        String(states.filter((s) => !TERMINAL_STATES.has(s)).length),
        fixed(percentile(durations, 0.5), 2),
        fixed(percentile(durations, 0.99), 2),
        fixed(Math.max(...durations), 2),
      ];
    }),
  );
  await jobPhases(outcome.jobs.filter((j) => views.get(j.id)?.state === 'completed'), userOf);
  const badJobs = outcome.jobs.map((j) => views.get(j.id)).filter((v): v is JobView => !!v && (v.state === 'failed' || v.state === 'partial'));
  for (const job of badJobs.slice(0, 3)) {
    const owner = userOf.get(outcome.jobs.find((j) => j.id === job.id)!.username)!;
    const detail = await owner.expectJson('GET', `/api/jobs/${job.id}`, 200).catch((err) => ({ error: String(err) }));
    const reasons = [detail.error, ...(detail.children ?? []).map((c: any) => c.error && { service: c.service?.slug, ...c.error })].filter(Boolean);
    console.log(`  ${job.state} job ${job.id}: ${JSON.stringify(reasons)}`);
  }

  // Processes.
  const coreMs = (ticks: number) => (ticks * 1000) / CLK_TCK;
  const machine = (machineAtEnd.busy - machineAtStart.busy) / Math.max(1, machineAtEnd.total - machineAtStart.total);
  printTable(
    `Processes: RSS in MiB (VmRSS after setup, at the end of the load; peak = VmHWM since the process started) and CPU during the load ` +
      `(% of one core over ${fixed(loadWindowMs / 1000, 1)} s).`,
    ['process', 'pid', 'RSS after setup', 'RSS at end', 'peak', 'CPU %'],
    [
      ...processes.map((row, i) => [
        row.label,
        String(row.pid === 'self' ? process.pid : row.pid),
        fixed(row.rssAfterSetup, 1),
        fixed(rssAtEnd[i]!, 1),
        fixed(peakRss[i]!, 1),
        fixed(((row.pid === 'self' ? (benchCpu.user + benchCpu.system) / 1000 : coreMs(endTicks[i]! - row.ticksAtStart)) / loadWindowMs) * 100),
      ]),
      ['load process (virtual users)', String(loadProcess.pid), '', fixed(outcome.rssMiB, 1), fixed(outcome.peakRssMiB, 1), fixed((outcome.clientCpuMs / loadWindowMs) * 100)],
      ['whole machine', '', '', '', '', `${fixed(machine * availableParallelism() * 100)} of ${availableParallelism() * 100}`],
    ],
  );
  console.log(`\nLoad average after the load: ${loadAverageAfterLoad.map((x) => x.toFixed(2)).join(' ')}.`);
  if (connectionPeak) {
    console.log(
      `PostgreSQL connections during the load (sampled every second): at most ${connectionPeak.all} of max_connections ${connectionPeak.max}, ` +
        `${connectionPeak.ours} of them to this bench's database (every service keeps a pool of up to 10).`,
    );
  }

  // Verdict.
  const failures: Sample[] = [...outcome.samples.s5xx, ...outcome.samples.transport];
  const failed = total.s5xx + routes.reduce((sum, r) => sum + r.transport, 0);
  if (outcome.samples.s4xx.length) {
    console.log('\nFirst 4xx answers (none expected):');
    for (const s of outcome.samples.s4xx) console.log(`  +${s.atMs} ms ${s.method} ${s.path} → ${s.status} [${s.requestId ?? '-'}] ${s.body}`);
  }
  if (failed > 0) {
    console.log(`\nFAILED: ${total.s5xx} answers were 5xx and ${failed - total.s5xx} requests got no HTTP answer. First ones:`);
    for (const s of failures) console.log(`  +${s.atMs} ms ${s.method} ${s.path} → ${s.status || 'no answer'} [${s.requestId ?? '-'}] ${s.body}`);
    for (const name of SERVICE_NAMES) {
      const lines = (await platform.log(name)).split('\n').filter((line) => /"level":"(warn|error)"/.test(line));
      if (lines.length) console.log(`\n--- ${name}: ${lines.length} warn/error log lines, last 5 ---\n${lines.slice(-5).join('\n')}`);
    }
    return 1;
  }
  console.log(`\nOK: no 5xx and every request answered (${outcome.requests} requests).`);
  return 0;
}

let exitCode = 1;
try {
  exitCode = await main();
} catch (err) {
  // After Ctrl-C the processes are being stopped: what fails then is not news.
  if (interrupted) {
    await cleanup();
    process.exit(130);
  }
  console.error('\nplatform-load failed:', err instanceof Error ? err.message : err);
  if (platform) {
    for (const name of SERVICE_NAMES) {
      const tail = (await platform.log(name as ServiceName)).trim().split('\n').slice(-5).join('\n');
      if (tail) console.error(`--- ${name} (last lines) ---\n${tail}`);
    }
  }
} finally {
  await cleanup();
}
process.exit(exitCode);
