/**
 * A job worker in a process of its own, for the crash tests in worker.test.ts and worker-crash.test.ts
 * (which kill it with SIGKILL mid-submission, mid-poll and mid-download). Configured by one JSON
 * argument: the PostgreSQL URL both processes share, file-manager's URL with a service token minted by
 * the test process, the credentials the vault would release, the secret-box key, the lease, the
 * services to work on and, optionally, a poll schedule. Prints `ready` once started.
 */
import { createHttpClient } from '@shared/http-client.ts';
import { openDatabase } from '@shared/db.ts';
import { createLogger } from '@shared/log.ts';
import { createSecretBox } from '@shared/secret-box.ts';
import type { ServerCredential } from '../../services/job-processor/src/adapters/adapter.ts';
import { createAdapters } from '../../services/job-processor/src/adapters/adapters.ts';
import { createJobWorker } from '../../services/job-processor/src/job-worker.ts';
import { filesClient, type VaultClient } from '../../services/job-processor/src/platform-clients.ts';
import { createPollSchedule, type PollScheduleOptions } from '../../services/job-processor/src/poll-schedule.ts';

interface WorkerProcessConfig {
  databaseUrl: string;
  fileManagerUrl: string;
  serviceToken: string;
  credentials: { userId: string; slug: string; credential: ServerCredential }[];
  secretKey: { id: string; key: string };
  leaseMs: number;
  serviceIds: string[];
  owner: string;
  /** Optional: a faster poll schedule, so a crash test reaches the poll or the download without waiting seconds. */
  pollSchedule?: PollScheduleOptions;
}

const config = JSON.parse(process.argv[2] ?? '{}') as WorkerProcessConfig;
const database = await openDatabase({ url: config.databaseUrl, maxConnections: 3 });
const files = filesClient(
  createHttpClient({ service: 'file-manager', baseUrl: config.fileManagerUrl, timeoutMs: 10_000, retries: 0 }),
  { authorization: async () => `Bearer ${config.serviceToken}` },
  config.fileManagerUrl,
);
const vault: VaultClient = {
  stored: async () => [],
  release: async (userId, slug) => config.credentials.find((c) => c.userId === userId && c.slug === slug)?.credential ?? null,
};
const worker = createJobWorker({
  db: database.db,
  adapters: createAdapters({ timeoutMs: 60_000, workflow: { url: 'https://example.org/imputation.nf', type: 'Nextflow', typeVersion: '23.04' } }),
  files,
  vault,
  secretBox: await createSecretBox([{ id: config.secretKey.id, key: Uint8Array.from(Buffer.from(config.secretKey.key, 'base64')) }]),
  logger: createLogger({ level: 'warn', sink: (line) => process.stderr.write(`${line}\n`) }),
  owner: config.owner,
  concurrency: 2,
  leaseMs: config.leaseMs,
  serviceIds: config.serviceIds,
  idleMs: 50,
  ...(config.pollSchedule ? { pollSchedule: createPollSchedule(config.pollSchedule) } : {}),
});
worker.start();
// The loop's timers are unref'd (a service's HTTP server keeps it alive); this process has no server.
const keepAlive = setInterval(() => undefined, 60_000);
process.stdout.write('ready\n');

process.on('SIGTERM', () => {
  clearInterval(keepAlive);
  void worker
    .stop()
    .then(() => database.close())
    .finally(() => process.exit(0));
});
