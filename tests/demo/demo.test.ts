/**
 * `npm run demo` and `npm run demo:job` for real: the demo script as its own process on a free port
 * range with a temporary data directory, the job script against it, then SIGTERM. The demo always
 * uses the embedded PGlite and in-memory KV (it ignores DATABASE_URL and REDIS_URL), so this file
 * runs the same with and without them; PGlite makes the start cost a few seconds and ~1 GiB.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import type { Subprocess } from 'bun';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dir, '../..');

/**
 * A base port with `count` consecutive free loopback ports, below Linux's ephemeral range (32768+):
 * ports handed out for port-0 servers and outgoing connections could take one of ours between this
 * check and the demo's start, which PGlite's start-up makes seconds long.
 */
function freeRange(count: number, avoid: Set<number> = new Set()): number {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 12_000 + Math.floor(Math.random() * 20_000);
    const ports = Array.from({ length: count }, (_, i) => base + i);
    if (ports.some((p) => avoid.has(p))) continue;
    const held: { stop(force?: boolean): void }[] = [];
    try {
      for (const port of ports) held.push(Bun.listen({ hostname: '127.0.0.1', port, socket: { data() {} } }));
      return base;
    } catch {
      // taken: try another range
    } finally {
      for (const h of held) h.stop(true);
    }
  }
  throw new Error(`no ${count} consecutive free ports found`);
}

function portFree(port: number): boolean {
  try {
    Bun.listen({ hostname: '127.0.0.1', port, socket: { data() {} } }).stop(true);
    return true;
  } catch {
    return false;
  }
}

/** Collects a process's output as it comes, so a test can wait for a line. */
function collect(stream: ReadableStream<Uint8Array>) {
  const state = { text: '' };
  const done = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) state.text += decoder.decode(chunk, { stream: true });
  })();
  return { state, done };
}

async function waitFor(what: string, check: () => boolean, proc: Subprocess, output: () => string, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (proc.exitCode !== null) throw new Error(`the demo exited (${proc.exitCode}) before ${what}:\n${output()}`);
    if (Date.now() > until) throw new Error(`no ${what} after ${timeoutMs} ms:\n${output()}`);
    await Bun.sleep(100);
  }
}

/** Runs `bun <script>` to its end with extra variables; answers exit code and output. */
async function runScript(script: string, env: Record<string, string>, timeoutMs = 60_000) {
  const proc = Bun.spawn([process.execPath, script], { cwd: ROOT, env: { ...process.env, ...env }, stdout: 'pipe', stderr: 'pipe' });
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

let tmp: string;
let dataDir: string;
let basePort: number;
let cloudgenePort: number;
let wesPort: number;
let demo: Subprocess<'ignore', 'pipe', 'pipe'>;
let out: ReturnType<typeof collect>;
let err: ReturnType<typeof collect>;
const output = () => `${out.state.text}\n--- stderr ---\n${err.state.text}`;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'fip-demo-test-'));
  dataDir = join(tmp, 'demo');
  // What a previous demo run left behind (marked as the demo's): the new run must start without it.
  await mkdir(dataDir, { recursive: true });
  await writeFile(join(dataDir, '.fip-demo'), '');
  await writeFile(join(dataDir, 'stale-from-last-run.txt'), 'old catalogue pointing at old ports');
  basePort = freeRange(7);
  const platform = new Set(Array.from({ length: 7 }, (_, i) => basePort + i));
  cloudgenePort = freeRange(2, platform);
  wesPort = cloudgenePort + 1;
  demo = Bun.spawn([process.execPath, 'scripts/demo.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      DEMO_BASE_PORT: String(basePort),
      DEMO_CLOUDGENE_PORT: String(cloudgenePort),
      DEMO_WES_PORT: String(wesPort),
      DEMO_DATA_DIR: dataDir,
    },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  out = collect(demo.stdout);
  err = collect(demo.stderr);
  await waitFor('"Demo ready"', () => out.state.text.includes('Demo ready in'), demo, output, 110_000);
}, 120_000);

afterAll(async () => {
  if (demo && demo.exitCode === null) {
    demo.kill('SIGKILL');
    await demo.exited;
  }
  if (tmp) await rm(tmp, { recursive: true, force: true });
}, 30_000);

describe('npm run demo', () => {
  it('prints the platform and fake URLs, the demo user and curl commands with real values, on a fresh data directory', async () => {
    const text = out.state.text;
    const gateway = `http://127.0.0.1:${basePort}`;
    expect(text).toContain(`api-gateway       ${gateway}`);
    expect(text).toContain(`monitoring        http://127.0.0.1:${basePort + 6}`);
    expect(text).toContain(`demo-cloudgene    http://127.0.0.1:${cloudgenePort}`);
    expect(text).toContain(`demo-wes          http://127.0.0.1:${wesPort}/ga4gh/wes/v1`);
    expect(text).toContain('Demo user: demo / Genotype-Trial-42');
    expect(text).toContain('embedded PGlite');
    expect(text).toContain(`API=${gateway}/api`);
    expect(text).toContain(`-F file=@${join(dataDir, 'vcf', 'demo-cohort.chr20.vcf.gz')}`);
    expect(text).toContain('npm run demo:job');
    for (const chromosome of ['20', '21', '22']) expect(existsSync(join(dataDir, 'vcf', `demo-cohort.chr${chromosome}.vcf.gz`))).toBe(true);
    expect(existsSync(join(dataDir, 'stale-from-last-run.txt'))).toBe(false);

    // The catalogue holds the two fakes, and the demo user can sign in and has a token stored for each.
    const login = await fetch(`${gateway}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ login: 'demo', password: 'Genotype-Trial-42' }),
    });
    expect(login.status).toBe(200);
    const { accessToken, user } = (await login.json()) as any;
    expect(user.roles).toEqual(['researcher']);
    const auth = { authorization: `Bearer ${accessToken}` };
    const services = (await (await fetch(`${gateway}/api/services`, { headers: auth })).json()) as any;
    expect(services.items.map((s: any) => s.slug).sort()).toEqual(['demo-cloudgene', 'demo-wes']);
    expect(services.items.map((s: any) => s.baseUrl).sort()).toEqual([`http://127.0.0.1:${cloudgenePort}`, `http://127.0.0.1:${wesPort}/ga4gh/wes/v1`]);
    // The registry probes both with the operator tokens the demo configured, and finds them healthy.
    expect(services.items.map((s: any) => s.health.status)).toEqual(['healthy', 'healthy']);
    expect(text).toMatch(/demo-cloudgene .* Cloudgene 3 \/ imputationserver2, healthy/);
    const credentials = (await (await fetch(`${gateway}/api/users/me/credentials`, { headers: auth })).json()) as any;
    const stored = (credentials.items ?? credentials).map((c: any) => `${c.serviceId}:${c.type}`).sort();
    expect(stored).toEqual(['demo-cloudgene:cloudgene-token', 'demo-wes:wes-bearer']);
  });

  it('refuses a second demo on ports already in use, naming the variable to change', async () => {
    const second = await runScript('scripts/demo.ts', {
      DEMO_BASE_PORT: String(basePort),
      DEMO_CLOUDGENE_PORT: String(cloudgenePort),
      DEMO_WES_PORT: String(wesPort),
      DEMO_DATA_DIR: join(tmp, 'second'),
    });
    expect(second.code).toBe(2);
    expect(second.stderr).toContain('already in use');
    expect(second.stderr).toContain('DEMO_BASE_PORT');
    expect(existsSync(join(tmp, 'second'))).toBe(false);
  }, 30_000);

  it('refuses to wipe the data directory of a demo that is still running', async () => {
    const free = freeRange(9, new Set([...Array.from({ length: 7 }, (_, i) => basePort + i), cloudgenePort, wesPort]));
    const run = await runScript('scripts/demo.ts', {
      DEMO_BASE_PORT: String(free),
      DEMO_CLOUDGENE_PORT: String(free + 7),
      DEMO_WES_PORT: String(free + 8),
      DEMO_DATA_DIR: dataDir,
    });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`another demo (process ${demo.pid}) is using ${dataDir}`);
    expect(existsSync(join(dataDir, 'demo.json'))).toBe(true);
  }, 30_000);

  it('refuses to wipe a data directory it did not make', async () => {
    const foreign = join(tmp, 'foreign');
    await mkdir(foreign);
    await writeFile(join(foreign, 'precious.txt'), 'not the demo’s');
    const free = freeRange(9, new Set([...Array.from({ length: 7 }, (_, i) => basePort + i), cloudgenePort, wesPort]));
    const run = await runScript('scripts/demo.ts', {
      DEMO_BASE_PORT: String(free),
      DEMO_CLOUDGENE_PORT: String(free + 7),
      DEMO_WES_PORT: String(free + 8),
      DEMO_DATA_DIR: foreign,
    });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('was not made by the demo');
    expect(await readdir(foreign)).toEqual(['precious.txt']);
  }, 30_000);
});

describe('npm run demo:job', () => {
  it('takes one federated job from upload to downloaded, checksum-verified results and exits 0', async () => {
    const run = await runScript('scripts/demo-job.ts', { DEMO_DATA_DIR: dataDir }, 90_000);
    const all = `${run.stdout}\n${run.stderr}`;
    expect(run.code, all).toBe(0);
    expect(run.stdout).toContain('signed in as demo (researcher)');
    for (const chromosome of ['20', '21', '22']) expect(run.stdout).toMatch(new RegExp(`uploaded demo-cohort\\.chr${chromosome}\\.vcf\\.gz → \\S+: valid \\(20 samples`));
    expect(run.stdout).toMatch(/submitted job \S+ to demo-cloudgene \(hapmap-2\) and demo-wes \(hapmap-2\)/);
    expect(run.stdout).toMatch(/job completed — demo-cloudgene completed \(4\), demo-wes completed \(COMPLETE\)/);
    for (const name of ['demo-cloudgene/chr_20.zip', 'demo-cloudgene/chr_22.zip', 'demo-cloudgene/qc_report.txt', 'demo-wes/chr20.dose.vcf.gz']) {
      expect(run.stdout).toMatch(new RegExp(`downloaded ${name.replace(/\./g, '\\.')} \\(.+\\), sha256 [0-9a-f]{12}… matches`));
    }
    expect(run.stdout).toContain('every sha256 verified');
    expect(run.stdout).toMatch(/notification.*: Job .* completed/);
    expect(run.stdout).toMatch(/done: job \S+ completed on 2 servers/);

    // The files are on disk where it said, the zips as real zips.
    const jobId = /submitted job (\S+)/.exec(run.stdout)![1]!;
    const zip = Bun.file(join(dataDir, 'downloads', jobId, 'demo-cloudgene', 'chr_20.zip'));
    expect(await zip.exists()).toBe(true);
    expect(new Uint8Array(await zip.arrayBuffer()).slice(0, 2)).toEqual(new Uint8Array([0x50, 0x4b]));
    expect(await Bun.file(join(dataDir, 'downloads', jobId, 'demo-wes', 'chr20.dose.vcf.gz')).exists()).toBe(true);
  }, 100_000);

  it('fails with exit 1 and says why when no demo answers', async () => {
    const nothing = freeRange(1, new Set([...Array.from({ length: 7 }, (_, i) => basePort + i), cloudgenePort, wesPort]));
    const run = await runScript('scripts/demo-job.ts', { DEMO_DATA_DIR: join(tmp, 'none'), DEMO_GATEWAY_URL: `http://127.0.0.1:${nothing}` });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('demo:job FAILED while reaching the gateway');
    expect(run.stderr).toContain('Is the demo running (npm run demo)?');
  }, 30_000);
});

describe('stopping the demo', () => {
  it('stops everything on SIGTERM and exits 0, leaving its ports free', async () => {
    demo.kill('SIGTERM');
    const code = await demo.exited;
    await Promise.all([out.done, err.done]);
    expect(code, output()).toBe(0);
    expect(out.state.text).toContain('demo: stopped');
    for (const port of [basePort, basePort + 3, basePort + 6, cloudgenePort, wesPort]) expect(portFree(port)).toBe(true);
  }, 30_000);
});
