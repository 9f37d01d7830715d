/**
 * Host sampler: at an interval, reads the host (CPU, load, memory, disks, network; see proc-readers.ts),
 * stores one `host_samples` row, prunes rows past retention and hands the sample to the alert engine.
 * It never sleeps to measure a rate: CPU and network rates are deltas against the previous reading it
 * keeps, so the very first sample has no CPU or network rate (null) and every later one does.
 */
import type { Db } from '@shared/db.ts';
import type { Logger } from '@shared/log.ts';
import { createWorkerLoop, errorText } from '@shared/worker-loop.ts';
import { hostSamples } from '@db/schema/monitor.ts';
import { and, desc, eq, gte, lt, lte, or, type SQL } from 'drizzle-orm';
import type { DiskUsage, HostSample, HostSampleRow } from './domain.ts';
import { cpuPercentBetween, networkRates, readHost, type CpuTimes, type NetCounters } from './proc-readers.ts';

/** Thrown when the host cannot be read well enough for a sample (no load or memory figures: not Linux, no /proc). */
export class HostMetricsUnavailableError extends Error {
  readonly missing: string[];
  constructor(missing: string[], procRoot: string) {
    super(`Cannot read ${missing.join(' and ')} from ${procRoot}.`);
    this.name = 'HostMetricsUnavailableError';
    this.missing = missing;
  }
}

export interface HostSampler {
  /** Reads the host, stores the sample, prunes old rows, notifies `onSample`; concurrent calls share one reading. */
  sample(): Promise<HostSample>;
  /** The newest sample this process took or loaded; null before the first. */
  latest(): HostSample | null;
  /** Restores `latest()` from the newest stored row (after a restart), unless a sample was already taken. */
  load(): Promise<HostSample | null>;
  /** Deletes rows older than the retention; returns how many. */
  prune(): Promise<number>;
  /** Stored rows in a time range, newest first, continuing below `before` (a row's time and id) when given. */
  history(query: HistoryQuery): Promise<HostSampleRow[]>;
  /** Takes the first sample at once, then one every `intervalMs` after the previous one ends. */
  start(): void;
  /** Takes no more samples; resolves once the one in flight is stored. */
  stop(): Promise<void>;
}

export interface HistoryQuery {
  from?: Date;
  to?: Date;
  limit: number;
  before?: { sampledAt: Date; id: number };
}

export interface HostSamplerDeps {
  db: Db;
  logger: Logger;
  /** Directories whose filesystems are watched (the data and storage dirs). */
  paths: string[];
  intervalMs: number;
  retentionMs: number;
  /** Where proc is mounted; the host's proc bind-mounted into a container gives host-wide network figures. Default `/proc`. */
  procRoot?: string;
  now?: () => number;
  /** Called with every stored sample (the alert engine); a failure is logged, the sample still counts. */
  onSample?: (sample: HostSample) => void | Promise<void>;
}

/** The row a sample is stored as. */
export function hostSampleRow(sample: HostSample): typeof hostSamples.$inferInsert {
  return {
    sampledAt: new Date(sample.sampledAt),
    cpuPercent: sample.cpuPercent,
    cpuCount: sample.cpuCount,
    load1: sample.load.one,
    load5: sample.load.five,
    load15: sample.load.fifteen,
    memoryTotalBytes: sample.memory.totalBytes,
    memoryAvailableBytes: sample.memory.availableBytes,
    memoryPercent: sample.memory.percent,
    disks: sample.disks,
    networkRxBytesPerSec: sample.network.rxBytesPerSec,
    networkTxBytesPerSec: sample.network.txBytesPerSec,
  };
}

/** A stored row back as a sample. */
export function hostSampleView(row: HostSampleRow): HostSample {
  return {
    sampledAt: row.sampledAt.toISOString(),
    cpuPercent: row.cpuPercent,
    cpuCount: row.cpuCount,
    load: { one: row.load1, five: row.load5, fifteen: row.load15 },
    memory: { totalBytes: row.memoryTotalBytes, availableBytes: row.memoryAvailableBytes, percent: row.memoryPercent },
    disks: row.disks as DiskUsage[],
    network: { rxBytesPerSec: row.networkRxBytesPerSec, txBytesPerSec: row.networkTxBytesPerSec },
  };
}

/** Builds the sampler; no I/O until `sample()`, `load()` or `start()`. */
export function createHostSampler(deps: HostSamplerDeps): HostSampler {
  const now = deps.now ?? Date.now;
  const procRoot = deps.procRoot ?? '/proc';
  let latest: HostSample | null = null;
  let previous: { at: number; cpu: CpuTimes | null; network: NetCounters | null } | null = null;
  let inFlight: Promise<HostSample> | undefined;
  const missingPathsLogged = new Set<string>();

  async function takeSample(): Promise<HostSample> {
    const readings = await readHost({ procRoot, paths: deps.paths });
    const at = now();
    const before = previous;
    // Even a reading that cannot be stored is the baseline for the next rate.
    previous = { at, cpu: readings.cpu?.times ?? null, network: readings.network };
    const { load, memory } = readings;
    if (!load || !memory) {
      throw new HostMetricsUnavailableError([...(load ? [] : ['load averages']), ...(memory ? [] : ['memory'])], procRoot);
    }
    for (const path of deps.paths) {
      if (readings.disks.some((d) => d.path === path) || missingPathsLogged.has(path)) continue;
      missingPathsLogged.add(path);
      deps.logger.warn('host sampler cannot stat a watched path', { path });
    }

    const cpuPercent = before?.cpu && readings.cpu ? cpuPercentBetween(before.cpu, readings.cpu.times) : null;
    const network =
      before?.network && readings.network ? networkRates(before.network, readings.network, at - before.at) : { rxBytesPerSec: null, txBytesPerSec: null };
    const sample: HostSample = {
      sampledAt: new Date(at).toISOString(),
      cpuPercent,
      cpuCount: readings.cpuCount,
      load,
      memory,
      disks: readings.disks,
      network,
    };
    latest = sample;
    await deps.db.insert(hostSamples).values(hostSampleRow(sample));
    await prune();
    if (deps.onSample) {
      try {
        await deps.onSample(sample);
      } catch (err) {
        deps.logger.error('host sample hook failed', { error: errorText(err) });
      }
    }
    return sample;
  }

  async function prune(): Promise<number> {
    const deleted = await deps.db
      .delete(hostSamples)
      .where(lt(hostSamples.sampledAt, new Date(now() - deps.retentionMs)))
      .returning({ id: hostSamples.id });
    return deleted.length;
  }

  function sample(): Promise<HostSample> {
    // Two readings milliseconds apart would give a meaningless rate; a caller arriving mid-sample shares it.
    inFlight ??= takeSample().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  }

  const loop = createWorkerLoop({
    name: 'host-sampler',
    logger: deps.logger,
    intervalMs: deps.intervalMs,
    initialDelayMs: 0,
    round: async () => {
      await sample();
    },
  });

  return {
    sample,
    latest: () => latest,
    async load() {
      const [row] = await deps.db.select().from(hostSamples).orderBy(desc(hostSamples.sampledAt), desc(hostSamples.id)).limit(1);
      if (row && latest === null) latest = hostSampleView(row);
      return latest;
    },
    prune,
    history({ from, to, limit, before }) {
      let below: SQL | undefined;
      if (before) {
        // Ids break ties between rows sampled in the same millisecond.
        below = or(lt(hostSamples.sampledAt, before.sampledAt), and(eq(hostSamples.sampledAt, before.sampledAt), lt(hostSamples.id, before.id)));
      }
      return deps.db
        .select()
        .from(hostSamples)
        .where(and(from ? gte(hostSamples.sampledAt, from) : undefined, to ? lte(hostSamples.sampledAt, to) : undefined, below))
        .orderBy(desc(hostSamples.sampledAt), desc(hostSamples.id))
        .limit(limit);
    },
    start: () => loop.start(),
    stop: () => loop.stop(),
  };
}
