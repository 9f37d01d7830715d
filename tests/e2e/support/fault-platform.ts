/**
 * Shared pieces of the infrastructure fault tests (fault-postgres, fault-redis): a link to PostgreSQL
 * or Redis that can be cut and restored, the platform as processes behind such a link with the two
 * fakes in its catalogue and a few signed-in users (each with their own accounts on the fakes) who
 * uploaded an input, and a client that records every answer it got by phase of the fault. Unlike
 * federation.ts, the services reach their database or KV through the link, and the scratch database
 * stays open here for the "nothing lost or duplicated" counts. Everything runs on loopback.
 */
import { sqlState } from '@shared/db.ts';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { makeFakeJwt, startCloudgeneFake, type CloudgeneFake } from '../../fakes/cloudgene.ts';
import { startWesFake, type WesFake } from '../../fakes/wes.ts';
import { addFakeServers, registerAndSignIn, signIn, storeCredentials, uploadVcf, type ApiUser, type UploadedFile } from '../../support/gateway-api.ts';
import { FAST_JOBS_ENV, PLATFORM_ADMIN, SERVICE_NAMES, startPlatformProcesses, type PlatformProcesses, type ServiceName } from '../../support/platform-processes.ts';
import { startTcpForwarder, type TcpForwarder } from '../../support/tcp-forwarder.ts';
import { createTestDatabase, type TestDatabase } from '../../support/test-database.ts';
import { stopInOrder } from './stop-in-order.ts';

/** The six services that keep their state in PostgreSQL (each has a `database` readiness check). */
export const DATABASE_SERVICES = SERVICE_NAMES.filter((name) => name !== 'api-gateway');

/** The fast job schedule with up to 50 transient failures in a row: an outage of a few seconds must not use up a job's retries. */
export const FAULT_JOBS_ENV: Record<string, string> = { ...FAST_JOBS_ENV, RETRY_MAX_ATTEMPTS: '50' };

/**
 * The real Redis is shared by every test on this machine, and the edge rate limits count per client
 * (address or user): generous limits keep the load from spending its own budget. (platform-processes
 * already raises the login and registration limits.) They stay limits (not `off`), so the KV is still
 * asked and the gateway's `RATE_LIMIT_KV_DOWN` policy still applies when it is gone.
 */
const GENEROUS_GATEWAY_LIMITS = { RATE_LIMIT_USER: '100000/1m', RATE_LIMIT_ANONYMOUS: '100000/1m', RATE_LIMIT_UPLOADS: '10000/1h' };

/** `host:port` of a `postgres://` or `redis://` URL. */
export function endpointOf(url: string, defaultPort: number): { hostname: string; port: number } {
  const parsed = new URL(url);
  return { hostname: parsed.hostname || '127.0.0.1', port: Number(parsed.port || defaultPort) };
}

/** The same URL (credentials, database name, options) pointed at a loopback port. */
export function viaPort(url: string, port: number): string {
  const parsed = new URL(url);
  parsed.hostname = '127.0.0.1';
  parsed.port = String(port);
  return parsed.toString();
}

/**
 * A link to a server that a test can cut and restore, standing in for restarting the server itself
 * (the machine's PostgreSQL and Redis serve other tests and must never be stopped).
 *
 * Why this is what clients see during a restart: when PostgreSQL restarts, the postmaster terminates
 * every backend, so each client connection is closed under it (postgres.js sees the socket end, as it
 * does after the FATAL 57P01 a fast shutdown sends first), and until the server listens again every
 * new connection is refused (ECONNREFUSED) — then it accepts connections again on the same address,
 * with no session state left over. A stopped Redis is the same: open connections end, new ones are
 * refused, and the restarted server answers on the same port. `cut()` does exactly that on the
 * loopback port the services were given: it stops listening (new connections are refused) and
 * terminates both sides of every open connection; `restore()` listens on the same port again and
 * forwards new connections to the live server. Each connection made after a restore is a fresh one,
 * like a connection to a restarted server. (A freshly restarted PostgreSQL may first answer 57P03
 * "starting up" for a moment; postgres.js treats that like a refused connection.)
 */
export interface CuttableLink {
  readonly port: number;
  readonly isCut: boolean;
  cut(): void;
  restore(): void;
  close(): void;
}

export function startCuttableLink(target: { hostname: string; port: number }): CuttableLink {
  let forwarder: TcpForwarder | null = startTcpForwarder(target);
  const port = forwarder.port;
  return {
    port,
    get isCut() {
      return forwarder === null;
    },
    cut() {
      forwarder?.close();
      forwarder = null;
    },
    restore() {
      forwarder ??= startTcpForwarder(target, port);
    },
    close() {
      forwarder?.close();
      forwarder = null;
    },
  };
}

export interface FaultUser {
  readonly api: ApiUser;
  readonly input: UploadedFile;
}

export interface FaultPlatform {
  readonly platform: PlatformProcesses;
  /** The scratch database (opened directly, not through any link), for the "nothing lost or duplicated" counts. */
  readonly testDb: TestDatabase;
  readonly cloudgene: CloudgeneFake;
  readonly wes: WesFake;
  readonly serviceIds: { cloudgene: string; wes: string };
  readonly admin: ApiUser;
  readonly users: FaultUser[];
  /** Stops the processes and the fakes and drops the scratch database. */
  stop(): Promise<void>;
}

export interface FaultPlatformOptions {
  /** How many researchers to register (each with fake credentials and one uploaded input). */
  users: number;
  /** Username prefix (also keeps two test files apart in logs). */
  prefix: string;
  /** The database URL the services get, from the scratch database's own URL (e.g. through a link). */
  databaseUrl?: (scratchUrl: string) => string;
  redisUrl?: string;
  serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>;
}

/**
 * A scratch database, the Cloudgene (`perPoll`) and WES fakes, the seven services as processes on it,
 * the fakes added to the catalogue by the admin, and `users` researchers who stored their fake
 * credentials and uploaded one input each. Cleans up what it started if a step fails.
 */
export async function startFaultPlatform(options: FaultPlatformOptions): Promise<FaultPlatform> {
  const testDb = await createTestDatabase();
  const names = Array.from({ length: options.users }, (_, i) => `${options.prefix}${i + 1}`);
  const cloudgeneTokens = new Map(names.map((name) => [name, makeFakeJwt(name)]));
  const wesTokens = new Map(names.map((name) => [name, `wes-token-${name}`]));
  const cloudgene = await startCloudgeneFake({ tokens: Object.fromEntries([...cloudgeneTokens].map(([name, token]) => [token, name])), progression: 'perPoll' });
  const wes = await startWesFake({ version: '1.1.0', tokens: [...wesTokens.values()] });
  let platform: PlatformProcesses | undefined;
  // The platform first, so no worker is left calling a fake that is gone; the database last.
  const stop = () => stopInOrder('the fault platform', [() => platform?.stopAll(), () => cloudgene.stop(), () => wes.stop(), () => testDb.drop()]);
  try {
    platform = await startPlatformProcesses({
      databaseUrl: options.databaseUrl ? options.databaseUrl(testDb.url!) : testDb.url!,
      redisUrl: options.redisUrl,
      readyTimeoutMs: 60_000,
      serviceEnv: {
        ...options.serviceEnv,
        'job-processor': { ...FAULT_JOBS_ENV, ...options.serviceEnv?.['job-processor'] },
        'api-gateway': { ...GENEROUS_GATEWAY_LIMITS, ...options.serviceEnv?.['api-gateway'] },
      },
    });
    const admin = await signIn(platform.url, PLATFORM_ADMIN.username, PLATFORM_ADMIN.password);
    const serviceIds = await addFakeServers(admin, { cloudgene: cloudgene.url, wes: wes.url });
    const users: FaultUser[] = [];
    for (const name of names) {
      const api = await registerAndSignIn(platform.url, name);
      await storeCredentials(api, { cloudgene: cloudgeneTokens.get(name)!, wes: wesTokens.get(name)! });
      users.push({ api, input: await uploadVcf(api, { samples: 4 }) });
    }
    return { platform, testDb, cloudgene, wes, serviceIds, admin, users, stop };
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
}

/** A job on both fakes (a federated parent with two children) for one user's input. */
export function federatedJobBody(user: FaultUser, serviceIds: { cloudgene: string; wes: string }, name: string) {
  return {
    name,
    inputFileIds: [user.input.id],
    build: 'hg19',
    population: 'eur',
    targets: [
      { serviceId: serviceIds.cloudgene, panel: 'hapmap-2' },
      { serviceId: serviceIds.wes, panel: 'hapmap-2' },
    ],
  };
}

export type Phase = 'before' | 'outage' | 'recovering' | 'after';

/** One answer a load client got: the HTTP status, or `network` (no answer) or `timeout` (a hang). */
export interface Answer {
  phase: Phase;
  label: string;
  status: number | 'network' | 'timeout';
  /** The problem's `code` when the body was an RFC 9457 problem. */
  code?: string;
  /** When it was asked (ms since the epoch) and how long the answer took. */
  at: number;
  ms: number;
}

/** Records what clients were answered, tagged with the phase the fault was in when they asked. */
export interface AnswerLog {
  phase: Phase;
  readonly answers: Answer[];
  /**
   * A request through the gateway with `accessToken`, answered with status and body (JSON when it
   * parses). Gives up after `timeoutMs` (recorded as a hang) instead of waiting for ever.
   */
  request(
    baseUrl: string,
    accessToken: string,
    label: string,
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number | 'network' | 'timeout'; body: any }>;
  /** Per phase, the count and slowest answer of each `label status code`, e.g. `{ outage: { 'GET /api/jobs 503 not_ready': '4 (max 12 ms)' } }`. */
  summary(): Record<string, Record<string, string>>;
}

/** A client timeout far above any answer a working or failing platform gives: reaching it means a hang. */
export const HANG_MS = 20_000;

export function createAnswerLog(): AnswerLog {
  const log: AnswerLog = {
    phase: 'before',
    answers: [],
    async request(baseUrl, accessToken, label, method, path, body, headers = {}) {
      const phase = log.phase;
      const at = Date.now();
      const h: Record<string, string> = { authorization: `Bearer ${accessToken}`, ...headers };
      if (body !== undefined) h['content-type'] = 'application/json';
      let answer: { status: number | 'network' | 'timeout'; body: any };
      try {
        const res = await fetch(`${baseUrl}${path}`, {
          method,
          headers: h,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(HANG_MS),
        });
        const text = await res.text();
        let parsed: any = text;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {}
        const problem = (res.headers.get('content-type') ?? '').startsWith('application/problem+json') && typeof parsed?.code === 'string';
        answer = { status: res.status, body: parsed };
        log.answers.push({ phase, label, status: res.status, ...(problem ? { code: parsed.code } : {}), at, ms: Date.now() - at });
      } catch (err) {
        const status = err instanceof DOMException && (err.name === 'TimeoutError' || err.name === 'AbortError') ? 'timeout' : 'network';
        answer = { status, body: String(err) };
        log.answers.push({ phase, label, status, at, ms: Date.now() - at });
      }
      return answer;
    },
    summary() {
      const tally: Record<string, Record<string, { count: number; maxMs: number }>> = {};
      for (const a of log.answers) {
        const key = `${a.label} ${a.status}${a.code ? ` ${a.code}` : ''}`;
        const entry = ((tally[a.phase] ??= {})[key] ??= { count: 0, maxMs: 0 });
        entry.count += 1;
        entry.maxMs = Math.max(entry.maxMs, a.ms);
      }
      return Object.fromEntries(
        Object.entries(tally).map(([phase, keys]) => [phase, Object.fromEntries(Object.entries(keys).map(([key, t]) => [key, `${t.count} (max ${t.maxMs} ms)`]))]),
      );
    },
  };
  return log;
}

/** A service's own `/ready` (not through the gateway): status and body, or `network` when it did not answer. */
export async function readiness(url: string): Promise<{ status: number | 'network'; body: any }> {
  try {
    const res = await fetch(`${url}/ready`, { signal: AbortSignal.timeout(5_000) });
    return { status: res.status, body: await res.json().catch(() => undefined) };
  } catch {
    return { status: 'network', body: undefined };
  }
}

/** Files file-manager holds on disk (`<DATA_DIR>/files/objects/<xx>/<key>`), temporary uploads excluded. */
export async function storedObjectCount(dataDir: string): Promise<number> {
  const root = join(dataDir, 'files', 'objects');
  let count = 0;
  for (const dir of await readdir(root).catch(() => [] as string[])) count += (await readdir(join(root, dir)).catch(() => [] as string[])).length;
  return count;
}

/** The seven process ids, to prove nothing was restarted. */
export function pidsOf(platform: PlatformProcesses): Record<ServiceName, number | undefined> {
  return Object.fromEntries(SERVICE_NAMES.map((name) => [name, platform.pid(name)])) as Record<ServiceName, number | undefined>;
}

/**
 * Runs a verification query, retried while PostgreSQL refuses new connections for being full
 * (SQLSTATE 53300): the machine's server is shared with other suites running at the same time.
 */
export async function whenConnectionFree<T>(query: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await query();
    } catch (err) {
      if (sqlState(err) !== '53300' || attempt >= 20) throw err;
      await Bun.sleep(500);
    }
  }
}
