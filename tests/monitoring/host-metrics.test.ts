/**
 * Host metrics: the /proc parsers on fixture text (exact figures), the readers against this machine's
 * own /proc and statfs (compared with what the test reads itself right after), the sampler storing,
 * pruning and computing rates from its previous reading, the operators' snake_case view of a sample,
 * and the two routes with real token checks.
 * Samplers over fixture proc directories use injected clocks in distant years, so their rows never
 * mix with samples taken at the real time.
 */
import { createServiceApp, type ServiceApp } from '@shared/app.ts';
import { createMemoryKv } from '@shared/kv-memory.ts';
import { createLogger } from '@shared/log.ts';
import { hostSamples } from '@db/schema/monitor.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { and, asc, gte, lt } from 'drizzle-orm';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostSample } from '../../services/monitoring/src/domain.ts';
import { createHostSampler, HostMetricsUnavailableError, hostSampleView, type HostSamplerDeps } from '../../services/monitoring/src/host-sampler.ts';
import {
  cpuPercentBetween,
  diskUsageFromStatfs,
  networkRates,
  parseLoadavg,
  parseMeminfo,
  parseNetDev,
  parseProcStat,
  readCpuStat,
  readDiskUsage,
  readHost,
  readLoadavg,
  readMeminfo,
  readNetDev,
} from '../../services/monitoring/src/proc-readers.ts';
import { systemMetricsRoutes } from '../../services/monitoring/src/routes/system-metrics.ts';
import { systemMetricsView, type SystemMetrics } from '../../services/monitoring/src/system-metrics-view.ts';
import { json } from '../support/json.ts';
import { createTestDatabase, migrateAll, type TestDatabase } from '../support/test-database.ts';
import { testAuthenticator, tokenFor } from '../support/test-identity.ts';

const STAT_A = `cpu  1000 0 500 8000 500 0 0 0 0 0
cpu0 500 0 250 4000 250 0 0 0 0 0
cpu1 500 0 250 4000 250 0 0 0 0 0
intr 12345 0 0
ctxt 999
btime 1700000000
`;
// Δtotal = 2000 (user 600, nice 100, system 200, idle 500, iowait 100, irq 50, softirq 50, steal 400),
// Δ(idle + iowait) = 600, so 70 % busy; the guest columns are already inside user/nice and are ignored.
const STAT_B = `cpu  1600 100 700 8500 600 50 50 400 999 999
cpu0 800 50 350 4250 300 25 25 200 0 0
cpu1 800 50 350 4250 300 25 25 200 0 0
intr 23456 0 0
`;
const LOADAVG = '0.52 1.04 2.50 3/456 7890\n';
const MEMINFO = `MemTotal:       16000000 kB
MemFree:         1000000 kB
MemAvailable:    4000000 kB
Buffers:          200000 kB
Cached:          2000000 kB
SwapTotal:             0 kB
HugePages_Total:       0
`;
const NETDEV_A = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 5000000 100 0 0 0 0 0 0 5000000 100 0 0 0 0 0 0
  eth0: 1000000 10 0 0 0 0 0 0 300000 5 0 0 0 0 0 0
 wlan0:2000000 20 0 0 0 0 0 0 700000 7 0 0 0 0 0 0
`;
// Over 2 s: receive +3 000 000 (eth0) + 1 000 000 (wlan0), transmit +600 000 + 400 000; lo's growth is not counted.
const NETDEV_B = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 9000000 200 0 0 0 0 0 0 9000000 200 0 0 0 0 0 0
  eth0: 4000000 30 0 0 0 0 0 0 900000 9 0 0 0 0 0 0
 wlan0:3000000 40 0 0 0 0 0 0 1100000 9 0 0 0 0 0 0
`;

const HUNDRED_YEARS = 100 * 365 * 86_400_000;
const silent = createLogger({ level: 'silent' });
const hasProc = existsSync('/proc/stat') && existsSync('/proc/meminfo');
let testDb: TestDatabase;
let workDir: string;
let dataDir: string;

/** A proc directory with the four files the readers use. */
async function fixtureProc(name: string, files: { stat?: string; loadavg?: string; meminfo?: string; netdev?: string } = {}): Promise<string> {
  const root = join(workDir, name);
  await mkdir(join(root, 'net'), { recursive: true });
  await writeFile(join(root, 'stat'), files.stat ?? STAT_A);
  await writeFile(join(root, 'loadavg'), files.loadavg ?? LOADAVG);
  await writeFile(join(root, 'meminfo'), files.meminfo ?? MEMINFO);
  await writeFile(join(root, 'net/dev'), files.netdev ?? NETDEV_A);
  return root;
}

/** A settable clock. */
function clock(start: number) {
  let t = start;
  return { now: () => t, set: (ms: number) => void (t = ms) };
}

function sampler(overrides: Partial<HostSamplerDeps> = {}) {
  return createHostSampler({ db: testDb.database.db, logger: silent, paths: [dataDir], intervalMs: 60_000, retentionMs: HUNDRED_YEARS, ...overrides });
}

async function rowsBetween(from: number, to: number) {
  return testDb.database.db
    .select()
    .from(hostSamples)
    .where(and(gte(hostSamples.sampledAt, new Date(from)), lt(hostSamples.sampledAt, new Date(to))))
    .orderBy(asc(hostSamples.sampledAt));
}

/** What the test itself reads from /proc, parsed independently of the module under test. */
async function procNow() {
  const meminfo = await readFile('/proc/meminfo', 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(meminfo)![1]) * 1024;
  const stat = await readFile('/proc/stat', 'utf8');
  const cpuLine = stat.split('\n').find((l) => l.startsWith('cpu '))!;
  const ticks = cpuLine.trim().split(/\s+/).slice(1, 9).map(Number);
  const netRx = (await readFile('/proc/net/dev', 'utf8'))
    .split('\n')
    .slice(2)
    .filter((l) => l.includes(':') && l.split(':')[0]!.trim() !== 'lo')
    .map((l) => l.split(':')[1]!.trim().split(/\s+/).map(Number));
  const load = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).map(Number);
  return {
    memTotal: kb('MemTotal'),
    memAvailable: kb('MemAvailable'),
    cpuTotal: ticks.reduce((a, b) => a + b, 0),
    cpuCount: stat.split('\n').filter((l) => /^cpu\d+ /.test(l)).length,
    rxBytes: netRx.reduce((sum, f) => sum + f[0]!, 0),
    txBytes: netRx.reduce((sum, f) => sum + f[8]!, 0),
    load,
  };
}

beforeAll(async () => {
  testDb = await createTestDatabase();
  await migrateAll(testDb.database);
  workDir = await mkdtemp(join(tmpdir(), 'fip-host-metrics-'));
  dataDir = join(workDir, 'data');
  await mkdir(dataDir);
}, 60_000);

afterAll(async () => {
  await testDb.drop();
  await rm(workDir, { recursive: true, force: true });
});

describe('proc parsers', () => {
  it('computes CPU % from two /proc/stat snapshots as 100·(1 − Δ(idle+iowait)/Δtotal)', () => {
    const a = parseProcStat(STAT_A)!;
    const b = parseProcStat(STAT_B)!;
    expect(a).toEqual({ times: { total: 10_000, idle: 8_500 }, cpuCount: 2 });
    expect(b.times).toEqual({ total: 12_000, idle: 9_100 });
    expect(cpuPercentBetween(a.times, b.times)).toBe(70);
  });

  it('gives no CPU % when no tick passed or the counters went backwards', () => {
    const a = parseProcStat(STAT_A)!.times;
    const b = parseProcStat(STAT_B)!.times;
    expect(cpuPercentBetween(a, a)).toBeNull();
    expect(cpuPercentBetween(b, a)).toBeNull();
  });

  it('reads the three load averages', () => {
    expect(parseLoadavg(LOADAVG)).toEqual({ one: 0.52, five: 1.04, fifteen: 2.5 });
  });

  it('computes used memory from MemTotal and MemAvailable, in bytes', () => {
    expect(parseMeminfo(MEMINFO)).toEqual({ totalBytes: 16_000_000 * 1024, availableBytes: 4_000_000 * 1024, percent: 75 });
  });

  it('falls back to MemFree + Buffers + Cached on kernels without MemAvailable', () => {
    const old = MEMINFO.split('\n').filter((l) => !l.startsWith('MemAvailable')).join('\n');
    // 1 000 000 + 200 000 + 2 000 000 of 16 000 000 available → 80 % used.
    expect(parseMeminfo(old)).toEqual({ totalBytes: 16_000_000 * 1024, availableBytes: 3_200_000 * 1024, percent: 80 });
  });

  it('sums network bytes over every interface except lo, including lines with no space after the colon', () => {
    expect(parseNetDev(NETDEV_A)).toEqual({ rxBytes: 3_000_000, txBytes: 1_000_000 });
    expect(parseNetDev(NETDEV_B)).toEqual({ rxBytes: 7_000_000, txBytes: 2_000_000 });
  });

  it('turns network counter deltas into bytes per second over the elapsed time', () => {
    const a = parseNetDev(NETDEV_A)!;
    const b = parseNetDev(NETDEV_B)!;
    expect(networkRates(a, b, 2_000)).toEqual({ rxBytesPerSec: 2_000_000, txBytesPerSec: 500_000 });
    expect(networkRates(a, b, 0)).toEqual({ rxBytesPerSec: null, txBytesPerSec: null });
    // A counter that went backwards (interface reset) has no rate.
    expect(networkRates(b, { rxBytes: 8_000_000, txBytes: 1_000 }, 1_000)).toEqual({ rxBytesPerSec: 1_000_000, txBytesPerSec: null });
  });

  it('reports disk usage like df: used = blocks − bfree, free = bavail, percent of used + free', () => {
    const usage = diskUsageFromStatfs('/data', { bsize: 4096, blocks: 1000, bfree: 300, bavail: 200 });
    // used 700 blocks, free 200 → 700 / 900.
    expect(usage).toEqual({ path: '/data', totalBytes: 4_096_000, usedBytes: 2_867_200, freeBytes: 819_200, percent: 77.78 });
  });

  it('answers null for text that is not what the kernel writes', () => {
    expect(parseProcStat('intr 1 2 3\n')).toBeNull();
    expect(parseProcStat('cpu  a b c d\n')).toBeNull();
    expect(parseLoadavg('not a load\n')).toBeNull();
    expect(parseMeminfo('MemFree: 10 kB\n')).toBeNull();
    expect(parseNetDev('Inter-|   Receive\n face |bytes\n')).toBeNull();
  });
});

describe.skipIf(!hasProc)('proc readers on this machine', () => {
  it('reads memory, CPU count and CPU ticks that match /proc read right after', async () => {
    const memory = (await readMeminfo())!;
    const cpu = (await readCpuStat())!;
    const proc = await procNow();
    expect(memory.totalBytes).toBe(proc.memTotal);
    expect(Math.abs(memory.availableBytes - proc.memAvailable)).toBeLessThan(proc.memTotal * 0.05);
    expect(memory.percent).toBeCloseTo(100 * (1 - proc.memAvailable / proc.memTotal), -1);
    expect(cpu.cpuCount).toBe(proc.cpuCount);
    // Ticks only grow: the reader's total is at most what the test read after it, and close to it.
    expect(cpu.times.total).toBeLessThanOrEqual(proc.cpuTotal);
    expect(proc.cpuTotal - cpu.times.total).toBeLessThan(100 * proc.cpuCount * 10);
  });

  it('reads load averages and network counters that match /proc read right after', async () => {
    const load = (await readLoadavg())!;
    const network = await readNetDev();
    const proc = await procNow();
    expect(Math.abs(load.one - proc.load[0]!)).toBeLessThan(1);
    expect(Math.abs(load.fifteen - proc.load[2]!)).toBeLessThan(0.5);
    if (network) {
      expect(network.rxBytes).toBeLessThanOrEqual(proc.rxBytes);
      expect(network.txBytes).toBeLessThanOrEqual(proc.txBytes);
      expect(proc.rxBytes - network.rxBytes).toBeLessThan(50 * 1024 * 1024);
    }
  });

  it('reads the disk usage of a directory the way statfs reports it', async () => {
    const usage = (await readDiskUsage(dataDir))!;
    const direct = await statfs(dataDir);
    expect(usage.path).toBe(dataDir);
    expect(usage.totalBytes).toBe(direct.blocks * direct.bsize);
    const tolerance = 256 * 1024 * 1024;
    expect(Math.abs(usage.usedBytes - (direct.blocks - direct.bfree) * direct.bsize)).toBeLessThan(tolerance);
    expect(Math.abs(usage.freeBytes - direct.bavail * direct.bsize)).toBeLessThan(tolerance);
    expect(usage.percent).toBeGreaterThan(0);
    expect(usage.percent).toBeLessThanOrEqual(100);
  });
});

describe('proc readers without a proc', () => {
  it('answers nulls and leaves out unreadable paths instead of throwing', async () => {
    const readings = await readHost({ procRoot: join(workDir, 'no-such-proc'), paths: [join(workDir, 'no-such-dir'), dataDir] });
    expect(readings).toMatchObject({ cpu: null, load: null, memory: null, network: null });
    expect(readings.cpuCount).toBeGreaterThan(0);
    expect(readings.disks.map((d) => d.path)).toEqual([dataDir]);
  });
});

describe('host sampler', () => {
  it('has no CPU or network rate on the first sample and computes both from deltas on the second', async () => {
    const procRoot = await fixtureProc('proc-rates');
    const base = Date.UTC(2001, 0, 1);
    const time = clock(base);
    const s = sampler({ procRoot, now: time.now });
    const first = await s.sample();
    expect(first.cpuPercent).toBeNull();
    expect(first.network).toEqual({ rxBytesPerSec: null, txBytesPerSec: null });
    expect(first).toMatchObject({
      sampledAt: new Date(base).toISOString(),
      cpuCount: 2,
      load: { one: 0.52, five: 1.04, fifteen: 2.5 },
      memory: { totalBytes: 16_000_000 * 1024, availableBytes: 4_000_000 * 1024, percent: 75 },
    });
    expect(first.disks.map((d) => d.path)).toEqual([dataDir]);

    await writeFile(join(procRoot, 'stat'), STAT_B);
    await writeFile(join(procRoot, 'net/dev'), NETDEV_B);
    time.set(base + 2_000);
    const second = await s.sample();
    expect(second.cpuPercent).toBe(70);
    expect(second.network).toEqual({ rxBytesPerSec: 2_000_000, txBytesPerSec: 500_000 });
    expect(s.latest()).toEqual(second);

    const rows = await rowsBetween(base, base + 3_000);
    expect(rows.map(hostSampleView)).toEqual([first, second]);
    expect(rows[1]).toMatchObject({ cpuPercent: 70, load1: 0.52, memoryPercent: 75, networkRxBytesPerSec: 2_000_000 });
  });

  it.skipIf(!hasProc)('samples this host: CPU % null first, then a number in [0, 100] once the kernel has counted ticks', async () => {
    const s = sampler();
    const first = await s.sample();
    expect(first.cpuPercent).toBeNull();
    const ticksAtFirst = (await procNow()).cpuTotal;
    // The test (not the sampler) waits until the kernel has counted more ticks, so a delta exists.
    for (let i = 0; i < 500 && (await procNow()).cpuTotal - ticksAtFirst < 20; i++) await Bun.sleep(10);
    const second = await s.sample();
    const proc = await procNow();
    expect(second.cpuPercent).toBeNumber();
    expect(second.cpuPercent!).toBeGreaterThanOrEqual(0);
    expect(second.cpuPercent!).toBeLessThanOrEqual(100);
    expect(second.cpuCount).toBe(proc.cpuCount);
    expect(second.memory.totalBytes).toBe(proc.memTotal);
    expect(second.disks.map((d) => d.path)).toEqual([dataDir]);
    expect(second.network.rxBytesPerSec === null || second.network.rxBytesPerSec >= 0).toBe(true);
  });

  it('prunes rows older than the retention when it samples', async () => {
    const procRoot = await fixtureProc('proc-prune');
    const base = Date.UTC(2003, 0, 1);
    const retentionMs = 3_600_000;
    const time = clock(base);
    const s = sampler({ procRoot, now: time.now, retentionMs });
    await s.sample();
    time.set(base + retentionMs / 2);
    await s.sample();
    expect(await rowsBetween(base, base + 2 * retentionMs)).toHaveLength(2);

    time.set(base + retentionMs + 1);
    await s.sample();
    const rows = await rowsBetween(base, base + 2 * retentionMs);
    expect(rows.map((r) => r.sampledAt.getTime())).toEqual([base + retentionMs / 2, base + retentionMs + 1]);
  });

  it('shares one reading between concurrent callers and stores it once', async () => {
    const procRoot = await fixtureProc('proc-concurrent');
    const base = Date.UTC(2004, 0, 1);
    const s = sampler({ procRoot, now: () => base });
    const [a, b] = await Promise.all([s.sample(), s.sample()]);
    expect(a).toBe(b);
    expect(await rowsBetween(base, base + 1)).toHaveLength(1);
  });

  it('refuses to sample without load or memory figures and stores nothing', async () => {
    const base = Date.UTC(2005, 0, 1);
    const s = sampler({ procRoot: join(workDir, 'no-such-proc'), now: () => base });
    const err = await s.sample().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HostMetricsUnavailableError);
    expect((err as HostMetricsUnavailableError).missing).toEqual(['load averages', 'memory']);
    expect(s.latest()).toBeNull();
    expect(await rowsBetween(base, base + 1)).toHaveLength(0);
  });

  it('hands every sample to the alert hook, and a failing hook does not fail the sample', async () => {
    const procRoot = await fixtureProc('proc-hook');
    const base = Date.UTC(2006, 0, 1);
    const time = clock(base);
    const seen: HostSample[] = [];
    const s = sampler({ procRoot, now: time.now, onSample: (sample) => void seen.push(sample) });
    const sample = await s.sample();
    expect(seen).toEqual([sample]);

    const failing = sampler({ procRoot, now: () => base + 1, onSample: () => Promise.reject(new Error('alert engine down')) });
    const stored = await failing.sample();
    expect(stored.sampledAt).toBe(new Date(base + 1).toISOString());
    expect(await rowsBetween(base, base + 2)).toHaveLength(2);
  });

  it('takes its first sample as soon as it starts and lets the round finish on stop', async () => {
    const procRoot = await fixtureProc('proc-loop');
    const base = Date.UTC(2007, 0, 1);
    let taken!: (sample: HostSample) => void;
    const first = new Promise<HostSample>((resolve) => (taken = resolve));
    const s = sampler({ procRoot, now: () => base, intervalMs: 3_600_000, onSample: (sample) => taken(sample) });
    s.start();
    const sample = await first;
    await s.stop();
    expect(s.latest()).toEqual(sample);
    expect(await rowsBetween(base, base + 1)).toHaveLength(1);
  });

  it('restores the newest stored sample on load after a restart', async () => {
    const before = sampler({ procRoot: await fixtureProc('proc-load'), now: () => Date.now() });
    const stored = await before.sample();
    const restarted = sampler();
    expect(restarted.latest()).toBeNull();
    expect(await restarted.load()).toEqual(stored);
    expect(restarted.latest()).toEqual(stored);
  });
});

describe('system metrics view', () => {
  const GIB = 1024 ** 3;
  const sample: HostSample = {
    sampledAt: '2009-01-01T00:00:00.000Z',
    cpuPercent: 70,
    cpuCount: 2,
    load: { one: 0.52, five: 1.04, fifteen: 2.5 },
    memory: { totalBytes: 16 * GIB, availableBytes: 4.5 * GIB, percent: 71.88 },
    disks: [
      { path: '/data', totalBytes: 100 * GIB, usedBytes: 40 * GIB, freeBytes: 55 * GIB, percent: 42.11 },
      { path: '/storage', totalBytes: 2 * GIB, usedBytes: 1.5 * GIB, freeBytes: 0.25 * GIB, percent: 85.71 },
    ],
    network: { rxBytesPerSec: 2_000_000, txBytesPerSec: 500_000 },
  };

  it('gives the original flat snake_case fields in GiB, the first watched path as disk_*, and every path in disks', () => {
    expect(systemMetricsView(sample)).toEqual({
      cpu_usage_percent: 70,
      cpu_count: 2,
      load_average_1m: 0.52,
      load_average_5m: 1.04,
      load_average_15m: 2.5,
      memory_total_gb: 16,
      memory_used_gb: 11.5,
      memory_available_gb: 4.5,
      memory_usage_percent: 71.88,
      disk_total_gb: 100,
      disk_used_gb: 40,
      disk_free_gb: 55,
      disk_usage_percent: 42.11,
      network_rx_bytes_per_sec: 2_000_000,
      network_tx_bytes_per_sec: 500_000,
      disks: [
        { path: '/data', total_gb: 100, used_gb: 40, free_gb: 55, usage_percent: 42.11 },
        { path: '/storage', total_gb: 2, used_gb: 1.5, free_gb: 0.25, usage_percent: 85.71 },
      ],
      collected_at: '2009-01-01T00:00:00.000Z',
    });
  });

  it('rounds sizes to two decimals and leaves disk_* and rates null when there is nothing to report', () => {
    const view = systemMetricsView({
      ...sample,
      cpuPercent: null,
      memory: { totalBytes: 16_000_000 * 1024, availableBytes: 4_000_000 * 1024, percent: 75 },
      disks: [],
      network: { rxBytesPerSec: null, txBytesPerSec: null },
    });
    // 16 000 000 KiB = 15.2588 GiB; 12 000 000 KiB used = 11.4441 GiB.
    expect(view).toMatchObject({ cpu_usage_percent: null, memory_total_gb: 15.26, memory_used_gb: 11.44, memory_available_gb: 3.81, memory_usage_percent: 75 });
    expect(view).toMatchObject({ disk_total_gb: null, disk_used_gb: null, disk_free_gb: null, disk_usage_percent: null, disks: [] });
    expect(view).toMatchObject({ network_rx_bytes_per_sec: null, network_tx_bytes_per_sec: null });
  });
});

describe('GET /metrics/system', () => {
  let token: string;
  const build = (s: ReturnType<typeof sampler>): ServiceApp => {
    const app = createServiceApp({
      name: 'monitoring',
      version: '0.0.0',
      description: 'test',
      logger: silent,
      auth: { authenticator: testAuthenticator(createMemoryKv()) },
    });
    app.route('/', systemMetricsRoutes({ sampler: s }));
    return app;
  };
  const get = (app: ServiceApp, path: string, auth: string | null = token) =>
    app.request(path, { headers: auth ? { authorization: `Bearer ${auth}` } : {} });

  beforeAll(async () => {
    token = await tokenFor(crypto.randomUUID());
  });

  it('needs a token (401)', async () => {
    const app = build(sampler());
    expect((await get(app, '/metrics/system', null)).status).toBe(401);
    expect((await get(app, '/metrics/system', 'not-a-token')).status).toBe(401);
    expect((await get(app, '/metrics/system/history', null)).status).toBe(401);
  });

  it.skipIf(!hasProc)('samples the host once when there is no sample yet, then answers the latest', async () => {
    const s = sampler();
    const app = build(s);
    const res = await get(app, '/metrics/system');
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.cpu_usage_percent).toBeNull();
    expect(body.memory_total_gb).toBe(Math.round(((await procNow()).memTotal / 1024 ** 3) * 100) / 100);
    expect(body.disks[0].path).toBe(dataDir);
    expect(body.disk_usage_percent).toBe(body.disks[0].usage_percent);
    expect(systemMetricsView(s.latest()!)).toEqual(body);

    // Answered from the latest sample: no new reading per request.
    expect(await json(await get(app, '/metrics/system'))).toEqual(body);
  });

  it('answers the sampler’s latest sample in the original snake_case shape', async () => {
    const procRoot = await fixtureProc('proc-route');
    const base = Date.UTC(2008, 0, 1);
    const time = clock(base);
    const s = sampler({ procRoot, now: time.now });
    await s.sample();
    await writeFile(join(procRoot, 'stat'), STAT_B);
    time.set(base + 1_000);
    const latest = await s.sample();
    const res = await get(build(s), '/metrics/system');
    expect(res.status).toBe(200);
    const body: SystemMetrics = await json(res);
    expect(body).toEqual(systemMetricsView(latest));
    // The fixture's figures, as operators' scripts read them.
    expect(body).toMatchObject({
      cpu_usage_percent: 70,
      cpu_count: 2,
      load_average_1m: 0.52,
      load_average_5m: 1.04,
      load_average_15m: 2.5,
      memory_total_gb: 15.26,
      memory_used_gb: 11.44,
      memory_available_gb: 3.81,
      memory_usage_percent: 75,
      collected_at: new Date(base + 1_000).toISOString(),
    });
    expect(body.disks.map((d) => d.path)).toEqual([dataDir]);
    expect(body.disk_total_gb).toBe(body.disks[0]!.total_gb);
    expect(body).not.toHaveProperty('cpuPercent');
  });

  it('answers 503 with a problem when there is no sample and the host cannot be read', async () => {
    const res = await get(build(sampler({ procRoot: join(workDir, 'no-such-proc') })), '/metrics/system');
    expect(res.status).toBe(503);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(await json(res)).toMatchObject({ status: 503, code: 'host_metrics_unavailable' });
  });
});

describe('GET /metrics/system/history', () => {
  const base = Date.UTC(2010, 5, 1);
  let app: ServiceApp;
  let token: string;
  const get = (path: string) => app.request(path, { headers: { authorization: `Bearer ${token}` } });
  const at = (minutes: number) => new Date(base + minutes * 60_000).toISOString();

  beforeAll(async () => {
    token = await tokenFor(crypto.randomUUID());
    const procRoot = await fixtureProc('proc-history');
    const time = clock(base);
    const s = sampler({ procRoot, now: time.now });
    // Five samples a minute apart, and two in the same millisecond (ties are broken by id).
    for (const minutes of [0, 1, 2, 3, 4]) {
      time.set(base + minutes * 60_000);
      await s.sample();
    }
    time.set(base + 4 * 60_000);
    await sampler({ procRoot, now: time.now }).sample();
    app = createServiceApp({ name: 'monitoring', version: '0.0.0', description: 'test', logger: silent, auth: { authenticator: testAuthenticator(createMemoryKv()) } });
    app.route('/', systemMetricsRoutes({ sampler: s }));
  });

  it('returns the samples in the range, newest first', async () => {
    const res = await get(`/metrics/system/history?from=${at(1)}&to=${at(3)}`);
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.items.map((i: SystemMetrics) => i.collected_at)).toEqual([at(3), at(2), at(1)]);
    expect(body.items[0]).toMatchObject({ load_average_1m: 0.52, memory_usage_percent: 75, memory_total_gb: 15.26, cpu_count: 2 });
    expect(body.items[0].disks.map((d: { path: string }) => d.path)).toEqual([dataDir]);
    expect(body.nextCursor).toBeNull();
  });

  it('pages through a range with the cursor, every sample once', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await get(`/metrics/system/history?from=${at(0)}&to=${at(4)}&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      const body = await json(res);
      expect(body.items.length).toBeLessThanOrEqual(2);
      seen.push(...body.items.map((i: SystemMetrics) => i.collected_at));
      cursor = body.nextCursor;
      pages += 1;
    } while (cursor && pages < 10);
    expect(seen).toEqual([at(4), at(4), at(3), at(2), at(1), at(0)]);
    expect(pages).toBe(3);
  });

  it('rejects bad ranges, limits and cursors with 400', async () => {
    for (const query of [
      'from=yesterday',
      `to=${encodeURIComponent('2010-06-01 00:00')}`,
      `from=${at(3)}&to=${at(1)}`,
      'limit=0',
      'limit=5000',
      'limit=ten',
      'cursor=bm90LWEtY3Vyc29y',
      `cursor=${Buffer.from('2010-99-99T00:00:00.000Z|1').toString('base64url')}`,
    ]) {
      const res = await get(`/metrics/system/history?${query}`);
      expect(res.status, query).toBe(400);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
    }
  });
});
