/**
 * `bun bench/registry-probes.ts [--rounds 5] [--timeout-ms 1000] [--servers 50] [--hung 5]`: how long
 * a round of service-registry health probes takes against many servers, some of which never answer.
 *
 * Starts `--servers` fake servers in-process on 127.0.0.1 (half Cloudgene, half GA4GH WES 1.0/1.1;
 * `--hung` of them accept the connection and never answer; two Cloudgene ones are in maintenance),
 * registers them in a scratch PostgreSQL database and runs `--rounds` probe rounds with the real
 * prober (concurrent probes, one transaction per outcome, history pruning). For comparison it also
 * probes the same servers one after another without storing anything, once, as the seed system did.
 * Prints tables; asserts nothing.
 */
import { healthChecks, services } from '@db/schema/registry.ts';
import { openDatabase } from '@shared/db.ts';
import { createLogger } from '@shared/log.ts';
import { migrate } from '@shared/migrations.ts';
import { outboundPolicy } from '@shared/outbound.ts';
import { and, eq, gte } from 'drizzle-orm';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createHealthProber, type ProbeRound } from '../services/service-registry/src/health-prober.ts';
import type { ServiceRow } from '../services/service-registry/src/domain.ts';
import { probeCloudgene } from '../services/service-registry/src/probes/cloudgene-probe.ts';
import { probeWes } from '../services/service-registry/src/probes/wes-probe.ts';
import { startCloudgeneFake } from '../tests/fakes/cloudgene.ts';
import { startWesFake } from '../tests/fakes/wes.ts';
import { openScratch } from './scratch.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    'timeout-ms': { type: 'string', default: '1000' },
    servers: { type: 'string', default: '50' },
    hung: { type: 'string', default: '5' },
  },
});
const ROUNDS = Number(values.rounds);
const TIMEOUT_MS = Number(values['timeout-ms']);
const SERVERS = Number(values.servers);
const HUNG = Number(values.hung);
const ADMIN_URL = process.env.BENCH_ADMIN_URL ?? 'postgres://root@127.0.0.1:5432/postgres';

const percentile = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : NaN);
const median = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50);

interface Fake {
  url: string;
  protocol: 'cloudgene' | 'ga4gh-wes';
  hung: boolean;
  stop(): Promise<void>;
}

// Hung servers are spread evenly and alternate between the protocols (even index = Cloudgene).
const hungEvery = Math.max(1, Math.floor(SERVERS / Math.max(HUNG, 1)));
const hungIndexes = new Set(Array.from({ length: Math.min(HUNG, SERVERS) }, (_, k) => Math.min(SERVERS - 1, k * hungEvery + (k % 2))));
const fakes: Fake[] = [];
for (let i = 0; i < SERVERS; i++) {
  const hung = hungIndexes.has(i);
  if (i % 2 === 0) {
    const fake = await startCloudgeneFake({ hang: hung, maintenance: !hung && i % 20 === 2 });
    fakes.push({ url: fake.url, protocol: 'cloudgene', hung, stop: fake.stop });
  } else {
    const fake = await startWesFake({
      version: i % 4 === 1 ? '1.0.0' : '1.1.0',
      systemStateCounts: { QUEUED: i % 7, RUNNING: i % 3 },
      ...(hung ? { behavior: { mode: 'hang' as const } } : {}),
    });
    fakes.push({ url: fake.url, protocol: 'ga4gh-wes', hung, stop: fake.stop });
  }
}

const scratch = await openScratch({ name: 'probes', adminUrl: ADMIN_URL });
await scratch.createDatabase();
const database = await openDatabase({ url: scratch.databaseUrl, maxConnections: 10 });
try {
  await migrate(database, { schema: 'registry', migrationsDir: resolve(import.meta.dir, '../db/migrations') });
  const rows: ServiceRow[] = await database.db
    .insert(services)
    .values(
      fakes.map((fake, i) => ({
        id: Bun.randomUUIDv7(),
        slug: `bench-${i}`,
        name: `Bench ${fake.protocol} ${i}`,
        protocol: fake.protocol,
        baseUrl: fake.url,
        credentialType: fake.protocol === 'cloudgene' ? 'cloudgene-token' : 'wes-bearer',
      })),
    )
    .returning();

  const prober = createHealthProber({
    db: database.db,
    logger: createLogger({ level: 'silent' }),
    policy: outboundPolicy(false),
    timeoutMs: TIMEOUT_MS,
    intervalMs: 60_000,
    historyRetentionMs: 3_600_000,
  });

  const rounds: ProbeRound[] = [];
  const healthyLatencies: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const round = await prober.probeAll();
    rounds.push(round);
    const checks = await database.db
      .select({ latencyMs: healthChecks.latencyMs })
      .from(healthChecks)
      .where(and(eq(healthChecks.status, 'healthy'), gte(healthChecks.checkedAt, round.startedAt)));
    for (const c of checks) if (c.latencyMs !== null) healthyLatencies.push(c.latencyMs);
  }

  // Baseline: the same probes one after another (the seed system's way), nothing stored.
  const sequentialStart = performance.now();
  for (const service of rows) {
    const opts = { signal: AbortSignal.timeout(TIMEOUT_MS) };
    await (service.protocol === 'cloudgene' ? probeCloudgene(service, opts) : probeWes(service, opts));
  }
  const sequentialMs = performance.now() - sequentialStart;

  const durations = rounds.map((r) => r.durationMs);
  const last = rounds.at(-1)!;
  healthyLatencies.sort((a, b) => a - b);
  console.log(
    `Bun ${Bun.version}, PostgreSQL scratch database ${scratch.databaseName}; ${SERVERS} fake servers on 127.0.0.1 ` +
      `(${fakes.filter((f) => f.protocol === 'cloudgene').length} Cloudgene, ${fakes.filter((f) => f.protocol === 'ga4gh-wes').length} WES), ` +
      `${fakes.filter((f) => f.hung).length} hung; timeout ${TIMEOUT_MS} ms; ${ROUNDS} rounds.\n`,
  );
  console.log('| probe round | median ms | max ms | × timeout (median) |');
  console.log('|---|---|---|---|');
  console.log(`| concurrent, stored (probeAll) | ${median(durations)} | ${Math.max(...durations)} | ${(median(durations) / TIMEOUT_MS).toFixed(2)} |`);
  console.log(`| one after another, not stored (1 round) | ${Math.round(sequentialMs)} | ${Math.round(sequentialMs)} | ${(sequentialMs / TIMEOUT_MS).toFixed(2)} |`);
  console.log('\n| last round | healthy | degraded | unhealthy | unreachable | skipped | failed to store |');
  console.log('|---|---|---|---|---|---|---|');
  console.log(`| count | ${last.byStatus.healthy} | ${last.byStatus.degraded} | ${last.byStatus.unhealthy} | ${last.byStatus.unreachable} | ${last.skipped} | ${last.failed} |`);
  console.log('\n| latency of healthy probes (all rounds) | n | p50 ms | p90 ms | max ms |');
  console.log('|---|---|---|---|---|');
  console.log(
    `| answer read in full | ${healthyLatencies.length} | ${percentile(healthyLatencies, 50)} | ${percentile(healthyLatencies, 90)} | ${healthyLatencies.at(-1) ?? NaN} |`,
  );
} finally {
  await database.close();
  await Promise.all(fakes.map((f) => f.stop()));
  await scratch.cleanup();
}
