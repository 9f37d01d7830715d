/**
 * The child process of `bench/jobs.ts`, so its RSS and CPU are its own: `bun bench/jobs-worker.ts
 * <config.json>`, the file written by the bench:
 *
 * - `mode: 'worker'`: job-processor's real job worker (`createJobWorker`, real adapters, file-manager over
 *   HTTP with a service token minted by the bench, a vault answering from the given credentials) on the
 *   scratch database. It starts claiming at once (on an empty queue until the bench inserts the jobs),
 *   prints `ready`, and on SIGTERM stops (in-flight steps finish), writes where its time went (HTTP calls
 *   by kind, database transactions; see `instrument`) to `timingsFile` and exits.
 * - `mode: 'direct'`: no platform at all: a plain loop of `fetch()`es that drives the same number of jobs
 *   through the fakes (submit, status polls back to back, result list, every download read to the end),
 *   `concurrency` users at a time, each user's jobs one after another (so the Cloudgene per-user limit is
 *   never met). Prints one JSON line `{ms, requests, jobs, failed}` and exits. It measures what the fakes
 *   can answer, for comparison with the platform run.
 */
import { openDatabase, type Db } from '@shared/db.ts';
import { createHttpClient } from '@shared/http-client.ts';
import { createLogger } from '@shared/log.ts';
import { createSecretBox } from '@shared/secret-box.ts';
import type { ServerCredential } from '../services/job-processor/src/adapters/adapter.ts';
import { createAdapters } from '../services/job-processor/src/adapters/adapters.ts';
import { createJobWorker } from '../services/job-processor/src/job-worker.ts';
import { filesClient, type VaultClient } from '../services/job-processor/src/platform-clients.ts';
import { createPollSchedule, type PollScheduleOptions } from '../services/job-processor/src/poll-schedule.ts';
import { bgzip, makeVcf } from '../tests/support/vcf.ts';

export interface WorkerModeConfig {
  mode: 'worker';
  databaseUrl: string;
  fileManagerUrl: string;
  serviceToken: string;
  /** What the vault releases: `userId` + service slug → credential. */
  credentials: { userId: string; slug: string; credential: ServerCredential }[];
  secretKey: { id: string; key: string };
  owner: string;
  concurrency: number;
  /** postgres.js pool size of the worker process (the services' default is 10). */
  maxConnections: number;
  leaseMs: number;
  idleMs: number;
  /** Where the process writes its {@link WorkerTimings} when it stops. */
  timingsFile: string;
  poll: PollScheduleOptions;
}

export interface DirectModeConfig {
  mode: 'direct';
  cloudgeneUrl: string;
  wesUrl: string;
  /** One entry per user: its Cloudgene token (null = a WES user) and how many jobs it runs. */
  users: { token: string | null; jobs: number }[];
  concurrency: number;
  jobMode: 'imputation' | 'qc_only';
}

export interface DirectResult {
  ms: number;
  requests: number;
  jobs: number;
  failed: number;
}

const WORKFLOW = { url: 'https://example.org/imputation.nf', type: 'Nextflow', typeVersion: '23.04' };
// A file, not the argument itself: with hundreds of users' tokens it exceeds what one argv string may hold (128 KiB).
const config = (process.argv[2] ? await Bun.file(process.argv[2]).json() : {}) as WorkerModeConfig | DirectModeConfig;

if (config.mode === 'worker') await runWorker(config);
else if (config.mode === 'direct') await runDirect(config);
else {
  console.error('usage: bun bench/jobs-worker.ts <config.json with mode worker|direct>');
  process.exit(2);
}

async function runWorker(c: WorkerModeConfig): Promise<void> {
  const timings = instrument(c.fileManagerUrl);
  const opened = await openDatabase({ url: c.databaseUrl, maxConnections: c.maxConnections });
  const db = timings.timeTransactions(opened.db);
  const files = filesClient(
    createHttpClient({ service: 'file-manager', baseUrl: c.fileManagerUrl, timeoutMs: 10_000, retries: 0 }),
    { authorization: async () => `Bearer ${c.serviceToken}` },
    c.fileManagerUrl,
  );
  const byUser = new Map(c.credentials.map((entry) => [`${entry.userId} ${entry.slug}`, entry.credential]));
  const vault: VaultClient = { stored: async () => [], release: async (userId, slug) => byUser.get(`${userId} ${slug}`) ?? null };
  const worker = createJobWorker({
    db,
    adapters: createAdapters({ timeoutMs: 30_000, workflow: WORKFLOW }),
    files,
    vault,
    secretBox: await createSecretBox([{ id: c.secretKey.id, key: Uint8Array.from(Buffer.from(c.secretKey.key, 'base64')) }]),
    logger: createLogger({ level: 'warn', sink: (line) => process.stderr.write(`${line}\n`) }),
    owner: c.owner,
    concurrency: c.concurrency,
    leaseMs: c.leaseMs,
    idleMs: c.idleMs,
    pollSchedule: createPollSchedule(c.poll),
    onClaim: timings.claimed,
  });
  worker.start();
  // The loop's timers are unref'd (a service's HTTP server keeps it alive); this process has no server.
  const keepAlive = setInterval(() => undefined, 60_000);
  process.stdout.write('ready\n');
  process.on('SIGTERM', () => {
    clearInterval(keepAlive);
    void worker
      .stop()
      .then(() => opened.close())
      .then(() => Bun.write(c.timingsFile, JSON.stringify(timings.report())))
      .finally(() => process.exit(0));
  });
}

/** What the worker process waited on, written to `timingsFile` when it stops. */
export interface WorkerTimings {
  /** Outgoing HTTP calls by kind: count and total ms until the response headers arrived. */
  calls: Record<string, { n: number; ms: number }>;
  /** Every claim (one statement): ms (including the wait for a pooled connection) and jobs claimed, as the worker's `onClaim` reports it. */
  claims: { ms: number; n: number }[];
  /** Every `db.transaction` (quota check + move to submitting, a child's change with its parent, results with the completion), ms. State changes of jobs without a parent, quiet writes and busy deferrals are single statements, not transactions, and not in here. */
  transactions: number[];
}

/**
 * Times, without touching job-processor's code: every `fetch` (the adapters and file-manager's client use
 * the global one), by server and kind of call; every `db.transaction` through a proxy on the `Db`; and
 * every claim through the worker's `onClaim` hook.
 * A fetch counts until its response headers: a download's body is streamed into file-manager afterwards,
 * so it shows up in the "store result" time.
 */
function instrument(fileManagerUrl: string) {
  const calls = new Map<string, { n: number; ms: number }>();
  const claims: WorkerTimings['claims'] = [];
  const transactions: number[] = [];
  const kindOf = (url: string, method: string): string => {
    const path = new URL(url).pathname;
    if (url.startsWith(fileManagerUrl)) {
      if (path.startsWith('/internal/results')) return method === 'POST' ? 'file-manager: store result (incl. download body)' : 'file-manager: result by key';
      if (path.includes('/holds/')) return method === 'PUT' ? 'file-manager: hold input' : 'file-manager: release hold';
      if (path.endsWith('/content')) return 'file-manager: read input';
      if (path.endsWith('/link')) return 'file-manager: input link';
      return `file-manager: ${method} other`;
    }
    if (method === 'POST') return 'fakes: submit';
    if (path.startsWith('/share/results') || path.startsWith('/fake-files')) return 'fakes: download (headers)';
    return 'fakes: status, result list';
  };
  const inner = globalThis.fetch;
  const timed = async (input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const kind = kindOf(url, (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase());
    const started = performance.now();
    try {
      return await inner(input, init);
    } finally {
      const entry = calls.get(kind) ?? { n: 0, ms: 0 };
      entry.n++;
      entry.ms += performance.now() - started;
      calls.set(kind, entry);
    }
  };
  globalThis.fetch = Object.assign(timed, { preconnect: inner.preconnect }) as typeof fetch;
  return {
    timeTransactions: (db: Db): Db =>
      new Proxy(db, {
        get(target, prop, receiver) {
          const value = Reflect.get(target, prop, receiver);
          if (prop !== 'transaction' || typeof value !== 'function') return value;
          return async (...args: unknown[]) => {
            const started = performance.now();
            const result = await value.apply(target, args);
            transactions.push(performance.now() - started);
            return result;
          };
        },
      }),
    claimed: (claim: { ms: number; jobs: number }) => {
      claims.push({ ms: claim.ms, n: claim.jobs });
    },
    report: (): WorkerTimings => ({ calls: Object.fromEntries(calls), claims, transactions }),
  };
}

async function runDirect(c: DirectModeConfig): Promise<void> {
  const input = bgzip(makeVcf({ samples: 4, chromosome: '20' }));
  let requests = 0;
  let failed = 0;
  let jobs = 0;
  const call = async (url: string, init?: RequestInit): Promise<Response> => {
    requests++;
    return fetch(url, init);
  };
  const getJson = async (url: string, headers: Record<string, string>): Promise<Record<string, any>> => {
    const res = await call(url, { headers });
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${await res.text()}`);
    return (await res.json()) as Record<string, any>;
  };
  const drain = async (url: string, headers: Record<string, string> = {}): Promise<void> => {
    const res = await call(url, { headers });
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    await res.arrayBuffer();
  };

  async function cloudgeneJob(token: string, name: string): Promise<boolean> {
    const headers = { 'x-auth-token': token, accept: 'application/json' };
    const form = new FormData();
    for (const [k, v] of Object.entries({ refpanel: 'apps@hapmap-2@2.0.0', build: 'hg19', phasing: 'eagle', population: 'eur', mode: c.jobMode, r2Filter: '0', 'job-name': name, password: 'Pass-word_123' })) {
      form.set(k, v);
    }
    form.set('files', new Blob([input], { type: 'application/gzip' }), 'cohort.chr20.vcf.gz');
    const res = await call(`${c.cloudgeneUrl}/api/v2/jobs/submit/imputationserver2`, { method: 'POST', headers, body: form });
    const submitted = (await res.json()) as { id?: string };
    if (!res.ok || !submitted.id) throw new Error(`submit: HTTP ${res.status} ${JSON.stringify(submitted)}`);
    let state = 1;
    while (state === 1 || state === 2 || state === 3) state = (await getJson(`${c.cloudgeneUrl}/api/v2/jobs/${submitted.id}/status`, headers)).state as number;
    const job = await getJson(`${c.cloudgeneUrl}/api/v2/jobs/${submitted.id}`, headers);
    for (const param of job.outputParams ?? []) {
      for (const file of param.files ?? []) await drain(`${c.cloudgeneUrl}/share/results/${file.hash}/${String(file.name).split('/').map(encodeURIComponent).join('/')}`);
    }
    return state === 4;
  }

  async function wesJob(name: string): Promise<boolean> {
    const form = new FormData();
    form.set('workflow_url', WORKFLOW.url);
    form.set('workflow_type', WORKFLOW.type);
    form.set('workflow_type_version', WORKFLOW.typeVersion);
    form.set('workflow_params', JSON.stringify({ inputs: ['http://127.0.0.1:1/input.vcf.gz'], build: 'hg19', mode: c.jobMode, panel: 'hapmap-2', job_name: name }));
    form.set('tags', JSON.stringify({ fip_job: name }));
    const res = await call(`${c.wesUrl}/runs`, { method: 'POST', body: form });
    const submitted = (await res.json()) as { run_id?: string };
    if (!res.ok || !submitted.run_id) throw new Error(`submit: HTTP ${res.status} ${JSON.stringify(submitted)}`);
    const terminal = new Set(['COMPLETE', 'EXECUTOR_ERROR', 'SYSTEM_ERROR', 'CANCELED', 'PREEMPTED']);
    let state = 'QUEUED';
    while (!terminal.has(state)) state = (await getJson(`${c.wesUrl}/runs/${submitted.run_id}/status`, {})).state as string;
    const log = await getJson(`${c.wesUrl}/runs/${submitted.run_id}`, {});
    for (const url of Object.values(log.outputs ?? {})) if (typeof url === 'string') await drain(url);
    return state === 'COMPLETE';
  }

  const queue = c.users.map((user, i) => ({ user, i }));
  const started = performance.now();
  await Promise.all(
    Array.from({ length: c.concurrency }, async () => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        for (let j = 0; j < next.user.jobs; j++) {
          const name = `direct-${next.i}-${j}`;
          const ok = await (next.user.token ? cloudgeneJob(next.user.token, name) : wesJob(name)).catch((err) => {
            process.stderr.write(`${err}\n`);
            return false;
          });
          jobs++;
          if (!ok) failed++;
        }
      }
    }),
  );
  const result: DirectResult = { ms: performance.now() - started, requests, jobs, failed };
  // Awaited, so the line is out before the exit (a pipe write may otherwise still be pending).
  await Bun.write(Bun.stdout, `${JSON.stringify(result)}\n`);
  process.exit(0);
}
