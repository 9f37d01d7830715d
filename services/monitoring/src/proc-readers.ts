/**
 * Host readings from the kernel: `/proc/stat`, `/proc/loadavg`, `/proc/meminfo`, `/proc/net/dev` and
 * `statfs` of watched paths. Parsers take the file's text (tests feed fixtures); readers take a
 * `procRoot` so a deployment can point at the host's proc mounted into a container (`/host/proc`) and a
 * test at a fixture directory. Nothing here waits: rates (CPU, network) are deltas between two
 * readings that the caller keeps, never a sleep between two reads.
 * A file that is missing or unreadable (not Linux, a locked-down container) yields null, never a throw.
 */
import { readFile, statfs } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { DiskUsage } from './domain.ts';

/** Cumulative CPU time of all CPUs together, in clock ticks since boot. */
export interface CpuTimes {
  /** user + nice + system + idle + iowait + irq + softirq + steal (guest time is already inside user/nice). */
  total: number;
  /** idle + iowait: time no task was running. */
  idle: number;
}

export interface CpuStat {
  times: CpuTimes;
  /** How many `cpuN` lines the file lists (online CPUs); null when it lists none. */
  cpuCount: number | null;
}

export interface LoadAverages {
  one: number;
  five: number;
  fifteen: number;
}

export interface MemoryReading {
  totalBytes: number;
  availableBytes: number;
  /** Used share of total memory: 100·(1 − available/total). */
  percent: number;
}

/** Cumulative bytes over every interface except loopback. */
export interface NetCounters {
  rxBytes: number;
  txBytes: number;
}

export interface NetworkRates {
  rxBytesPerSec: number | null;
  txBytesPerSec: number | null;
}

/** The statfs fields disk usage needs (a subset of node:fs `StatsFs`). */
export interface StatfsNumbers {
  bsize: number;
  /** Fragment size, the unit block counts are in; Bun reports it, Node's typings do not. */
  frsize?: number;
  blocks: number;
  bfree: number;
  bavail: number;
}

/** Everything one read of the host gives; any part may be null when its source is unavailable. */
export interface HostReadings {
  cpu: CpuStat | null;
  /** CPUs from /proc/stat, else what the runtime sees. */
  cpuCount: number;
  load: LoadAverages | null;
  memory: MemoryReading | null;
  network: NetCounters | null;
  disks: DiskUsage[];
}

const round2 = (x: number) => Math.round(x * 100) / 100;

/** The aggregate `cpu` line and the number of `cpuN` lines of `/proc/stat`; null when there is no usable `cpu` line. */
export function parseProcStat(text: string): CpuStat | null {
  let times: CpuTimes | null = null;
  let cpuCount = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith('cpu')) continue;
    const [label, ...fields] = line.trim().split(/\s+/);
    if (label === 'cpu') {
      // Kernels before 2.6.11 lack steal; missing trailing columns count as zero.
      const [user, nice, system, idle, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields.slice(0, 8).map(Number);
      if (user === undefined || nice === undefined || system === undefined || idle === undefined) continue;
      const parts = [user, nice, system, idle, iowait, irq, softirq, steal];
      if (parts.some((n) => !Number.isFinite(n) || n < 0)) continue;
      times = { total: parts.reduce((a, b) => a + b, 0), idle: idle + iowait };
    } else if (/^cpu\d+$/.test(label ?? '')) {
      cpuCount += 1;
    }
  }
  return times ? { times, cpuCount: cpuCount > 0 ? cpuCount : null } : null;
}

/**
 * Busy share of CPU time between two readings: 100·(1 − Δidle/Δtotal), rounded to 0.01. Null when no
 * tick passed between them or the counters went backwards (a different boot), since there is no rate then.
 */
export function cpuPercentBetween(previous: CpuTimes, current: CpuTimes): number | null {
  const total = current.total - previous.total;
  const idle = current.idle - previous.idle;
  if (total <= 0 || idle < 0 || idle > total) return null;
  return round2(100 * (1 - idle / total));
}

/** The three load averages of `/proc/loadavg`; null when the text does not start with three numbers. */
export function parseLoadavg(text: string): LoadAverages | null {
  const [one, five, fifteen] = text.trim().split(/\s+/).map(Number);
  if (one === undefined || five === undefined || fifteen === undefined) return null;
  if (![one, five, fifteen].every((n) => Number.isFinite(n) && n >= 0)) return null;
  return { one, five, fifteen };
}

/**
 * MemTotal and MemAvailable of `/proc/meminfo` in bytes, and the used percentage. Kernels before 3.14
 * have no MemAvailable; there MemFree + Buffers + Cached stands in for it (what `free` did then).
 */
export function parseMeminfo(text: string): MemoryReading | null {
  const kb = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^(\w+):\s+(\d+)(?:\s+kB)?\s*$/.exec(line.trim());
    if (match) kb.set(match[1]!, Number(match[2]));
  }
  const total = kb.get('MemTotal');
  if (total === undefined || total <= 0) return null;
  let available = kb.get('MemAvailable');
  if (available === undefined) {
    const free = kb.get('MemFree');
    if (free === undefined) return null;
    available = free + (kb.get('Buffers') ?? 0) + (kb.get('Cached') ?? 0);
  }
  available = Math.min(available, total);
  return { totalBytes: total * 1024, availableBytes: available * 1024, percent: round2(100 * (1 - available / total)) };
}

/** Received and transmitted bytes of `/proc/net/dev`, summed over every interface except `lo`; null when no line parses. */
export function parseNetDev(text: string): NetCounters | null {
  let rxBytes = 0;
  let txBytes = 0;
  let seen = false;
  for (const line of text.split('\n')) {
    // Old kernels print `eth0:123` with no space once the counter is wide, so split on the colon.
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    if (name === '' || name.includes('|')) continue;
    const fields = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    // 8 receive columns, then transmit bytes.
    const rx = fields[0];
    const tx = fields[8];
    if (rx === undefined || tx === undefined || !Number.isFinite(rx) || !Number.isFinite(tx)) continue;
    seen = true;
    if (name === 'lo') continue;
    rxBytes += rx;
    txBytes += tx;
  }
  return seen ? { rxBytes, txBytes } : null;
}

/**
 * Bytes per second between two readings `elapsedMs` apart, rounded to 0.01. A direction is null when
 * no time passed or its counter went backwards (an interface went away or was reset).
 */
export function networkRates(previous: NetCounters, current: NetCounters, elapsedMs: number): NetworkRates {
  if (!(elapsedMs > 0)) return { rxBytesPerSec: null, txBytesPerSec: null };
  const rate = (before: number, after: number) => (after >= before ? round2(((after - before) * 1000) / elapsedMs) : null);
  return { rxBytesPerSec: rate(previous.rxBytes, current.rxBytes), txBytesPerSec: rate(previous.txBytes, current.txBytes) };
}

/**
 * Disk usage the way `df` reports it: used = blocks − bfree, free = what an unprivileged user may still
 * write (bavail), percent = used / (used + free), so blocks reserved for root count as neither.
 */
export function diskUsageFromStatfs(path: string, stats: StatfsNumbers): DiskUsage {
  const unit = stats.frsize && stats.frsize > 0 ? stats.frsize : stats.bsize;
  const totalBytes = stats.blocks * unit;
  const usedBytes = (stats.blocks - stats.bfree) * unit;
  const freeBytes = stats.bavail * unit;
  const usable = usedBytes + freeBytes;
  return { path, totalBytes, usedBytes, freeBytes, percent: usable > 0 ? round2((100 * usedBytes) / usable) : 0 };
}

/** A file under `procRoot` as text, or null when it cannot be read. */
export async function readProcFile(procRoot: string, name: string): Promise<string | null> {
  try {
    return await readFile(join(procRoot, name), 'utf8');
  } catch {
    return null;
  }
}

async function parsed<T>(procRoot: string, name: string, parse: (text: string) => T | null): Promise<T | null> {
  const text = await readProcFile(procRoot, name);
  return text === null ? null : parse(text);
}

export const readCpuStat = (procRoot = '/proc') => parsed(procRoot, 'stat', parseProcStat);
export const readLoadavg = (procRoot = '/proc') => parsed(procRoot, 'loadavg', parseLoadavg);
export const readMeminfo = (procRoot = '/proc') => parsed(procRoot, 'meminfo', parseMeminfo);
export const readNetDev = (procRoot = '/proc') => parsed(procRoot, 'net/dev', parseNetDev);

/** Usage of the filesystem holding `path`; null when it cannot be stat'ed (missing path, no statfs). */
export async function readDiskUsage(path: string): Promise<DiskUsage | null> {
  try {
    return diskUsageFromStatfs(path, (await statfs(path)) as StatfsNumbers);
  } catch {
    return null;
  }
}

/** Reads every source at once; each part is null (a disk is left out) when its source is unavailable. */
export async function readHost(options: { procRoot?: string; paths: string[] }): Promise<HostReadings> {
  const procRoot = options.procRoot ?? '/proc';
  const [cpu, load, memory, network, disks] = await Promise.all([
    readCpuStat(procRoot),
    readLoadavg(procRoot),
    readMeminfo(procRoot),
    readNetDev(procRoot),
    Promise.all(options.paths.map(readDiskUsage)),
  ]);
  return {
    cpu,
    cpuCount: cpu?.cpuCount ?? availableParallelism(),
    load,
    memory,
    network,
    disks: disks.filter((d): d is DiskUsage => d !== null),
  };
}
