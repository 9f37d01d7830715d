/**
 * Standalone mode: all seven services in one Bun process on ports 8000–8006, sharing one embedded
 * PGlite under ./data (or DATABASE_URL when set) and one in-memory KV (or REDIS_URL). Ctrl-C stops.
 */
import { parseEnv, type BaseEnv } from '@shared/config.ts';
import { createLogger } from '@shared/log.ts';
import { randomToken } from '@shared/token-hash.ts';
import { onShutdownSignal, openServiceDatabase, openServiceKv, parseEnvOrExit, startService, type RunningService } from '@shared/serve.ts';
import { SERVICES } from './catalog.ts';
import { secretVariable } from './user-service/src/service.ts';

// One process serves every port, so PORT would be ambiguous; a laptop install listens on loopback only.
const { PORT: _ignored, ...rest } = process.env;
// Each service proves itself to user-service with its own secret; in one process they are made up
// at start (secrets set in the environment still win).
const secrets = new Map(SERVICES.filter((d) => d.name !== 'user-service').map((d) => [d.name, randomToken(24)]));
const envFor = (name: string) => ({
  HOST: '127.0.0.1',
  SERVICE_SECRET: secrets.get(name),
  ...Object.fromEntries([...secrets].map(([n, secret]) => [secretVariable(n), secret])),
  ...rest,
});
const envs = SERVICES.map((definition) =>
  parseEnvOrExit(() => parseEnv(definition.envSchema, envFor(definition.name)) as BaseEnv & { PORT: number }, definition.name),
);
const shared = envs[0]!;
const logger = createLogger({ level: shared.LOG_LEVEL });
const started = performance.now();
const database = await openServiceDatabase(shared);
const kv = await openServiceKv(shared);

const running: RunningService[] = [];
for (const [i, definition] of SERVICES.entries()) {
  const env = envs[i]!;
  running.push(
    await startService(definition, { env, kv, database, logger: createLogger({ level: env.LOG_LEVEL, fields: { service: definition.name } }) }),
  );
}
const where = database.kind === 'pglite' ? `embedded PGlite in ${shared.DATA_DIR}/pglite` : 'PostgreSQL';
process.stdout.write(`Federated Imputation Platform (standalone: ${where}, ${kv.kind} KV) ready in ${Math.round(performance.now() - started)} ms\n`);
for (const service of running) process.stdout.write(`  ${service.name.padEnd(17)} ${service.url}\n`);
process.stdout.write(`Platform health: http://${shared.HOST}:8000/health   API: http://${shared.HOST}:8000/api/...   Ctrl-C stops\n`);

onShutdownSignal(async () => {
  logger.info('stopping');
  await Promise.all(running.map((service) => service.stop()));
  await kv.close();
  await database.close();
});
