/**
 * The load process of bench/platform-load.ts, in its own process so the fakes in the bench process
 * never delay a measured request (and its CPU is its own). Reads a `LoadConfig` as JSON on stdin,
 * runs `concurrency` virtual users against the gateway for `seconds` (or until `maxRequests` were
 * sent), prints progress on stderr every 5 s and one `LoadOutcome` JSON line on stdout.
 *
 * Each virtual user is bound to one account (round robin) and has its own keep-alive connection
 * (bench/load.ts's `HttpConnection`; reopened if the gateway closes it). In a loop it picks a
 * weighted action: list its jobs, poll one of its jobs, submit a job (federated or to one fake,
 * with an Idempotency-Key; sometimes the previous submit again with the same key, which must answer
 * the same job), upload a small generated VCF, list its files, read its unread count. A user with
 * `maxOpenJobsPerUser` unfinished jobs polls one instead of submitting, so the job backlog stays
 * bounded and the final wait for jobs is short. A request sent before the deadline is always
 * waited for and counted; none is sent after it.
 */
import { encodeRequest, HttpConnection, quantile, type RawResponse } from '../load.ts';
import { bgzip, makeVcf, prng } from '../../tests/support/vcf.ts';
import { ACTIONS, TERMINAL_STATES, type Action, type JobKind, type LoadConfig, type LoadOutcome, type RouteStats, type Sample, type SubmittedJob } from './protocol.ts';

const SAMPLES_PER_CLASS = 5;
const BODY_CHARS = 1000;
const PROGRESS_EVERY_MS = 5000;
/** Distinct generated uploads (different genotypes, so different checksums). */
const UPLOAD_VARIANTS = 16;
/** Input files a user keeps choosing from (the most recent ones). */
const FILES_KEPT = 20;

interface UserState {
  username: string;
  headers: Record<string, string>;
  fileIds: string[];
  /** Unfinished jobs this user submitted. */
  open: Set<string>;
  /** Every job it submitted. */
  submitted: string[];
  /** Submits sent and not yet answered (counted against the open-job cap). */
  inFlightSubmits: number;
  previous?: { key: string; body: Uint8Array; id: string };
}

const config = JSON.parse(await Bun.stdin.text()) as LoadConfig;
const gateway = new URL(config.gatewayUrl);
const random = prng(config.seed);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

const uploads = Array.from({ length: UPLOAD_VARIANTS }, (_, i) =>
  bgzip(makeVcf({ samples: config.vcf.samples, positions: Array.from({ length: config.vcf.positions }, (_, p) => 1000 + p * 97), seed: 1000 + i })),
);
const totalWeight = ACTIONS.reduce((sum, a) => sum + config.weights[a], 0);
const pickAction = (): Action => {
  let roll = random() * totalWeight;
  for (const action of ACTIONS) {
    roll -= config.weights[action];
    if (roll < 0) return action;
  }
  return ACTIONS.at(-1)!;
};

const users: UserState[] = config.users.map((u) => ({
  username: u.username,
  headers: { Authorization: `Bearer ${u.accessToken}` },
  fileIds: [...u.fileIds],
  open: new Set(),
  submitted: [],
  inFlightSubmits: 0,
}));

interface RouteRecord {
  latencies: number[];
  statuses: Map<number, number>;
}
const routes = new Map<string, RouteRecord>();
const samples: LoadOutcome['samples'] = { s5xx: [], transport: [], s4xx: [] };
const jobs: SubmittedJob[] = [];
const replays = { matched: 0, mismatched: 0 };
let submitsDeferred = 0;
let sent = 0;
let answered = 0;
let fiveXx = 0;

const started = performance.now();
const deadline = started + config.seconds * 1000;
const cpuAtStart = process.cpuUsage();

function record(route: string, status: number, ms: number): void {
  let entry = routes.get(route);
  if (!entry) routes.set(route, (entry = { latencies: [], statuses: new Map() }));
  entry.latencies.push(ms);
  entry.statuses.set(status, (entry.statuses.get(status) ?? 0) + 1);
  answered += 1;
  if (status >= 500) fiveXx += 1;
}

function keep(sample: Sample): void {
  const list = sample.status === 0 ? samples.transport : sample.status >= 500 ? samples.s5xx : sample.status >= 400 ? samples.s4xx : undefined;
  if (list && list.length < SAMPLES_PER_CLASS) list.push(sample);
}

const json = (response: RawResponse): any => {
  try {
    return JSON.parse(response.text());
  } catch {
    return undefined;
  }
};

async function virtualUser(index: number): Promise<void> {
  const user = users[index % users.length]!;
  let connection: HttpConnection | undefined;
  let uploadCount = 0;

  /** One request on this user's connection; undefined when no HTTP answer came. */
  const call = async (route: string, method: string, path: string, body?: Uint8Array, headers: Record<string, string> = {}): Promise<RawResponse | undefined> => {
    sent += 1;
    const request = encodeRequest(method, gateway.host, path, { ...user.headers, ...headers }, body);
    let sentAt = performance.now();
    try {
      // A (re)connect is not part of the request's latency: it happens once per connection.
      if (!connection || connection.closed) {
        connection = await HttpConnection.open(gateway.hostname, Number(gateway.port));
        sentAt = performance.now();
      }
      const response = await connection.request(request, config.requestTimeoutMs);
      record(route, response.status, performance.now() - sentAt);
      if (response.status >= 300) {
        keep({ route, method, path, status: response.status, requestId: response.header('x-request-id'), body: response.text().slice(0, BODY_CHARS), atMs: Math.round(sentAt - started) });
      }
      return response;
    } catch (err) {
      record(route, 0, performance.now() - sentAt);
      keep({ route, method, path, status: 0, body: String(err), atMs: Math.round(sentAt - started) });
      connection?.close(true);
      connection = undefined;
      return undefined;
    }
  };

  const poll = async (): Promise<void> => {
    const id = user.open.size > 0 ? pick([...user.open]) : user.submitted.length > 0 ? pick(user.submitted) : undefined;
    if (!id) return listJobs();
    const response = await call('GET /api/jobs/{id}', 'GET', `/api/jobs/${id}`);
    if (response?.status === 200 && TERMINAL_STATES.has(json(response)?.state)) user.open.delete(id);
  };
  const listJobs = async (): Promise<void> => {
    await call('GET /api/jobs', 'GET', '/api/jobs?limit=20');
  };
  const submit = async (): Promise<void> => {
    if (user.previous && random() < config.replayShare) {
      const { key, body, id } = user.previous;
      const response = await call('POST /api/jobs (same key again)', 'POST', '/api/jobs', body, { 'Content-Type': 'application/json', 'Idempotency-Key': key });
      if (response?.status === 202) {
        if (json(response)?.id === id) replays.matched += 1;
        else replays.mismatched += 1;
      }
      return;
    }
    if (user.open.size + user.inFlightSubmits >= config.maxOpenJobsPerUser) {
      submitsDeferred += 1;
      return poll();
    }
    const roll = random();
    const kind: JobKind = roll < config.federatedShare ? 'federated' : roll < config.federatedShare + (1 - config.federatedShare) / 2 ? 'cloudgene' : 'wes';
    const targets = (kind === 'federated' ? [config.services.cloudgene, config.services.wes] : [config.services[kind]]).map((serviceId) => ({ serviceId, panel: config.panel }));
    const payload = { name: `load ${kind} ${user.submitted.length + 1}`, inputFileIds: [pick(user.fileIds)], build: 'hg19', population: 'eur', targets };
    const body = new TextEncoder().encode(JSON.stringify(payload));
    const key = crypto.randomUUID();
    user.inFlightSubmits += 1;
    const response = await call(kind === 'federated' ? 'POST /api/jobs (federated)' : 'POST /api/jobs (one server)', 'POST', '/api/jobs', body, {
      'Content-Type': 'application/json',
      'Idempotency-Key': key,
    });
    user.inFlightSubmits -= 1;
    const id = response?.status === 202 ? json(response)?.id : undefined;
    if (typeof id === 'string') {
      user.open.add(id);
      user.submitted.push(id);
      user.previous = { key, body, id };
      jobs.push({ id, username: user.username, kind });
    }
  };
  const upload = async (): Promise<void> => {
    uploadCount += 1;
    const name = `load-${index}-${uploadCount}.vcf.gz`;
    const response = await call('POST /api/files', 'POST', `/api/files?name=${name}&build=hg19`, pick(uploads), { 'Content-Type': 'application/octet-stream' });
    if (response?.status !== 201) return;
    const file = json(response);
    if (file?.validation?.ok && typeof file.id === 'string') {
      user.fileIds.push(file.id);
      if (user.fileIds.length > FILES_KEPT) user.fileIds.shift();
    }
  };

  const steps: Record<Action, () => Promise<void>> = {
    listJobs,
    pollJob: poll,
    submitJob: submit,
    uploadFile: upload,
    listFiles: async () => void (await call('GET /api/files', 'GET', '/api/files?limit=20')),
    unreadCount: async () => void (await call('GET /api/notifications/unread-count', 'GET', '/api/notifications/unread-count')),
  };
  try {
    while (performance.now() < deadline && sent < config.maxRequests) await steps[pickAction()]();
  } finally {
    connection?.close();
  }
}

const progress = setInterval(() => {
  const seconds = (performance.now() - started) / 1000;
  process.stderr.write(`  ${seconds.toFixed(0).padStart(3)} s: ${answered} answers (${Math.round(answered / seconds)}/s), ${fiveXx} 5xx, ${jobs.length} jobs submitted\n`);
}, PROGRESS_EVERY_MS);
await Promise.all(Array.from({ length: config.concurrency }, (_, i) => virtualUser(i)));
clearInterval(progress);
const elapsedMs = performance.now() - started;
const cpu = process.cpuUsage(cpuAtStart);

const round = (x: number) => Math.round(x * 100) / 100;
const stats: RouteStats[] = [...routes].map(([route, entry]) => {
  const sorted = entry.latencies.sort((a, b) => a - b);
  const count = (test: (status: number) => boolean) => [...entry.statuses].reduce((sum, [status, n]) => sum + (test(status) ? n : 0), 0);
  return {
    route,
    count: sorted.length,
    s2xx: count((s) => s >= 200 && s < 300),
    s3xx: count((s) => s >= 300 && s < 400),
    s4xx: count((s) => s >= 400 && s < 500),
    s5xx: count((s) => s >= 500),
    transport: count((s) => s === 0),
    statuses: Object.fromEntries([...entry.statuses].sort(([a], [b]) => a - b).map(([s, n]) => [String(s), n])),
    p50Ms: round(quantile(sorted, 0.5)),
    p90Ms: round(quantile(sorted, 0.9)),
    p99Ms: round(quantile(sorted, 0.99)),
    maxMs: round(sorted.at(-1) ?? NaN),
  };
});

const status = await Bun.file('/proc/self/status').text();
const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
const outcome: LoadOutcome = {
  elapsedMs: Math.round(elapsedMs),
  requests: answered,
  capped: sent >= config.maxRequests,
  routes: stats,
  samples,
  jobs,
  replays,
  submitsDeferred,
  uploadBytes: { min: Math.min(...uploads.map((u) => u.length)), max: Math.max(...uploads.map((u) => u.length)) },
  clientCpuMs: Math.round((cpu.user + cpu.system) / 1000),
  rssMiB: round(kib('VmRSS') / 1024),
  peakRssMiB: round(kib('VmHWM') / 1024),
};
process.stdout.write(JSON.stringify(outcome) + '\n');
