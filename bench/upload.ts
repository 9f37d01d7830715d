/**
 * `bun bench/upload.ts [--gib N] [--chunk-kib K]`: DESIGN.md §9 "Uploading a 1 GiB file through the
 * gateway keeps gateway and file-manager RSS growth ≤ 64 MiB (streaming end to end)".
 *
 * Starts user-service, file-manager and api-gateway as three real processes from source on a scratch
 * PostgreSQL database and a temporary DATA_DIR, registers and logs in through the gateway, then POSTs
 * N GiB (default 1) to `/api/files` through the gateway as a streamed body generated on the fly (never
 * held whole), while sampling the VmRSS of the gateway and file-manager every 100 ms. Prints RSS
 * before / peak / growth per process, the kernel's own peak (VmHWM, reset just before the upload),
 * throughput, and whether the SHA-256 computed while sending matches the one file-manager answers.
 *
 * Loopback only; the scratch database and directory are removed and every child process is stopped at
 * the end, also on error or Ctrl-C. Prints figures, asserts nothing.
 */
import { readdir, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { openScratch } from './scratch.ts';
import { spawnServiceChild, waitReady as serviceReady, type ServiceChild } from './service-child.ts';

const ROOT = resolve(import.meta.dir, '..');
const ADMIN_URL = process.env.BENCH_ADMIN_URL ?? 'postgres://root@127.0.0.1:5432/postgres';
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const SAMPLE_MS = 100;
const START_TIMEOUT_MS = 20_000;
const BUDGET_MIB = 64;
/** Time the services sit idle after the warm-up upload before the baseline is read. */
const SETTLE_MS = 1000;

const { values: args } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    gib: { type: 'string', default: '1' },
    'chunk-kib': { type: 'string', default: '1024' },
  },
});
const TOTAL_BYTES = Math.round(Number(args.gib) * GiB);
const CHUNK_BYTES = Math.round(Number(args['chunk-kib']) * 1024);
if (!(TOTAL_BYTES > 0) || !(CHUNK_BYTES > 0)) {
  console.error('usage: bun bench/upload.ts [--gib N] [--chunk-kib K]');
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// Scratch space and child processes (stopped by cleanup, see bench/scratch.ts). `children` keeps
// every service started, exited or not, for the stderr tails printed on failure.

const children = new Set<ServiceChild>();

const { dir: scratchDir, databaseName, databaseUrl, createDatabase, track, cleanup } = await openScratch({ name: 'upload', adminUrl: ADMIN_URL });
const dataDir = join(scratchDir, 'data');
const storageDir = join(scratchDir, 'files');

const randomText = (bytes: number) => Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString('base64url');
const randomKey = (id: string) => `${id}:${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64')}`;

function freePort(): number {
  const listener = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

function spawnService(name: string, env: Record<string, string>): ServiceChild {
  const child = spawnServiceChild({ dir: scratchDir, track }, name, [join(ROOT, 'services', name, 'src', 'index.ts')], {
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    DATABASE_URL: databaseUrl,
    MIGRATIONS_DIR: join(ROOT, 'db/migrations'),
    DATA_DIR: dataDir,
    ...env,
  });
  children.add(child);
  return child;
}

const waitReady = (child: ServiceChild, port: number) => serviceReady(child, `http://127.0.0.1:${port}/ready`, START_TIMEOUT_MS);

// ---------------------------------------------------------------------------------------------
// Memory: VmRSS sampled every 100 ms, and the kernel's high-water mark (VmHWM) as a cross-check.

async function procStatusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await Bun.file(`/proc/${pid}/status`).text();
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  if (!match) throw new Error(`no ${field} for pid ${pid}`);
  return Number(match[1]);
}

/** Writing 5 to clear_refs resets VmHWM to the current RSS (Linux ≥ 4.0); false when not allowed. */
async function resetPeak(pid: number): Promise<boolean> {
  try {
    await writeFile(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

interface Sampler {
  /** KiB samples in order, each with the bytes sent so far. */
  samples: { atMs: number; sent: number; kib: number }[];
  stop(): void;
}

function sampleRss(pid: number, sent: () => number, started: number): Sampler {
  const samples: Sampler['samples'] = [];
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    procStatusKiB(pid, 'VmRSS')
      .then((kib) => samples.push({ atMs: performance.now() - started, sent: sent(), kib }))
      .catch(() => {})
      .finally(() => {
        busy = false;
      });
  }, SAMPLE_MS);
  return { samples, stop: () => clearInterval(timer) };
}

// ---------------------------------------------------------------------------------------------
// The body: pseudo-random bytes made on the fly. One random buffer is filled once; every chunk is a
// fresh copy (the sender may still hold the previous one) with its index stamped into its first 8
// bytes, so no two chunks are equal. The SHA-256 of exactly what was handed over is computed as it goes.

function generatedBody(total: number, chunkBytes: number, onChunk: (sent: number) => void) {
  const base = new Uint8Array(chunkBytes);
  for (let at = 0; at < chunkBytes; at += 65_536) crypto.getRandomValues(base.subarray(at, Math.min(at + 65_536, chunkBytes)));
  const hasher = new Bun.CryptoHasher('sha256');
  let sent = 0;
  let index = 0;
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (sent >= total) {
          controller.close();
          return;
        }
        const size = Math.min(chunkBytes, total - sent);
        const chunk = base.slice(0, size);
        new DataView(chunk.buffer).setFloat64(0, index++);
        hasher.update(chunk);
        sent += size;
        onChunk(sent);
        controller.enqueue(chunk);
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, digest: () => hasher.digest('hex') };
}

// ---------------------------------------------------------------------------------------------

const mib = (kib: number) => kib / 1024;
const fmt = (n: number, digits = 1) => n.toFixed(digits);

async function json<T>(res: Response, expect: number, what: string): Promise<T> {
  const text = await res.text();
  if (res.status !== expect) throw new Error(`${what}: expected ${expect}, got ${res.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text) as T;
}

async function main(): Promise<void> {
  await createDatabase();

  const ports = { user: freePort(), files: freePort(), gateway: freePort(), closed: freePort() };
  const secrets = { fileManager: randomText(24), gateway: randomText(24) };
  const userServiceUrl = `http://127.0.0.1:${ports.user}`;
  const closedUrl = `http://127.0.0.1:${ports.closed}`;

  const userService = spawnService('user-service', {
    PORT: String(ports.user),
    SERVICE_SECRET_FILE_MANAGER: secrets.fileManager,
    SERVICE_SECRET_API_GATEWAY: secrets.gateway,
    ENCRYPTION_KEYS: randomKey('b'),
    REGISTRATIONS_PER_HOUR_PER_IP: '100',
  });
  await waitReady(userService, ports.user);
  const fileManager = spawnService('file-manager', {
    PORT: String(ports.files),
    SERVICE_SECRET: secrets.fileManager,
    USER_SERVICE_URL: userServiceUrl,
    STORAGE_DIR: storageDir,
    MAX_UPLOAD_BYTES: String(TOTAL_BYTES + GiB),
    USER_QUOTA_BYTES: String(2 * TOTAL_BYTES + GiB),
    LINK_SIGNING_KEY: randomKey('l'),
  });
  const gateway = spawnService('api-gateway', {
    PORT: String(ports.gateway),
    SERVICE_SECRET: secrets.gateway,
    USER_SERVICE_URL: userServiceUrl,
    FILE_MANAGER_URL: `http://127.0.0.1:${ports.files}`,
    SERVICE_REGISTRY_URL: closedUrl,
    JOB_PROCESSOR_URL: closedUrl,
    NOTIFICATION_URL: closedUrl,
    MONITORING_URL: closedUrl,
  });
  await Promise.all([waitReady(fileManager, ports.files), waitReady(gateway, ports.gateway)]);

  const api = `http://127.0.0.1:${ports.gateway}/api`;
  const username = `bench${randomText(4).replace(/[^A-Za-z0-9]/g, 'x').toLowerCase()}`;
  const password = `Upload-Bench-${randomText(12)}`;
  const post = (path: string, body: unknown) =>
    fetch(api + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  await json(await post('/auth/register', { username, email: `${username}@example.org`, password, firstName: 'Bench', lastName: 'Upload' }), 201, 'register');
  const { accessToken } = await json<{ accessToken: string }>(await post('/auth/login', { login: username, password }), 200, 'login');

  const upload = (name: string, body: ReadableStream<Uint8Array>, signal?: AbortSignal) =>
    fetch(`${api}/files?name=${encodeURIComponent(name)}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/octet-stream' },
      body,
      duplex: 'half',
      signal,
    } as RequestInit);

  // Warm-up: one small upload so lazy work (JWKS fetch, route compilation, first query, the storage
  // directories) is not counted as growth. Then a moment of quiet before the baseline.
  const warm = generatedBody(MiB, Math.min(CHUNK_BYTES, MiB), () => {});
  await json(await upload('warm.bin', warm.stream), 201, 'warm-up upload');
  await Bun.sleep(SETTLE_MS);

  const watched = [
    { label: 'api-gateway', child: gateway },
    { label: 'file-manager', child: fileManager },
  ];
  let sentBytes = 0;
  const before = await Promise.all(watched.map(({ child }) => procStatusKiB(child.proc.pid, 'VmRSS')));
  const hwmReset = await Promise.all(watched.map(({ child }) => resetPeak(child.proc.pid)));
  const body = generatedBody(TOTAL_BYTES, CHUNK_BYTES, (sent) => {
    sentBytes = sent;
  });
  const started = performance.now();
  const samplers = watched.map(({ child }) => sampleRss(child.proc.pid, () => sentBytes, started));
  let response: { id: string; sha256: string; sizeBytes: number };
  let elapsedMs: number;
  try {
    response = await json(await upload('big.bin', body.stream, AbortSignal.timeout(10 * 60_000)), 201, 'upload');
    elapsedMs = performance.now() - started;
  } finally {
    for (const sampler of samplers) sampler.stop();
  }
  const hwm = await Promise.all(watched.map(({ child }) => procStatusKiB(child.proc.pid, 'VmHWM')));
  await Bun.sleep(SETTLE_MS);
  const after = await Promise.all(watched.map(({ child }) => procStatusKiB(child.proc.pid, 'VmRSS')));

  const key = response.id.replaceAll('-', '');
  const onDisk = await stat(join(storageDir, 'objects', key.slice(-2), key)).then((s) => s.size, () => null);
  const leftInTmp = (await readdir(join(storageDir, 'tmp')).catch(() => [] as string[])).length;
  const sentDigest = body.digest();

  console.log(
    `Bun ${Bun.version}; ${fmt(TOTAL_BYTES / GiB, 2)} GiB in ${CHUNK_BYTES / 1024} KiB chunks, client → api-gateway → file-manager ` +
      `(three processes from source, PostgreSQL scratch database ${databaseName}); VmRSS sampled every ${SAMPLE_MS} ms.\n`,
  );
  console.log(`| process | RSS before | peak (sampled) | peak (VmHWM) | growth | after (+${SETTLE_MS / 1000} s) | budget ≤ ${BUDGET_MIB} MiB |`);
  console.log('|---|---|---|---|---|---|---|');
  watched.forEach(({ label }, i) => {
    const samples = samplers[i]!.samples;
    const sampledPeak = Math.max(before[i]!, ...samples.map((s) => s.kib));
    const peak = hwmReset[i] ? Math.max(sampledPeak, hwm[i]!) : sampledPeak;
    const growth = mib(peak - before[i]!);
    console.log(
      `| ${label} | ${fmt(mib(before[i]!))} MiB | ${fmt(mib(sampledPeak))} MiB | ${hwmReset[i] ? `${fmt(mib(hwm[i]!))} MiB` : 'n/a'} | ` +
        `${fmt(growth)} MiB | ${fmt(mib(after[i]!))} MiB | ${growth <= BUDGET_MIB ? 'yes' : 'no'} |`,
    );
  });

  // RSS as the upload progresses: flat means streaming; a ramp with the bytes means something holds them.
  console.log('\n| sent | ' + watched.map(({ label }) => `${label} RSS`).join(' | ') + ' |');
  console.log('|---|' + watched.map(() => '---|').join(''));
  for (const tenth of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) {
    const mark = (TOTAL_BYTES * tenth) / 10;
    const cells = samplers.map((sampler) => {
      const sample = sampler.samples.find((s) => s.sent >= mark) ?? sampler.samples.at(-1);
      return sample ? `${fmt(mib(sample.kib))} MiB` : 'n/a';
    });
    console.log(`| ${tenth * 10}% | ${cells.join(' | ')} |`);
  }

  const sampleCount = samplers.map((s) => s.samples.length).join('/');
  console.log(`\nupload: ${fmt(TOTAL_BYTES / MiB / (elapsedMs / 1000))} MiB/s (${fmt(elapsedMs / 1000, 2)} s for ${TOTAL_BYTES} bytes; ${sampleCount} RSS samples)`);
  console.log(`checksum: ${sentDigest === response.sha256 ? 'match' : 'MISMATCH'} (sent ${sentDigest}, file-manager ${response.sha256})`);
  console.log(
    `stored: ${onDisk === null ? 'object not found' : `${onDisk} bytes on disk`} ` +
      `(${onDisk === TOTAL_BYTES && response.sizeBytes === TOTAL_BYTES ? 'size matches' : `response sizeBytes ${response.sizeBytes}`}); ${leftInTmp} file(s) left in tmp/`,
  );
  console.log(`bench process (client) VmRSS at the end: ${fmt(mib(await procStatusKiB(process.pid, 'VmRSS')))} MiB`);
}

let failed = false;
try {
  await main();
} catch (err) {
  failed = true;
  console.error('upload bench failed:', err instanceof Error ? err.message : err);
  for (const child of children) {
    const tail = child.stderrTail();
    if (tail) console.error(`--- ${child.name} stderr ---\n${tail}`);
  }
} finally {
  await cleanup();
}
process.exit(failed ? 1 : 0);
