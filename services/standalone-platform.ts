/**
 * The standalone platform as a function: all seven services in this process on seven consecutive
 * loopback ports, sharing one database (embedded PGlite under DATA_DIR, or DATABASE_URL) and one KV
 * (in memory, or REDIS_URL). `services/standalone.ts` runs it on 8000–8006; the demo runs it on any
 * port range next to the fake imputation servers.
 */
import { ConfigError, parseEnv, SERVICE_URL_VARIABLES, type BaseEnv, type Env } from '@shared/config.ts';
import type { Database } from '@shared/db.ts';
import type { Kv } from '@shared/kv.ts';
import { createLogger, type Logger, type LogLevel } from '@shared/log.ts';
import { assertPgliteNotInUse } from '@shared/pglite-in-use.ts';
import { openServiceDatabase, openServiceKv, startService, type RunningService } from '@shared/serve.ts';
import type { ServiceDefinition } from '@shared/service.ts';
import { randomToken } from '@shared/token-hash.ts';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SERVICES } from './catalog.ts';
import { secretVariable } from './user-service/src/service.ts';

/** The well-known ports start here; a service's offset from it is kept on any base port. */
const WELL_KNOWN_BASE = 8000;

export interface StandaloneOptions {
  /** The variables every service parses (usually `process.env`); values set here win over the derived ones. `PORT` is ignored. */
  env: Env;
  /** Port of the gateway; the other six follow it in the well-known order (default 8000 → 8000–8006). */
  basePort?: number;
}

export interface StandalonePlatform {
  /** The seven running services, gateway first. */
  services: readonly RunningService[];
  /** The gateway's base URL, `http://127.0.0.1:<basePort>`. */
  url: string;
  /** What the services share: `pglite` (with its directory) or `postgres`. */
  database: { kind: Database['kind']; where: string };
  kvKind: Kv['kind'];
  /** The parsed `LOG_LEVEL`, for the runner's own lines. */
  logLevel: LogLevel;
  /** Time from the call to every service listening, in ms. */
  startMs: number;
  /** Stops every service (draining requests), then closes the KV and the database. Safe to call twice. */
  stop(): Promise<void>;
}

/** The port a service listens on when the gateway is on `basePort`. */
export function standalonePort(definition: Pick<ServiceDefinition, 'port'>, basePort = WELL_KNOWN_BASE): number {
  return basePort + (definition.port - WELL_KNOWN_BASE);
}

/**
 * Starts the seven services; rejects with a `ConfigError` (one line per bad key, prefixed with the
 * service) when the environment is invalid, and leaves nothing running when any service fails to start.
 */
export async function startStandalone(options: StandaloneOptions): Promise<StandalonePlatform> {
  const started = performance.now();
  const basePort = options.basePort ?? WELL_KNOWN_BASE;
  // One process serves every port, so PORT would be ambiguous; a laptop install listens on loopback only.
  const { PORT: _ignored, ...given } = options.env;
  const host = given.HOST || '127.0.0.1';
  const reachable = host === '0.0.0.0' ? '127.0.0.1' : host;
  const urlOf = (definition: ServiceDefinition) => `http://${reachable}:${standalonePort(definition, basePort)}`;
  const gateway = SERVICES.find((d) => d.name === 'api-gateway')!;
  // Each service proves itself to user-service with its own secret; in one process they are made up
  // at start (secrets set in the environment still win).
  const secrets = new Map(SERVICES.filter((d) => d.name !== 'user-service').map((d) => [d.name, randomToken(24)]));
  const derived: Env = {
    HOST: host,
    ...Object.fromEntries(SERVICES.map((d) => [SERVICE_URL_VARIABLES[d.name]!, urlOf(d)])),
    // Download links and email links name the gateway this platform really listens on.
    PUBLIC_API_URL: `${urlOf(gateway)}/api`,
    PUBLIC_URL: urlOf(gateway),
    ...Object.fromEntries([...secrets].map(([name, secret]) => [secretVariable(name), secret])),
  };
  const envs = SERVICES.map((definition) => {
    try {
      const env = parseEnv(definition.envSchema, { ...derived, SERVICE_SECRET: secrets.get(definition.name), ...given }) as BaseEnv & { PORT: number };
      return { ...env, PORT: standalonePort(definition, basePort) };
    } catch (err) {
      if (err instanceof ConfigError) throw new ConfigError(err.lines.map((line) => `${definition.name}: ${line}`));
      throw err;
    }
  });

  const shared = envs[0]!;
  // A second process on the same embedded database would corrupt it (PGlite takes no lock).
  if (!shared.DATABASE_URL && existsSync(join(shared.DATA_DIR, 'pglite'))) await assertPgliteNotInUse(join(shared.DATA_DIR, 'pglite'), { force: true });
  const database = await openServiceDatabase(shared);
  let kv: Kv;
  try {
    kv = await openServiceKv(shared);
  } catch (err) {
    await database.close();
    throw err;
  }
  const running: RunningService[] = [];
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await Promise.all(running.map((service) => service.stop()));
      await kv.close();
      await database.close();
    })());

  try {
    for (const [i, definition] of SERVICES.entries()) {
      const env = envs[i]!;
      const logger: Logger = createLogger({ level: env.LOG_LEVEL, fields: { service: definition.name } });
      running.push(await startService(definition, { env, kv, database, logger }));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    services: running,
    url: running[0]!.url,
    database: { kind: database.kind, where: database.kind === 'pglite' ? `${shared.DATA_DIR}/pglite` : 'DATABASE_URL' },
    kvKind: kv.kind,
    logLevel: shared.LOG_LEVEL,
    startMs: Math.round(performance.now() - started),
    stop,
  };
}
