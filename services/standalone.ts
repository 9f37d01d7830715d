/**
 * Standalone mode (`npm start`): all seven services in one Bun process on ports 8000–8006, sharing one
 * embedded PGlite under ./data (or DATABASE_URL when set) and one in-memory KV (or REDIS_URL). Ctrl-C stops.
 */
import { ConfigError } from '@shared/config.ts';
import { createLogger } from '@shared/log.ts';
import { PgliteInUseError } from '@shared/pglite-in-use.ts';
import { onShutdownSignal } from '@shared/serve.ts';
import { startStandalone, type StandalonePlatform } from './standalone-platform.ts';

let platform: StandalonePlatform;
try {
  platform = await startStandalone({ env: process.env });
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
  if (err instanceof PgliteInUseError) {
    process.stderr.write(`npm start: ${err.message}\n`);
    process.exit(1);
  }
  throw err;
}
const where = platform.database.kind === 'pglite' ? `embedded PGlite in ${platform.database.where}` : 'PostgreSQL';
process.stdout.write(`Federated Imputation Platform (standalone: ${where}, ${platform.kvKind} KV) ready in ${platform.startMs} ms\n`);
for (const service of platform.services) process.stdout.write(`  ${service.name.padEnd(17)} ${service.url}\n`);
process.stdout.write(`Platform health: ${platform.url}/health   API: ${platform.url}/api/...   Ctrl-C stops\n`);

const logger = createLogger({ level: platform.logLevel });
const running = platform;
onShutdownSignal(async () => {
  logger.info('stopping');
  await running.stop();
});
