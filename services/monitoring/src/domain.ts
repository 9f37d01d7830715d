/** monitoring's model: what a probe of a platform service found, a host sample, and an alert. */
import type { alerts, hostSamples } from '@db/schema/monitor.ts';

export type HostSampleRow = typeof hostSamples.$inferSelect;
export type AlertRow = typeof alerts.$inferSelect;

export const PROBE_STATUSES = ['healthy', 'degraded', 'unhealthy', 'unreachable'] as const;
export type ProbeStatus = (typeof PROBE_STATUSES)[number];

/** The latest probe of one platform service. */
export interface ServiceProbe {
  service: string;
  url: string;
  status: ProbeStatus;
  latencyMs: number | null;
  httpStatus: number | null;
  /** The readiness check that failed (`database`, `kv`, `storage`), or the transport error. */
  failedCheck: string | null;
  checkedAt: string;
  /** Probes in a row that were not healthy. */
  consecutiveFailures: number;
}

export interface DiskUsage {
  path: string;
  totalBytes: number;
  usedBytes: number;
  freeBytes: number;
  percent: number;
}

/** One reading of the host (from /proc and statfs, never the container's own counters alone). */
export interface HostSample {
  sampledAt: string;
  cpuPercent: number | null;
  cpuCount: number;
  load: { one: number; five: number; fifteen: number };
  memory: { totalBytes: number; availableBytes: number; percent: number };
  disks: DiskUsage[];
  network: { rxBytesPerSec: number | null; txBytesPerSec: number | null };
}

export const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];
