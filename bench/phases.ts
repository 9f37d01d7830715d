/**
 * Where a service's start goes: the steps of `runService`/`startService` (shared/serve.ts), done
 * one at a time with a clock between them, then one `GET /ready`. services.ts generates a tiny
 * entry per service that imports the definition and calls `profileStart`, and runs it in each
 * build, like the services themselves.
 *
 * Times come from `performance.now()`, whose origin Bun sets early in its start (~10-14 ms after
 * spawn here), so `imports` is the rest of Bun's boot plus loading and evaluating every statically
 * imported module. The steps are
 * copied from shared/serve.ts (which does not expose them separately): keep them in step with it.
 */
import { parseEnv, type BaseEnv } from '@shared/config.ts';
import { createLogger } from '@shared/log.ts';
import { migrate } from '@shared/migrations.ts';
import { openServiceDatabase, openServiceKv } from '@shared/serve.ts';
import type { BuiltService, ServiceDefinition } from '@shared/service.ts';

/** Milliseconds per step, in order; the sum is process start → first `/ready` answered. */
export interface StartPhases {
  imports: number;
  env: number;
  /** Loads postgres.js + drizzle (lazy imports in shared/db.ts) and creates the pool. */
  dbOpen: number;
  /** First query: TCP connect and authentication. */
  dbConnect: number;
  kv: number;
  /** Advisory lock, bookkeeping table, reading the migration files: nothing left to apply. */
  migrate: number;
  build: number;
  listen: number;
  /** First `/ready` through the app, in-process: Hono compiles its router, the readiness checks run. */
  firstReady: number;
}

export async function profileStart(definition: ServiceDefinition): Promise<void> {
  let last = performance.now();
  const phases: Partial<StartPhases> = { imports: last };
  const mark = (name: keyof StartPhases) => {
    const now = performance.now();
    phases[name] = now - last;
    last = now;
  };

  const env = parseEnv(definition.envSchema, process.env) as BaseEnv & { PORT: number };
  const logger = createLogger({ level: 'silent' });
  mark('env');
  const database = definition.schema !== null ? await openServiceDatabase(env) : undefined;
  mark('dbOpen');
  await database?.ping();
  mark('dbConnect');
  const kv = await openServiceKv(env);
  await kv.ping();
  mark('kv');
  let built: BuiltService;
  if (definition.schema !== null) {
    if (!database) throw new Error('unreachable: a schema implies a database');
    await migrate(database, { schema: definition.schema, migrationsDir: env.MIGRATIONS_DIR });
    mark('migrate');
    built = await definition.build(env as never, { database, kv, logger });
  } else {
    mark('migrate');
    built = await definition.build(env as never, { kv, logger });
  }
  mark('build');
  const server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: (request, srv) => built.app.fetch(request, srv) });
  mark('listen');
  // In-process rather than fetch(): a fetch from this process would add the cost of starting Bun's
  // HTTP client, which a real start does not pay.
  const response = await built.app.fetch(new Request(`http://127.0.0.1:${server.port}/ready`), server);
  await response.arrayBuffer();
  if (response.status !== 200) throw new Error(`/ready answered ${response.status}`);
  mark('firstReady');

  process.stdout.write(JSON.stringify(phases) + '\n');
  await server.stop(true);
  await built.stop?.();
  await kv.close();
  await database?.close();
}
