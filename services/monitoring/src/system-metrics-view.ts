/**
 * A host sample as operators read it: the original monitoring's flat snake_case `system_metrics`
 * fields (seed §2.7), which their scripts and dashboards use, plus a `disks` list with every watched
 * path. One view serves `GET /metrics/system`, each item of `/metrics/system/history` and
 * `system_metrics` in `/health/overall`, so the three never drift apart.
 *
 * Differences from the original, by necessity: `cpu_usage_percent` is null on the first sample (a rate
 * needs two readings, and nothing sleeps to get one); network figures are rates since the previous
 * sample (`network_rx_bytes_per_sec`/`network_tx_bytes_per_sec`), not the original cumulative
 * `network_bytes_sent/recv` and packet counters, which the sampler does not keep; the `disk_*` fields
 * describe the first watched path that could be read (the data directory by default, not `/`) and are
 * null when none could.
 */
import { z } from '@hono/zod-openapi';
import type { DiskUsage, HostSample } from './domain.ts';

const GIB = 1024 ** 3;
/** Gigabytes (GiB, as psutil-based tools print them) to two decimals. */
const gb = (bytes: number) => Math.round((bytes / GIB) * 100) / 100;

export const DiskMetricsSchema = z
  .object({
    path: z.string().openapi({ example: '/var/lib/fip/storage' }),
    total_gb: z.number(),
    used_gb: z.number(),
    free_gb: z.number().openapi({ description: 'What an unprivileged process may still write (df "Available").' }),
    usage_percent: z.number().openapi({ description: 'used / (used + free), as df reports it.' }),
  })
  .openapi('DiskMetrics');

export const SystemMetricsSchema = z
  .object({
    cpu_usage_percent: z.number().nullable().openapi({ description: 'Busy share of all CPUs since the previous sample; null on the first.' }),
    cpu_count: z.number().int(),
    load_average_1m: z.number(),
    load_average_5m: z.number(),
    load_average_15m: z.number(),
    memory_total_gb: z.number(),
    memory_used_gb: z.number().openapi({ description: 'Total minus available.' }),
    memory_available_gb: z.number(),
    memory_usage_percent: z.number().openapi({ description: 'Used share: 100·(1 − MemAvailable/MemTotal).' }),
    disk_total_gb: z.number().nullable().openapi({ description: 'Of the first watched path in `disks`; null when no path could be read.' }),
    disk_used_gb: z.number().nullable(),
    disk_free_gb: z.number().nullable(),
    disk_usage_percent: z.number().nullable(),
    network_rx_bytes_per_sec: z.number().nullable().openapi({ description: 'Received bytes per second since the previous sample, all non-loopback interfaces; null on the first.' }),
    network_tx_bytes_per_sec: z.number().nullable().openapi({ description: 'Sent bytes per second since the previous sample; null on the first.' }),
    disks: z.array(DiskMetricsSchema).openapi({ description: 'Every watched path that could be read, in configuration order.' }),
    collected_at: z.string().openapi({ example: '2025-01-01T00:00:00.000Z' }),
  })
  .openapi('SystemMetrics');

export type SystemMetrics = z.infer<typeof SystemMetricsSchema>;
export type DiskMetrics = z.infer<typeof DiskMetricsSchema>;

/** One watched path in the operators' units. */
export function diskMetricsView(disk: DiskUsage): DiskMetrics {
  return { path: disk.path, total_gb: gb(disk.totalBytes), used_gb: gb(disk.usedBytes), free_gb: gb(disk.freeBytes), usage_percent: disk.percent };
}

/** A host sample in the original `system_metrics` shape, plus `disks`. */
export function systemMetricsView(sample: HostSample): SystemMetrics {
  const disks = sample.disks.map(diskMetricsView);
  const first = disks[0];
  return {
    cpu_usage_percent: sample.cpuPercent,
    cpu_count: sample.cpuCount,
    load_average_1m: sample.load.one,
    load_average_5m: sample.load.five,
    load_average_15m: sample.load.fifteen,
    memory_total_gb: gb(sample.memory.totalBytes),
    memory_used_gb: gb(sample.memory.totalBytes - sample.memory.availableBytes),
    memory_available_gb: gb(sample.memory.availableBytes),
    memory_usage_percent: sample.memory.percent,
    disk_total_gb: first?.total_gb ?? null,
    disk_used_gb: first?.used_gb ?? null,
    disk_free_gb: first?.free_gb ?? null,
    disk_usage_percent: first?.usage_percent ?? null,
    network_rx_bytes_per_sec: sample.network.rxBytesPerSec,
    network_tx_bytes_per_sec: sample.network.txBytesPerSec,
    disks,
    collected_at: sample.sampledAt,
  };
}
