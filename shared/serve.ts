/**
 * Runners: start a service definition on Bun.serve (migrations first, under the advisory lock),
 * and stop it gracefully (stop accepting, drain in-flight requests, stop loops). `runService` is
 * the whole of a distributed service's `index.ts`.
 */
import type { Server } from 'bun';
import { ConfigError, parseEnv, type BaseEnv, type Env } from './config.ts';
import { openDatabase, type Database } from './db.ts';
import { createKv } from './kv-factory.ts';
import type { Kv } from './kv.ts';
import { createLogger, type Logger } from './log.ts';
import { migrate } from './migrations.ts';
import type { BuiltService, ServiceDefinition } from './service.ts';

export interface RunningService {
  name: string;
  url: string;
  port: number;
  /** Stops accepting, waits for in-flight requests (up to `graceMs`), then stops background loops. */
  stop(graceMs?: number): Promise<void>;
}

export interface StartOptions {
  env: BaseEnv & { PORT: number };
  kv: Kv;
  logger: Logger;
  /** Required for definitions that own a schema. */
  database?: Database;
}

/** Applies the service's migrations, builds its app and serves it. */
export async function startService(definition: ServiceDefinition, options: StartOptions): Promise<RunningService> {
  const logger = options.logger;
  let built: BuiltService;
  if (definition.schema !== null) {
    const database = options.database;
    if (!database) throw new Error(`${definition.name} needs a database`);
    const result = await migrate(database, { schema: definition.schema, migrationsDir: options.env.MIGRATIONS_DIR });
    if (result.applied > 0) logger.info('migrations applied', { schema: definition.schema, ...result });
    built = await definition.build(options.env as never, { database, kv: options.kv, logger });
  } else {
    built = await definition.build(options.env as never, { kv: options.kv, logger });
  }
  await built.start?.();
  const server: Server<undefined> = Bun.serve({
    hostname: options.env.HOST,
    port: options.env.PORT,
    // Hono reads the Bun server from `env` to learn the client address.
    fetch: (request, srv) => built.app.fetch(request, srv),
    maxRequestBodySize: built.maxRequestBodySize ?? 16 * 1024 * 1024,
    idleTimeout: 120,
  });
  const port = server.port ?? options.env.PORT;
  const host = options.env.HOST === '0.0.0.0' ? '127.0.0.1' : options.env.HOST;
  return {
    name: definition.name,
    port,
    url: `http://${host}:${port}`,
    async stop(graceMs = options.env.SHUTDOWN_TIMEOUT_MS) {
      const drained = server.stop(false);
      const forced = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref?.()).then(() => server.stop(true));
      await Promise.race([drained, forced]);
      await built.stop?.();
    },
  };
}

/** Opens the database a service needs: its own postgres.js pool, or PGlite under `DATA_DIR`. */
export function openServiceDatabase(env: BaseEnv): Promise<Database> {
  return openDatabase(env.DATABASE_URL ? { url: env.DATABASE_URL } : { pgliteDir: `${env.DATA_DIR}/pglite` });
}

/** Opens the KV backend named by `REDIS_URL` (in-memory when unset). */
export function openServiceKv(env: BaseEnv): Promise<Kv> {
  return createKv({ url: env.REDIS_URL, token: env.REDIS_TOKEN });
}

/** Calls `handler` once on SIGTERM or SIGINT. */
export function onShutdownSignal(handler: (signal: string) => Promise<void>): void {
  let stopping = false;
  const listener = (signal: string) => {
    if (stopping) return;
    stopping = true;
    handler(signal).then(
      () => process.exit(0),
      (err) => {
        console.error(err);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', listener);
  process.on('SIGINT', listener);
}

/** Exits with one line per bad key when the environment is invalid. */
export function parseEnvOrExit<T>(parse: () => T, name: string): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${name}: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

/**
 * The body of every `services/<name>/src/index.ts`: parse env, open deps, serve, stop on SIGTERM.
 * Never rejects: a failed start is logged and exits 1.
 */
export async function runService(definition: ServiceDefinition, processEnv: Env): Promise<void> {
  try {
    await startFromEnv(definition, processEnv);
  } catch (err) {
    createLogger({ fields: { service: definition.name } }).error('failed to start', { err });
    process.exit(1);
  }
}

async function startFromEnv(definition: ServiceDefinition, processEnv: Env): Promise<void> {
  const env = parseEnvOrExit(() => parseEnv(definition.envSchema, processEnv) as BaseEnv & { PORT: number }, definition.name);
  const logger = createLogger({ level: env.LOG_LEVEL, fields: { service: definition.name } });
  const database = definition.schema !== null ? await openServiceDatabase(env) : undefined;
  const kv = await openServiceKv(env);
  const running = await startService(definition, { env, kv, logger, database });
  logger.info('listening', { url: running.url, database: database?.kind ?? 'none', kv: kv.kind });
  onShutdownSignal(async (signal) => {
    logger.info('stopping', { signal });
    await running.stop();
    await kv.close();
    await database?.close();
    logger.info('stopped');
  });
}
