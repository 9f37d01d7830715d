/**
 * The seven Dockerfiles, checked without a Docker engine: they lint clean; one port per service (the
 * definition, ENV PORT, EXPOSE and the HEALTHCHECK target agree); the runtime stage is non-root and
 * holds only the bundle and the service's migrations; the bundle built by the Dockerfile's own RUN
 * line runs from that layout with no node_modules; and the exact HEALTHCHECK command tells a ready
 * service from a stopped one, or from one whose database has gone away.
 *
 * With DATABASE_URL set (CI) services run against a scratch PostgreSQL database created here and
 * dropped afterwards; without it they use PGlite under a temp DATA_DIR (seconds and ~1 GiB each, so
 * they start one at a time).
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import type { Subprocess } from 'bun';
import { Cmd, Copy, DockerfileParser, Env, From, Healthcheck, type Instruction } from 'dockerfile-ast';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join, posix, relative, resolve } from 'node:path';
import postgres from 'postgres';
import type { ServiceDefinition } from '@shared/service.ts';
import { SERVICES } from '../../services/catalog.ts';
import { startTcpForwarder } from '../support/tcp-forwarder.ts';
import { withDatabaseName } from '../support/test-database.ts';

const ROOT = resolve(import.meta.dir, '../..');
/** The pinned Bun (package.json devDependency) stands in for the image's `bun`. */
const BUN = existsSync(join(ROOT, 'node_modules/.bin/bun')) ? join(ROOT, 'node_modules/.bin/bun') : process.execPath;
const ADMIN_DATABASE_URL = process.env.DATABASE_URL;
const PGLITE_EXTERNALS = ['@electric-sql/pglite', 'drizzle-orm/pglite'];

// ---------------------------------------------------------------------------------------------
// Reading a Dockerfile

interface Stage {
  name: string | null;
  image: string;
  instructions: Instruction[];
}

interface HealthcheckSpec {
  /** Exec-form argv after `CMD`; empty when the HEALTHCHECK is not exec form. */
  command: string[];
  flags: Record<string, string>;
  timeoutMs: number;
}

interface ParsedDockerfile {
  path: string;
  build: Stage;
  runtime: Stage;
  /** ENV of the runtime stage. */
  env: Record<string, string>;
  exposeRaw: string[];
  /** EXPOSE with variables expanded, protocol stripped. */
  exposed: string[];
  user: string | undefined;
  workdir: string;
  healthcheck: HealthcheckSpec;
  cmd: string[];
}

function durationMs(value: string | undefined, fallback: number): number {
  if (!value) return fallback;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(value);
  if (!match) throw new Error(`unparseable duration ${value}`);
  return Number(match[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] as 'ms' | 's' | 'm' | 'h'];
}

function parseDockerfile(path: string): ParsedDockerfile {
  const ast = DockerfileParser.parse(readFileSync(path, 'utf8'));
  const stages: Stage[] = [];
  for (const instruction of ast.getInstructions()) {
    if (instruction instanceof From) {
      stages.push({ name: instruction.getBuildStage(), image: `${instruction.getImageName()}:${instruction.getImageTag()}`, instructions: [] });
    } else {
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  const build = stages[0];
  const runtime = stages.at(-1);
  if (!build || !runtime || build === runtime) throw new Error(`${path} is not a multi-stage Dockerfile`);
  const of = (keyword: string) => runtime.instructions.filter((i) => i.getKeyword() === keyword);

  const env: Record<string, string> = {};
  for (const instruction of of('ENV')) {
    for (const property of (instruction as Env).getProperties()) env[property.getName()] = property.getUnescapedValue() ?? '';
  }
  const exposes = of('EXPOSE');
  const healthInstruction = of('HEALTHCHECK').at(-1) as Healthcheck | undefined;
  const flags = Object.fromEntries((healthInstruction?.getFlags() ?? []).map((f) => [f.getName(), f.getValue() ?? '']));
  const execForm = /^CMD\s+(\[[\s\S]*\])\s*$/.exec(healthInstruction?.getArgumentsContent()?.trim() ?? '');
  const cmd = of('CMD').at(-1) as Cmd | undefined;
  return {
    path,
    build,
    runtime,
    env,
    exposeRaw: exposes.flatMap((i) => i.getArguments().map((a) => a.getValue())),
    exposed: exposes.flatMap((i) => i.getExpandedArguments().map((a) => a.getValue().replace(/\/tcp$/, ''))),
    user: of('USER').at(-1)?.getArguments()[0]?.getValue(),
    workdir: of('WORKDIR').at(-1)?.getArguments()[0]?.getValue() ?? '/',
    healthcheck: {
      command: execForm ? (JSON.parse(execForm[1]!) as string[]) : [],
      flags,
      timeoutMs: durationMs(flags.timeout, 30_000),
    },
    cmd: cmd ? cmd.getJSONStrings().map((s) => s.getJSONValue()) : [],
  };
}

function dockerfileOf(definition: ServiceDefinition): ParsedDockerfile {
  return parseDockerfile(join(ROOT, 'services', definition.name, 'Dockerfile'));
}

function buildWorkdir(dockerfile: ParsedDockerfile): string {
  return dockerfile.build.instructions.findLast((i) => i.getKeyword() === 'WORKDIR')?.getArguments()[0]?.getValue() ?? '/';
}

/** The build stage's `bun build ...` RUN line as argv. */
function bundleCommand(dockerfile: ParsedDockerfile): string[] {
  const run = dockerfile.build.instructions.find((i) => {
    const args = i.getArguments().map((a) => a.getValue());
    return i.getKeyword() === 'RUN' && args[0] === 'bun' && args[1] === 'build';
  });
  if (!run) throw new Error(`${dockerfile.path} has no RUN bun build in its build stage`);
  return run.getArguments().map((a) => a.getValue());
}

function optionValues(argv: string[], name: string): string[] {
  const values: string[] = [];
  argv.forEach((arg, i) => {
    if (arg === name && argv[i + 1] !== undefined) values.push(argv[i + 1]!);
    else if (arg.startsWith(`${name}=`)) values.push(arg.slice(name.length + 1));
  });
  return values;
}

/** `COPY --from=build <src...> <dest>` of the runtime stage as [src, dest] pairs. */
function copiesFromBuild(dockerfile: ParsedDockerfile): Array<[string, string]> {
  return dockerfile.runtime.instructions
    .filter((i): i is Copy => i instanceof Copy && i.getFromFlag()?.getValue() === dockerfile.build.name)
    .flatMap((copy) => {
      const args = copy.getArguments().map((a) => a.getValue());
      const dest = args.at(-1)!;
      return args.slice(0, -1).map((src): [string, string] => [src, dest]);
    });
}

// ---------------------------------------------------------------------------------------------
// Processes

const running = new Set<Subprocess>();

function freePort(): number {
  const server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response() });
  const port = server.port;
  server.stop(true);
  if (!port) throw new Error('no free port');
  return port;
}

// A test run that dies before afterAll must not leave services behind.
process.on('exit', () => {
  for (const proc of running) proc.kill('SIGKILL');
});

interface ServiceProcess {
  port: number;
  stop(): Promise<void>;
}

/** Spawns `argv`, waits until GET /ready answers 200, and fails with the process's stderr if it exits first. */
async function startProcess(argv: string[], options: { cwd: string; env: Record<string, string>; port: number; readyWithinMs: number }): Promise<ServiceProcess> {
  const proc = Bun.spawn(argv, { cwd: options.cwd, env: options.env, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe' });
  running.add(proc);
  const stderr = new Response(proc.stderr).text();
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await proc.exited;
      clearTimeout(timer);
    }
    running.delete(proc);
  };
  const deadline = Date.now() + options.readyWithinMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      running.delete(proc);
      throw new Error(`${argv.join(' ')} exited (${proc.exitCode ?? proc.signalCode}) before it was ready:\n${await stderr}`);
    }
    try {
      const response = await fetch(`http://127.0.0.1:${options.port}/ready`, { signal: AbortSignal.timeout(1000) });
      if (response.status === 200) return { port: options.port, stop };
      last = `${response.status} ${await response.text()}`;
    } catch (err) {
      last = String(err);
    }
    await Bun.sleep(50);
  }
  await stop();
  throw new Error(`${argv.join(' ')} was not ready within ${options.readyWithinMs} ms (last: ${last}):\n${await stderr}`);
}

/** Runs a Dockerfile's HEALTHCHECK command the way Docker would: exec form, PORT from the environment, killed at --timeout. */
async function runHealthcheck(spec: HealthcheckSpec, port: number): Promise<number> {
  const [program, ...args] = spec.command;
  if (!program) throw new Error('HEALTHCHECK is not an exec-form CMD');
  const proc = Bun.spawn([program === 'bun' ? BUN : program, ...args], {
    cwd: probeDir,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', PORT: String(port) },
    stdin: 'ignore',
    stdout: 'ignore',
    stderr: 'ignore',
    timeout: spec.timeoutMs,
    killSignal: 'SIGKILL',
  });
  const code = await proc.exited;
  return proc.signalCode !== null ? 128 : code;
}

/** Polls the healthcheck until it stops passing (or `withinMs` passes); returns the last exit code. */
async function healthcheckUntilFailing(spec: HealthcheckSpec, port: number, withinMs: number): Promise<number> {
  const deadline = Date.now() + withinMs;
  let code = await runHealthcheck(spec, port);
  while (code === 0 && Date.now() < deadline) {
    await Bun.sleep(200);
    code = await runHealthcheck(spec, port);
  }
  return code;
}

// ---------------------------------------------------------------------------------------------
// Fixtures: a temp dir per file, a scratch database when DATABASE_URL is set

const workDir = mkdtempSync(join(tmpdir(), 'fip-containers-'));
/** The healthcheck's cwd: like the image's WORKDIR, no node_modules anywhere above it. */
const probeDir = join(workDir, 'probe');
mkdirSync(probeDir);
let scratchUrl: string | undefined;
let dropScratch: (() => Promise<void>) | undefined;

beforeAll(async () => {
  if (!ADMIN_DATABASE_URL) return;
  const name = `fip_containers_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = postgres(ADMIN_DATABASE_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  scratchUrl = withDatabaseName(ADMIN_DATABASE_URL, name);
  dropScratch = async () => {
    await admin.unsafe(`drop database if exists "${name}" with (force)`);
    await admin.end();
  };
});

afterAll(async () => {
  for (const proc of running) proc.kill('SIGKILL');
  await Promise.all([...running].map((proc) => proc.exited));
  running.clear();
  await dropScratch?.();
  rmSync(workDir, { recursive: true, force: true });
});

/**
 * PGlite's first start (initdb) takes seconds and ~650 MB; reopening a copy of a data directory takes
 * about one second and half the memory. The first PGlite service's directory, once it has stopped,
 * seeds the others' (each still gets its own copy).
 */
let pgliteSeed: string | undefined;
const PGLITE_SUBDIR = 'pglite'; // openServiceDatabase keeps PGlite under DATA_DIR/pglite

function freshDataDir(name: string): string {
  const dataDir = mkdtempSync(join(workDir, `${name}-data-`));
  if (pgliteSeed) cpSync(pgliteSeed, join(dataDir, PGLITE_SUBDIR), { recursive: true });
  return dataDir;
}

function keepAsPgliteSeed(dataDir: string): void {
  const candidate = join(dataDir, PGLITE_SUBDIR);
  if (pgliteSeed || !existsSync(candidate)) return;
  pgliteSeed = join(workDir, 'pglite-seed');
  cpSync(candidate, pgliteSeed, { recursive: true });
}

/** Env for a service process: its database (scratch PostgreSQL, or PGlite under a fresh DATA_DIR). */
function serviceEnv(definition: ServiceDefinition, port: number, databaseUrl = scratchUrl): Record<string, string> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: workDir,
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    SHUTDOWN_TIMEOUT_MS: '1000',
  };
  if (definition.schema !== null) {
    if (databaseUrl) env.DATABASE_URL = databaseUrl;
    else env.DATA_DIR = freshDataDir(definition.name);
  }
  return env;
}

async function startFromSource(definition: ServiceDefinition, databaseUrl?: string): Promise<ServiceProcess> {
  const port = freePort();
  const env: Record<string, string> = {
    ...serviceEnv(definition, port, databaseUrl ?? scratchUrl),
    // Not under the repository's data/ (the default when DATABASE_URL is set and DATA_DIR is not).
    ...(definition.name === 'file-manager' ? { STORAGE_DIR: mkdtempSync(join(workDir, 'storage-')) } : {}),
  };
  const service = await startProcess([BUN, join('services', definition.name, 'src/index.ts')], { cwd: ROOT, env, port, readyWithinMs: 30_000 });
  const dataDir = env.DATA_DIR;
  if (!dataDir) return service;
  return {
    port,
    async stop() {
      await service.stop();
      keepAsPgliteSeed(dataDir);
    },
  };
}

// ---------------------------------------------------------------------------------------------

const bunVersion = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }).devDependencies.bun;

/** `dockerfile-utils lint --json <file>`; the seven run concurrently (each is a Node start-up). */
const lints = new Map<string, Promise<{ exitCode: number; stdout: string }>>();
function lintDockerfile(path: string) {
  let lint = lints.get(path);
  if (!lint) {
    const proc = Bun.spawn([join(ROOT, 'node_modules/.bin/dockerfile-utils'), 'lint', '--json', path], { cwd: ROOT, stdout: 'pipe', stderr: 'ignore' });
    lint = Promise.all([proc.exited, new Response(proc.stdout).text()]).then(([exitCode, stdout]) => ({ exitCode, stdout }));
    lints.set(path, lint);
  }
  return lint;
}

describe('Dockerfiles', () => {
  beforeAll(() => {
    for (const definition of SERVICES) void lintDockerfile(join(ROOT, 'services', definition.name, 'Dockerfile'));
  });

  it('exist for every service in the catalogue, and only for those', () => {
    const withDockerfile = new Bun.Glob('services/*/Dockerfile').scanSync(ROOT);
    expect([...withDockerfile].map((p) => p.split('/')[1]).sort()).toEqual(SERVICES.map((s) => s.name).sort());
  });

  it('build from a context (.dockerignore) without node_modules, .git, data or tests, but with all they COPY', () => {
    const rules = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line && !line.startsWith('#'))
      .map((line) => ({ exclude: !line.startsWith('!'), glob: new Bun.Glob(line.replace(/^!/, '').replace(/^\/|\/$/g, '')) }));
    // Docker's rule: the last matching line wins, and a path is out when it or any parent directory is.
    const ignored = (path: string) => {
      const parts = path.split('/');
      return parts.some((_, i) => {
        const prefix = parts.slice(0, i + 1).join('/');
        return rules.reduce((out, rule) => (rule.glob.match(prefix) ? rule.exclude : out), false);
      });
    };
    for (const path of ['node_modules', 'services/api-gateway/node_modules', '.git', 'data', 'tests', 'bench', '.env']) {
      expect({ path, ignored: ignored(path) }).toEqual({ path, ignored: true });
    }
    const copied = new Set<string>();
    for (const definition of SERVICES) {
      for (const copy of dockerfileOf(definition).build.instructions.filter((i): i is Copy => i instanceof Copy && !i.getFromFlag())) {
        for (const source of copy.getArguments().slice(0, -1)) copied.add(source.getValue());
      }
    }
    expect([...copied].sort()).toEqual(['bun.lock', 'db', 'package.json', 'patches', 'services', 'shared', 'tsconfig.json']);
    const needed = ['package.json', 'bun.lock', 'tsconfig.json', 'patches/apply-patches.mjs', ...['shared/**/*.ts', 'services/*/src/**/*.ts', 'db/schema/*.ts', 'db/migrations/**/*'].flatMap((pattern) => [...new Bun.Glob(pattern).scanSync(ROOT)])];
    for (const path of needed) expect({ path, ignored: ignored(path) }).toEqual({ path, ignored: false });
  });

  for (const definition of SERVICES) {
    describe(definition.name, () => {
      const dockerfile = dockerfileOf(definition);

      it('passes dockerfile-utils lint with no problems reported', async () => {
        const lint = await lintDockerfile(dockerfile.path);
        expect(JSON.parse(lint.stdout)).toEqual([]);
        expect(lint.exitCode).toBe(0);
      });

      it(`uses one port, ${definition.port}: the definition's, ENV PORT, EXPOSE $PORT and the HEALTHCHECK's $PORT`, () => {
        expect(dockerfile.env.PORT).toBe(String(definition.port));
        expect(dockerfile.exposeRaw).toEqual(['${PORT}']);
        expect(dockerfile.exposed).toEqual([String(definition.port)]);
        const probe = dockerfile.healthcheck.command.join(' ');
        expect(probe).toContain("'http://127.0.0.1:'+process.env.PORT+'/ready'");
        expect(probe).not.toMatch(/\b80\d\d\b/);
      });

      it(`builds on oven/bun:${bunVersion} and runs on oven/bun:${bunVersion}-slim as the non-root user bun`, () => {
        expect(dockerfile.build.image).toBe(`oven/bun:${bunVersion}`);
        expect(dockerfile.runtime.image).toBe(`oven/bun:${bunVersion}-slim`);
        expect(dockerfile.user).toBe('bun');
        expect(dockerfile.runtime.instructions.findLastIndex((i) => i.getKeyword() === 'USER')).toBeLessThan(
          dockerfile.runtime.instructions.findIndex((i) => i.getKeyword() === 'CMD'),
        );
      });

      it('bundles its own entrypoint for Bun with PGlite left out', () => {
        const argv = bundleCommand(dockerfile);
        expect(argv[2]).toBe(`services/${definition.name}/src/index.ts`);
        expect(argv).toContain('--target=bun');
        expect(optionValues(argv, '--external').sort()).toEqual([...PGLITE_EXTERNALS].sort());
        expect(argv).toContain('--bytecode');
        expect(argv).toContain('--format=cjs');
        expect(optionValues(argv, '--outdir')).toHaveLength(1);
      });

      it(`ships only the bundle${definition.schema ? ` and db/migrations/${definition.schema}, where MIGRATIONS_DIR points` : ''} (plus its own data files or a package's static files, each named by an ENV)`, () => {
        const outdir = posix.resolve(buildWorkdir(dockerfile), optionValues(bundleCommand(dockerfile), '--outdir')[0]!);
        const copies = copiesFromBuild(dockerfile);
        const sources = copies.map(([src]) => src);
        const migrations = posix.join(buildWorkdir(dockerfile), 'db/migrations', definition.schema ?? '');
        const expected = definition.schema ? [outdir, migrations] : [outdir];
        // Data files (e.g. the registry's initial catalogue) come from the service's own folder, never its sources;
        // a package's static files (e.g. the gateway's docs UI) are copied file by file into a folder that is not node_modules.
        const ownData = posix.join(buildWorkdir(dockerfile), 'services', definition.name) + '/';
        const packages = posix.join(buildWorkdir(dockerfile), 'node_modules') + '/';
        const isOwnData = (src: string) => src.startsWith(ownData) && !src.startsWith(`${ownData}src/`) && src.endsWith('.json');
        const isPackageAsset = (src: string, dest: string) =>
          src.startsWith(packages) && /\.(js|css|png)$|\/(LICENSE|NOTICE)$/.test(src) && dest.endsWith('/') && !dest.includes('node_modules');
        const dataCopies = copies.slice(expected.length);
        for (const [src, dest] of dataCopies) {
          expect({ src, allowed: isOwnData(src) || isPackageAsset(src, dest) }).toEqual({ src, allowed: true });
          expect(Object.values(dockerfile.env)).toContain(posix.resolve(dockerfile.workdir, dest));
        }
        expect(sources.slice(0, expected.length)).toEqual(expected);
        // Every COPY of the runtime stage takes from the build stage, so `copies` lists all it holds.
        const runtimeCopies = dockerfile.runtime.instructions.filter((i): i is Copy => i instanceof Copy);
        expect(runtimeCopies.filter((copy) => copy.getFromFlag()?.getValue() !== dockerfile.build.name)).toEqual([]);
        if (definition.schema) {
          const migrationsDest = posix.resolve(dockerfile.workdir, copies[1]![1]);
          expect(posix.join(dockerfile.env.MIGRATIONS_DIR ?? '', definition.schema)).toBe(migrationsDest);
        } else {
          expect(dockerfile.env.MIGRATIONS_DIR).toBeUndefined();
        }
        expect(posix.resolve(dockerfile.workdir, copies[0]![1])).toBe(dockerfile.workdir);
        expect(dockerfile.cmd).toEqual(['bun', '--no-install', 'index.js']);
      });

      it('HEALTHCHECK is exec-form `bun` (no curl in the image) and gives up before Docker does', () => {
        const [program, flag, script] = dockerfile.healthcheck.command;
        expect(program).toBe('bun');
        expect(flag).toBe('-e');
        expect(dockerfile.healthcheck.command).toHaveLength(3);
        const fetchTimeout = Number(/AbortSignal\.timeout\((\d+)\)/.exec(script ?? '')?.[1]);
        expect(fetchTimeout).toBeGreaterThan(0);
        expect(fetchTimeout).toBeLessThan(dockerfile.healthcheck.timeoutMs);
        for (const flagName of ['interval', 'timeout', 'start-period', 'retries']) expect(dockerfile.healthcheck.flags[flagName]).toBeDefined();
      });
    });
  }
});

// ---------------------------------------------------------------------------------------------

/** Builds a service's bundle with the Dockerfile's own RUN line (output redirected to a temp dir). */
const builds = new Map<string, Promise<{ buildRoot: string; outfile: string }>>();
function buildAsDockerfileDoes(definition: ServiceDefinition, dockerfile: ParsedDockerfile) {
  let build = builds.get(definition.name);
  if (!build) {
    build = (async () => {
      const buildRoot = join(workDir, `${definition.name}-build`);
      const argv = bundleCommand(dockerfile);
      const at = argv.indexOf('--outdir');
      const outdir = join(buildRoot, argv[at + 1]!);
      argv[at + 1] = outdir;
      const outfile = join(outdir, 'index.js');
      argv[0] = BUN;
      const proc = Bun.spawn(argv, { cwd: ROOT, stdout: 'pipe', stderr: 'pipe' });
      const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
      if (code !== 0) throw new Error(`bun build failed (${code}):\n${out}\n${err}`);
      return { buildRoot, outfile };
    })();
    builds.set(definition.name, build);
  }
  return build;
}

const BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
const isBuiltin = (path: string) => BUILTINS.has(path) || path === 'bun' || path.startsWith('bun:');

describe('Dockerfile bundles', () => {
  for (const definition of SERVICES) {
    const dockerfile = dockerfileOf(definition);

    it(`${definition.name}: the bundle imports only Bun and Node built-ins at load time (PGlite only lazily)`, async () => {
      const { outfile } = await buildAsDockerfileDoes(definition, dockerfile);
      const imports = new Bun.Transpiler({ loader: 'js' }).scanImports(await Bun.file(outfile).text());
      const eager = imports.filter((i) => i.kind !== 'dynamic-import' && !isBuiltin(i.path));
      const lazy = imports.filter((i) => i.kind === 'dynamic-import' && !isBuiltin(i.path));
      expect(eager).toEqual([]);
      for (const i of lazy) expect(PGLITE_EXTERNALS).toContain(i.path);
    });

    const needsPostgres = definition.schema !== null && !ADMIN_DATABASE_URL;
    it.skipIf(needsPostgres)(
      `${definition.name}: the runtime layout (bundle, COPYs, ENV, CMD; no node_modules) serves /ready and passes its HEALTHCHECK`,
      async () => {
        const { buildRoot } = await buildAsDockerfileDoes(definition, dockerfile);
        const rootfs = join(workDir, `${definition.name}-rootfs`);
        for (const [src, dest] of copiesFromBuild(dockerfile)) {
          const inBuild = relative(buildWorkdir(dockerfile), src);
          const from = existsSync(join(buildRoot, inBuild)) ? join(buildRoot, inBuild) : join(ROOT, inBuild);
          // As Docker does: a file copied to a destination ending in `/` lands inside that folder.
          const folder = join(rootfs, posix.resolve(dockerfile.workdir, dest));
          const target = dest.endsWith('/') && statSync(from).isFile() ? join(folder, basename(src)) : folder;
          mkdirSync(dirname(target), { recursive: true });
          cpSync(from, target, { recursive: true });
        }
        const appDir = join(rootfs, dockerfile.workdir);
        let dir = appDir;
        while (dir !== dirname(dir)) {
          expect(existsSync(join(dir, 'node_modules'))).toBe(false);
          dir = dirname(dir);
        }
        const imageEnv = Object.fromEntries(Object.entries(dockerfile.env).map(([k, v]) => [k, v.startsWith('/') ? join(rootfs, v) : v]));
        const port = freePort();
        const [program, ...args] = dockerfile.cmd;
        const service = await startProcess([program === 'bun' ? BUN : program!, ...args], {
          cwd: appDir,
          env: { ...imageEnv, ...serviceEnv(definition, port) },
          port,
          readyWithinMs: 15_000,
        });
        try {
          expect(await runHealthcheck(dockerfile.healthcheck, port)).toBe(0);
        } finally {
          await service.stop();
        }
      },
    );
  }
});

// ---------------------------------------------------------------------------------------------

describe('HEALTHCHECK against the running service', () => {
  for (const definition of SERVICES) {
    describe(definition.name, () => {
      const { healthcheck } = dockerfileOf(definition);
      let service: ServiceProcess | undefined;
      beforeAll(async () => {
        service = await startFromSource(definition);
      }, 40_000);
      afterAll(() => service?.stop(), 10_000);

      it(`${definition.name} HEALTHCHECK exits 0 while the service is ready`, async () => {
        expect(await runHealthcheck(healthcheck, service!.port)).toBe(0);
      });

      it(`${definition.name} HEALTHCHECK exits 1 once the service is stopped`, async () => {
        await service!.stop();
        expect(await runHealthcheck(healthcheck, service!.port)).toBe(1);
      });
    });
  }

  describe.skipIf(!ADMIN_DATABASE_URL)('with the database behind a forwarder', () => {
    for (const definition of SERVICES.filter((s) => s.schema !== null)) {
      it(`${definition.name} HEALTHCHECK exits 1 once its database is unreachable`, async () => {
        const admin = new URL(ADMIN_DATABASE_URL!);
        const forwarder = startTcpForwarder({ hostname: admin.hostname, port: Number(admin.port || 5432) });
        const viaForwarder = new URL(scratchUrl!);
        viaForwarder.hostname = '127.0.0.1';
        viaForwarder.port = String(forwarder.port);
        let service: ServiceProcess | undefined;
        try {
          service = await startFromSource(definition, viaForwarder.toString());
          expect(await runHealthcheck(healthcheckOf(definition), service.port)).toBe(0);
          forwarder.close();
          expect(await healthcheckUntilFailing(healthcheckOf(definition), service.port, 8000)).toBe(1);
        } finally {
          forwarder.close();
          await service?.stop();
        }
      });
    }
  });
});

function healthcheckOf(definition: ServiceDefinition): HealthcheckSpec {
  return dockerfileOf(definition).healthcheck;
}
