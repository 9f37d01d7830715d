/**
 * The platform as it runs in distributed mode: each of the seven services a separate `bun
 * services/<name>/src/index.ts` process on its own loopback port, all on one PostgreSQL database (one
 * schema per service) and the KV named by REDIS_URL, wired to each other by URL and service secret as
 * compose does. Ports are chosen before anything starts, so every service knows every other's URL. Each
 * process writes its log to `<dataDir>/logs/<label>.log`. Used by tests/e2e and bench/platform-load.ts.
 */
import { openSync, closeSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Subprocess } from 'bun';
import { SERVICE_URL_VARIABLES } from '@shared/config.ts';
import { randomToken } from '@shared/token-hash.ts';
import { secretVariable } from '../../services/user-service/src/service.ts';
import { MIGRATIONS_DIR } from './test-database.ts';

export const SERVICE_NAMES = ['api-gateway', 'user-service', 'service-registry', 'job-processor', 'file-manager', 'notification', 'monitoring'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

const REPO_ROOT = resolve(import.meta.dir, '../..');

/**
 * job-processor on a schedule for tests against the local fakes (production defaults are seconds to
 * minutes): polls every 100–300 ms, transient failures retried after 100–500 ms, idle workers look every
 * 50 ms, and the shortest lease the worker accepts, so a killed worker's jobs move on within seconds.
 */
export const FAST_JOBS_ENV: Readonly<Record<string, string>> = {
  POLL_FIRST_MS: '100',
  POLL_MAX_MS: '300',
  RETRY_BASE_MS: '100',
  RETRY_MAX_MS: '500',
  WORKER_IDLE_MS: '50',
  WORKER_LEASE_SECONDS: '5',
};

export const PLATFORM_ADMIN = { username: 'platform-admin', email: 'platform-admin@example.org', password: 'Catalogue-Keeper-Passphrase-9' };

export interface PlatformProcessesOptions {
  /** The PostgreSQL database every service uses (a child process cannot share an in-memory PGlite). */
  databaseUrl: string;
  /** The KV for every service; unset → each process keeps its own in-memory KV. */
  redisUrl?: string;
  /** Variables for every service. */
  env?: Record<string, string>;
  /** Variables for one service (win over `env`). */
  serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>;
  /** How long each service may take to answer `/ready` 200 (default 30 s). */
  readyTimeoutMs?: number;
}

export interface PlatformProcesses {
  /** The gateway's base URL, `http://127.0.0.1:<port>`. */
  readonly url: string;
  readonly urls: Readonly<Record<ServiceName, string>>;
  /** The DATA_DIR every process shares (stored files under `files/`, logs under `logs/`). */
  readonly dataDir: string;
  /** The environment a service was started with (e.g. to start a worker replica like it). */
  envOf(name: ServiceName): Record<string, string>;
  /** Process id of a running service (undefined when it is stopped). */
  pid(name: ServiceName): number | undefined;
  /** Sends `signal` and waits for the process to exit; resolves with its exit code (null when killed). */
  stop(name: ServiceName, signal?: NodeJS.Signals): Promise<number | null>;
  /** (Re)starts a stopped service on its port, with extra variables if given, and waits for `/ready`. */
  start(name: ServiceName, extraEnv?: Record<string, string>): Promise<void>;
  /** Starts another process of a service (a replica, a worker) on a new port; `label` names its log. */
  spawnReplica(label: string, name: ServiceName, extraEnv?: Record<string, string>): Promise<ReplicaProcess>;
  /** Waits until the service answers `/ready` 200. */
  waitReady(name: ServiceName, timeoutMs?: number): Promise<void>;
  /** What a process has logged so far. */
  log(label: string): Promise<string>;
  /** Stops every process (SIGTERM, then SIGKILL after 10 s) and removes DATA_DIR. */
  stopAll(): Promise<void>;
}

export interface ReplicaProcess {
  readonly url: string;
  readonly pid: number;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** A loopback port nothing listens on right now. */
export function freePort(): number {
  const probe = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}

/** Polls `url` until it answers 200 or `timeoutMs` passes; throws with the last answer. */
export async function waitFor200(url: string, timeoutMs: number, exited?: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (exited?.()) throw new Error(`${url}: the process exited`);
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      if (response.status === 200) return;
      last = `${response.status} ${await response.text()}`;
    } catch (err) {
      last = String(err);
    }
    await Bun.sleep(100);
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms: ${last}`);
}

/** Starts the seven services as processes and waits until each is ready. */
export async function startPlatformProcesses(options: PlatformProcessesOptions): Promise<PlatformProcesses> {
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  const dataDir = await mkdtemp(join(tmpdir(), 'fip-e2e-'));
  await mkdir(join(dataDir, 'logs'));
  const ports = Object.fromEntries(SERVICE_NAMES.map((name) => [name, freePort()])) as Record<ServiceName, number>;
  const urls = Object.fromEntries(SERVICE_NAMES.map((name) => [name, `http://127.0.0.1:${ports[name]}`])) as Record<ServiceName, string>;
  const secrets = new Map(SERVICE_NAMES.filter((name) => name !== 'user-service').map((name) => [name, randomToken(24)]));
  const encryptionKey = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64');

  const common: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? tmpdir(),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    DATABASE_URL: options.databaseUrl,
    ...(options.redisUrl ? { REDIS_URL: options.redisUrl } : {}),
    DATA_DIR: dataDir,
    MIGRATIONS_DIR,
    ENCRYPTION_KEYS: `e2e:${encryptionKey}`,
    PUBLIC_API_URL: `${urls['api-gateway']}/api`,
    PUBLIC_URL: urls['api-gateway'],
    // Per-address counters live in the Redis every run on this machine shares, and every test user
    // comes from 127.0.0.1: the limits themselves are tested in tests/user-service and tests/api-gateway.
    REGISTRATIONS_PER_HOUR_PER_IP: '100000',
    LOGIN_IP_ATTEMPTS_PER_MINUTE: '10000',
    RATE_LIMIT_AUTH: '10000/1m',
    ...Object.fromEntries(SERVICE_NAMES.map((name) => [SERVICE_URL_VARIABLES[name], urls[name]])),
    ...options.env,
  };
  const envs = Object.fromEntries(
    SERVICE_NAMES.map((name) => {
      const own: Record<string, string> =
        name === 'user-service'
          ? {
              ...Object.fromEntries([...secrets].map(([service, secret]) => [secretVariable(service), secret])),
              ADMIN_USERNAME: PLATFORM_ADMIN.username,
              ADMIN_EMAIL: PLATFORM_ADMIN.email,
              ADMIN_PASSWORD: PLATFORM_ADMIN.password,
            }
          : { SERVICE_SECRET: secrets.get(name)! };
      const env: Record<string, string> = { ...common, ...own, PORT: String(ports[name]), ...options.serviceEnv?.[name] };
      return [name, env];
    }),
  ) as Record<ServiceName, Record<string, string>>;

  const children = new Map<string, Subprocess>();
  const extraEnv = new Map<ServiceName, Record<string, string>>();

  const spawn = (label: string, name: ServiceName, env: Record<string, string>): Subprocess => {
    const fd = openSync(join(dataDir, 'logs', `${label}.log`), 'a');
    const child = Bun.spawn([process.execPath, join(REPO_ROOT, 'services', name, 'src/index.ts')], {
      cwd: REPO_ROOT,
      env,
      stdin: 'ignore',
      stdout: fd,
      stderr: fd,
    });
    closeSync(fd);
    children.set(label, child);
    return child;
  };
  const waitReady = async (name: ServiceName, timeoutMs = readyTimeoutMs) => {
    const child = children.get(name);
    await waitFor200(`${urls[name]}/ready`, timeoutMs, () => child?.exitCode !== null || child?.signalCode !== null);
  };
  const stopChild = async (label: string, signal: NodeJS.Signals = 'SIGTERM') => {
    const child = children.get(label);
    if (!child) return null;
    children.delete(label);
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const code = await child.exited;
    clearTimeout(timer);
    return child.signalCode ? null : code;
  };
  const processes: PlatformProcesses = {
    url: urls['api-gateway'],
    urls,
    dataDir,
    envOf: (name) => ({ ...envs[name], ...extraEnv.get(name) }),
    pid: (name) => children.get(name)?.pid,
    stop: (name, signal) => stopChild(name, signal),
    async start(name, extra = {}) {
      if (children.has(name)) throw new Error(`${name} is running`);
      extraEnv.set(name, extra);
      spawn(name, name, processes.envOf(name));
      await waitReady(name);
    },
    async spawnReplica(label, name, extra = {}) {
      const port = freePort();
      const child = spawn(label, name, { ...processes.envOf(name), ...extra, PORT: String(port) });
      const url = `http://127.0.0.1:${port}`;
      await waitFor200(`${url}/ready`, readyTimeoutMs, () => child.exitCode !== null || child.signalCode !== null);
      return { url, pid: child.pid, stop: (signal) => stopChild(label, signal) };
    },
    waitReady,
    log: (label) => readFile(join(dataDir, 'logs', `${label}.log`), 'utf8').catch(() => ''),
    async stopAll() {
      await Promise.all([...children.keys()].map((label) => stopChild(label)));
      await rm(dataDir, { recursive: true, force: true });
    },
  };

  try {
    // user-service first: the others fetch its keys and service tokens while they start.
    spawn('user-service', 'user-service', envs['user-service']);
    await waitReady('user-service');
    for (const name of SERVICE_NAMES) if (name !== 'user-service') spawn(name, name, envs[name]);
    await Promise.all(SERVICE_NAMES.map((name) => waitReady(name)));
  } catch (err) {
    const logs = await Promise.all(SERVICE_NAMES.map(async (name) => `--- ${name}\n${(await processes.log(name)).slice(-2_000)}`));
    await processes.stopAll();
    throw new Error(`${String(err)}\n${logs.join('\n')}`);
  }
  return processes;
}
