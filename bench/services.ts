/**
 * `npm run bench` (`bun bench/services.ts [--redis] [--starts N] [--runs N] [--seconds S]`):
 * figures for DESIGN.md §9, printed as tables and never asserted.
 *
 * 1. Start: each service in three builds (source, bundle, bundle with bytecode), spawn → first TCP
 *    accept → first `GET /ready` 200, then idle RSS 1 s later; median of N starts after one
 *    discarded warm-up start.
 * 2. Where a start goes: the same start split into steps (bench/phases.ts).
 * 3. Throughput: user-service `GET /health` (bundled) next to a plain Hono app and a bare Bun.serve
 *    sending the same JSON, driven by a separate load-generator process (wrk when installed, else
 *    bench/load.ts).
 *
 * Everything runs on loopback against a scratch database that is dropped at the end; every child
 * process is killed at the end, also on error or Ctrl-C.
 */
import { readdir, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { SERVICES } from '../services/catalog.ts';
import type { LoadResult } from './load.ts';
import type { StartPhases } from './phases.ts';
import { openScratch, type Proc } from './scratch.ts';
import { printTable } from './table.ts';

const ROOT = resolve(import.meta.dir, '..');
const BUN = process.execPath;
const ADMIN_URL = process.env.BENCH_ADMIN_URL ?? 'postgres://root@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const POLL_MS = 5;
/** How long a started service sits without traffic before its RSS is read. */
const IDLE_MS = 1000;
const START_TIMEOUT_MS = 15_000;
const READY_BUDGET_MS = 150;
const RSS_BUDGET_MIB = 60;
const CONNECTIONS = 50;
const WARMUP_SECONDS = 1;
const THROUGHPUT_SERVICE = 'user-service';

const { values: args } = parseArgs({
  options: {
    redis: { type: 'boolean', default: false },
    starts: { type: 'string', default: '5' },
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '5' },
  },
});
const STARTS = Number(args.starts);
const RUNS = Number(args.runs);
const SECONDS = Number(args.seconds);

// ---------------------------------------------------------------------------------------------
// Scratch space (bundles, DATA_DIR, a scratch database) and child processes, see bench/scratch.ts.

const { dir: scratchDir, databaseName, databaseUrl, createDatabase, track, stopChild, cleanup } = await openScratch({ adminUrl: ADMIN_URL });

/** The environment every service child gets: nothing inherited but PATH and HOME, so no stray URLs. */
function serviceEnv(port: number): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? scratchDir,
    HOST: '127.0.0.1',
    PORT: String(port),
    DATABASE_URL: databaseUrl,
    // Set explicitly: a bundle's default would resolve relative to the bundle, not the repo.
    MIGRATIONS_DIR: join(ROOT, 'db/migrations'),
    DATA_DIR: join(scratchDir, 'data'),
    LOG_LEVEL: 'warn',
    ...(args.redis ? { REDIS_URL } : {}),
  };
}

/** `--no-install`: a bundle that still needs a package (PGlite) must fail here, not fetch it. */
function spawnService(command: string[], port: number) {
  return track(
    Bun.spawn([BUN, '--no-install', ...command], { env: serviceEnv(port), stdin: 'ignore', stdout: 'ignore', stderr: 'pipe' }),
  );
}

function freePort(): number {
  const listener = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

// ---------------------------------------------------------------------------------------------
// Probes and polling.

async function acceptsTcp(port: number): Promise<boolean> {
  try {
    const socket = await Bun.connect({ hostname: '127.0.0.1', port, socket: { data() {} } });
    socket.end();
    return true;
  } catch {
    return false;
  }
}

/** `Connection: close` so no idle keep-alive connection delays the child's graceful stop. */
async function readyAnswers200(port: number): Promise<boolean> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/ready`, {
      headers: { connection: 'close' },
      signal: AbortSignal.timeout(2000),
    });
    await response.arrayBuffer();
    return response.status === 200;
  } catch {
    return false;
  }
}

/** Polls every POLL_MS until `probe` passes; returns when it passed. Fails fast if the child dies. */
async function pollUntil(child: Proc & { stderr: ReadableStream<Uint8Array> }, probe: () => Promise<boolean>): Promise<number> {
  const deadline = performance.now() + START_TIMEOUT_MS;
  for (;;) {
    if (await probe()) return performance.now();
    if (child.exitCode !== null) {
      const stderr = await new Response(child.stderr).text();
      throw new Error(`exited with ${child.exitCode}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
    }
    if (performance.now() > deadline) throw new Error(`not ready after ${START_TIMEOUT_MS} ms`);
    await Bun.sleep(POLL_MS);
  }
}

async function readRssMiB(pid: number): Promise<number> {
  const status = await Bun.file(`/proc/${pid}/status`).text();
  const kib = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!kib) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(kib[1]) / 1024;
}

// ---------------------------------------------------------------------------------------------
// Figures.

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const fixed = (x: number, digits = 0) => x.toFixed(digits);
const spread = (xs: number[]) => `${fixed(median(xs))} (${fixed(Math.min(...xs))}–${fixed(Math.max(...xs))})`;


// ---------------------------------------------------------------------------------------------
// Builds.

type Build = 'source' | 'bundle' | 'bytecode';
const BUILDS: readonly Build[] = ['source', 'bundle', 'bytecode'];

/**
 * `bundle` uses the flags of services/<name>/Dockerfile, the build that ships. Marking only
 * `@electric-sql/pglite` external is not enough: drizzle's PGlite driver would be inlined with its
 * top-level `import … from "@electric-sql/pglite"`, so every start would load PGlite's JS (and fail
 * where it is not installed). With `drizzle-orm/pglite` external too, both stay behind the lazy
 * `import()` in shared/db.ts. (`--splitting --outdir` also works; it measured the same.)
 *
 * `bytecode` adds JSC bytecode so a start skips parsing (Bun allows that without `--compile` only
 * for CommonJS, which is why index.ts has no top-level await). It is what the Dockerfiles ship.
 */
const EXTERNALS = ['--external', '@electric-sql/pglite', '--external', 'drizzle-orm/pglite'];
const BUILD_FLAGS: Record<Exclude<Build, 'source'>, string[]> = {
  bundle: ['--target=bun', '--minify', ...EXTERNALS],
  bytecode: ['--target=bun', '--minify', '--bytecode', '--format=cjs', ...EXTERNALS],
};

async function bundle(build: Exclude<Build, 'source'>, entry: string, outdir: string): Promise<void> {
  const child = Bun.spawn([BUN, 'build', entry, ...BUILD_FLAGS[build], '--outdir', outdir], { cwd: ROOT, stdout: 'ignore', stderr: 'pipe' });
  if ((await child.exited) !== 0) throw new Error(`bun build ${entry}: ${await new Response(child.stderr).text()}`);
}

async function sizeKiB(dir: string): Promise<number> {
  let bytes = 0;
  for (const name of await readdir(dir)) bytes += (await stat(join(dir, name))).size;
  return bytes / 1024;
}

/** The file `bun` runs for a service in a build. */
function serviceEntry(name: string, build: Build): string {
  if (build === 'source') return join(ROOT, 'services', name, 'src/index.ts');
  return join(scratchDir, build, name, 'index.js');
}

/** The phase profiler's file for a service in a build (see phases.ts). */
function phasesEntry(name: string, build: Build): string {
  return build === 'source' ? join(scratchDir, 'entries', `phases-${name}.ts`) : join(scratchDir, `phases-${build}`, name, `phases-${name}.js`);
}

/** Writes the generated entries and bundles every service and phase profiler; returns bundle sizes. */
async function buildAll(names: string[]): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  const repo = (...parts: string[]) => JSON.stringify(join(ROOT, ...parts));
  for (const name of names) {
    const definition = `import { definition } from ${repo('services', name, 'src/service.ts')};\n`;
    const exitOnError = `.catch((err) => {\n  console.error(err);\n  process.exit(1);\n});\n`;
    await Bun.write(phasesEntry(name, 'source'), `import { profileStart } from ${repo('bench/phases.ts')};\n${definition}profileStart(definition)${exitOnError}`);

    await bundle('bundle', serviceEntry(name, 'source'), join(scratchDir, 'bundle', name));
    await bundle('bytecode', serviceEntry(name, 'source'), join(scratchDir, 'bytecode', name));
    sizes.set(name, await sizeKiB(join(scratchDir, 'bundle', name)));
    for (const build of ['bundle', 'bytecode'] as const) {
      await bundle(build, phasesEntry(name, 'source'), join(scratchDir, `phases-${build}`, name));
    }
  }
  return sizes;
}

// ---------------------------------------------------------------------------------------------
// 1. Start → ready, idle RSS.

interface StartSample {
  listenMs: number;
  readyMs: number;
  rssMiB: number;
}

async function measureStart(command: string[]): Promise<StartSample> {
  const port = freePort();
  const spawnedAt = performance.now();
  const child = spawnService(command, port);
  try {
    const listeningAt = await pollUntil(child, () => acceptsTcp(port));
    const readyAt = await pollUntil(child, () => readyAnswers200(port));
    await Bun.sleep(IDLE_MS);
    return { listenMs: listeningAt - spawnedAt, readyMs: readyAt - spawnedAt, rssMiB: await readRssMiB(child.pid) };
  } finally {
    await stopChild(child);
  }
}

/** One discarded warm-up start (applies migrations on the first, warms the page cache), then STARTS. */
async function startRow(label: string, build: string, command: string[]): Promise<string[]> {
  try {
    await measureStart(command);
    const samples: StartSample[] = [];
    for (let i = 0; i < STARTS; i++) samples.push(await measureStart(command));
    const ready = samples.map((s) => s.readyMs);
    const rss = median(samples.map((s) => s.rssMiB));
    const meets = median(ready) <= READY_BUDGET_MS && rss <= RSS_BUDGET_MIB ? 'yes' : 'no';
    return [label, build, spread(samples.map((s) => s.listenMs)), spread(ready), fixed(rss, 1), meets];
  } catch (err) {
    return [label, build, 'failed', err instanceof Error ? err.message : String(err), '', ''];
  }
}

// ---------------------------------------------------------------------------------------------
// 2. Start phases.

async function phasesRow(name: string, build: Build): Promise<string[]> {
  try {
    const samples: StartPhases[] = [];
    for (let i = 0; i < 3; i++) {
      const child = track(
        Bun.spawn([BUN, '--no-install', phasesEntry(name, build)], { env: serviceEnv(0), stdout: 'pipe', stderr: 'pipe' }),
      );
      const hung = setTimeout(() => child.kill('SIGKILL'), START_TIMEOUT_MS);
      const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
      clearTimeout(hung);
      if (code !== 0) throw new Error(`exited with ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
      samples.push(JSON.parse(stdout) as StartPhases);
    }
    const keys: (keyof StartPhases)[] = ['imports', 'env', 'dbOpen', 'dbConnect', 'kv', 'migrate', 'build', 'listen', 'firstReady'];
    const total = median(samples.map((s) => keys.reduce((sum, k) => sum + s[k], 0)));
    return [name, build, ...keys.map((k) => fixed(median(samples.map((s) => s[k])), 1)), fixed(total)];
  } catch (err) {
    return [name, build, 'failed', err instanceof Error ? err.message : String(err)];
  }
}

// ---------------------------------------------------------------------------------------------
// 3. Throughput.

const WRK = Bun.which('wrk');

/** wrk prints latencies as e.g. `512.00us`, `1.20ms`, `2.00s`. */
function wrkMs(text: string, label: string): number {
  const match = new RegExp(`^\\s*${label}\\s+([\\d.]+)(us|ms|s)\\b`, 'm').exec(text);
  if (!match) throw new Error(`wrk output has no ${label}`);
  const scale = { us: 0.001, ms: 1, s: 1000 }[match[2] as 'us' | 'ms' | 's'];
  return Number(match[1]) * scale;
}

async function runWrk(url: string, seconds: number): Promise<LoadResult> {
  // One thread, like bench/load.ts: the server keeps one of the two cores.
  const child = track(Bun.spawn([WRK!, '-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', url], { stdout: 'pipe', stderr: 'pipe' }));
  const [text, code] = await Promise.all([new Response(child.stdout).text(), child.exited]);
  if (code !== 0) throw new Error(`wrk exited with ${code}`);
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(text);
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(text);
  const requests = /(\d+) requests in/.exec(text);
  return {
    url,
    connections: CONNECTIONS,
    seconds,
    requests: Number(requests?.[1] ?? 0),
    rps: Math.round(Number(rps?.[1] ?? NaN)),
    p50Ms: wrkMs(text, '50%'),
    p99Ms: wrkMs(text, '99%'),
    errors: Number(non2xx?.[1] ?? 0),
  };
}

async function runLoad(url: string): Promise<LoadResult> {
  if (WRK) {
    await runWrk(url, WARMUP_SECONDS); // wrk has no warm-up of its own
    return runWrk(url, SECONDS);
  }
  const command = [BUN, join(ROOT, 'bench/load.ts'), '--url', url];
  command.push('--connections', String(CONNECTIONS), '--seconds', String(SECONDS), '--warmup', String(WARMUP_SECONDS));
  const child = track(Bun.spawn(command, { stdout: 'pipe', stderr: 'pipe' }));
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  if (code !== 0) throw new Error(`load.ts exited with ${code}: ${stderr.trim()}`);
  return JSON.parse(stdout) as LoadResult;
}

async function throughput(): Promise<void> {
  const targets = [
    { label: `${THROUGHPUT_SERVICE} GET /health (bundle)`, command: [serviceEntry(THROUGHPUT_SERVICE, 'bundle')], port: freePort() },
    { label: 'plain Hono app, same JSON', command: [join(ROOT, 'bench/hono-server.ts')], port: freePort() },
    { label: 'bare Bun.serve, same JSON', command: [join(ROOT, 'bench/bare-server.ts')], port: freePort() },
  ];
  const running = targets.map((t) => spawnService(t.command, t.port));
  try {
    await Promise.all(running.map((child, i) => pollUntil(child, () => readyAnswers200(targets[i]!.port))));
    const results: LoadResult[][] = targets.map(() => []);
    // Interleaved runs, so drift in the machine's load hits every target alike.
    for (let run = 0; run < RUNS; run++) {
      for (const [i, target] of targets.entries()) results[i]!.push(await runLoad(`http://127.0.0.1:${target.port}/health`));
    }
    const medians = results.map((rs) => ({
      rps: median(rs.map((r) => r.rps)),
      p50: median(rs.map((r) => r.p50Ms)),
      p99: median(rs.map((r) => r.p99Ms)),
      errors: rs.reduce((sum, r) => sum + r.errors, 0),
    }));
    const bare = medians.at(-1)!;
    printTable(
      `Throughput: ${CONNECTIONS} keep-alive connections, ${SECONDS} s after ${WARMUP_SECONDS} s warm-up, median of ${RUNS} runs; ` +
        `client ${WRK ? 'wrk -t1' : 'bench/load.ts'} in its own process, sharing the 2 cores with the server`,
      ['server', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx', 'req/s vs bare', 'runs (req/s)'],
      targets.map((t, i) => {
        const m = medians[i]!;
        return [
          t.label,
          fixed(m.rps),
          fixed(m.p50, 3),
          fixed(m.p99, 3),
          String(m.errors),
          `${fixed((m.rps / bare.rps) * 100)}%`,
          results[i]!.map((r) => r.rps).join(', '),
        ];
      }),
    );
  } finally {
    await Promise.all(running.map(stopChild));
  }
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  await createDatabase();
  const names = SERVICES.map((s) => s.name);

  const sizes = await buildAll(names);

  console.log(`Bun ${Bun.version}, ${availableParallelism()} cores (client and server share them), loopback only.`);
  console.log(`PostgreSQL: scratch database ${databaseName}. KV: ${args.redis ? `Redis (${REDIS_URL})` : 'in-memory (REDIS_URL unset)'}.`);
  console.log(`source = bun services/<name>/src/index.ts; every build runs with bun --no-install.`);
  for (const build of ['bundle', 'bytecode'] as const) console.log(`${build} = bun build ${BUILD_FLAGS[build].join(' ')} --outdir`);
  console.log(`bundle sizes (KiB): ${names.map((n) => `${n} ${fixed(sizes.get(n)!)}`).join(', ')}`);

  const startRows: string[][] = [];
  for (const name of names) {
    for (const build of BUILDS) startRows.push(await startRow(name, build, [serviceEntry(name, build)]));
  }
  startRows.push(await startRow('bare Bun.serve (baseline)', 'source', [join(ROOT, 'bench/bare-server.ts')]));
  printTable(
    `Start: process spawn → first TCP accept (listening) → first GET /ready 200 (polled every ${POLL_MS} ms); ` +
      `idle RSS ${IDLE_MS} ms after ready, no traffic. ms as median (min–max) of ${STARTS} starts after 1 discarded warm-up ` +
      `start (the first warm-up applied the migrations). Budget: ready ≤ ${READY_BUDGET_MS} ms and RSS ≤ ${RSS_BUDGET_MIB} MiB.`,
    ['service', 'build', 'listening ms', 'ready ms', 'idle RSS MiB', 'in budget'],
    startRows,
  );

  const phaseRows: string[][] = [];
  for (const name of names) for (const build of BUILDS) phaseRows.push(await phasesRow(name, build));
  printTable(
    'Where a start goes (bench/phases.ts): ms per step, median of 3. The clock starts at the Bun process\'s time origin, ' +
      '~10-14 ms after spawn here, so the total misses that and the polling; imports = Bun boot + loading all static ' +
      'imports; no migrations left to apply; first /ready in-process.',
    ['service', 'build', 'imports', 'env', 'db open', 'db connect', 'kv', 'migrate', 'build', 'listen', 'first /ready', 'total'],
    phaseRows,
  );

  await throughput();
}

try {
  await main();
} finally {
  await cleanup();
}
