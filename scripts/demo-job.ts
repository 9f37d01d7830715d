/**
 * `npm run demo:job`: one job through a running demo (`npm run demo`), the way a client would do it
 * through the gateway: sign in as `demo`, upload the demo VCFs (validated while they stream), submit one
 * federated job to the Cloudgene and the WES fake, follow it (polling the job, and the live notification
 * stream beside it), download every result file and check it against the sha256 the platform reports.
 * Prints a timeline in seconds; exits 0 when all of that worked, 1 with the reason otherwise.
 *
 * Variables: DEMO_DATA_DIR (./data/demo: where the demo left demo.json, naming its gateway and VCFs),
 * DEMO_GATEWAY_URL (overrides the manifest's gateway), DEMO_DOWNLOAD_DIR (<DEMO_DATA_DIR>/downloads),
 * DEMO_JOB_TIMEOUT_SECONDS (120).
 */
import { ConfigError } from '@shared/config.ts';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { demoApi, DemoApiError } from './demo/demo-api.ts';
import { DEMO_REQUEST, DEMO_SERVICES, DEMO_USER, demoJobSettings, DemoManifestSchema, MANIFEST_NAME, type DemoJobSettings, type DemoManifest } from './demo/demo-settings.ts';
import { followNotifications } from './demo/demo-stream.ts';
import { demoVcfSet, type DemoVcf } from './demo/demo-vcfs.ts';

const TERMINAL = new Set(['completed', 'failed', 'cancelled', 'expired', 'partial']);
const POLL_MS = 300;

const started = performance.now();
const elapsed = () => (performance.now() - started) / 1000;
const step = (line: string) => process.stdout.write(`[${elapsed().toFixed(1).padStart(5)} s] ${line}\n`);

/** A failure demo:job reports as its reason (no stack trace). */
class DemoJobError extends Error {
  override name = 'DemoJobError';
}

let phase = 'starting';

async function main(settings: DemoJobSettings): Promise<void> {
  const manifest = await readManifest(settings.DEMO_DATA_DIR);
  const gatewayUrl = settings.DEMO_GATEWAY_URL ?? manifest?.gatewayUrl ?? 'http://127.0.0.1:8000';
  const api = demoApi(gatewayUrl);
  const inputs = await demoInputs(manifest);
  const targets = manifest?.targets ?? [
    { serviceId: DEMO_SERVICES.cloudgene, panel: DEMO_REQUEST.panel },
    { serviceId: DEMO_SERVICES.wes, panel: DEMO_REQUEST.panel },
  ];

  phase = 'reaching the gateway';
  const health = await api.json('check the gateway', 'GET', '/health', { expect: [200, 503] });
  step(`gateway ${api.baseUrl} answers: platform ${health.status}`);

  phase = 'signing in';
  const session = await api.json('sign in', 'POST', '/api/auth/login', { json: { login: DEMO_USER.username, password: DEMO_USER.password } });
  const token = session.accessToken as string;
  step(`signed in as ${session.user.username} (${(session.user.roles as string[]).join(', ')})`);

  phase = 'uploading';
  const fileIds: string[] = [];
  for (const input of inputs) {
    const form = new FormData();
    form.set('build', manifest?.build ?? DEMO_REQUEST.build);
    form.set('file', new Blob([input.bytes]), input.name);
    const stored = await api.json(`upload ${input.name}`, 'POST', '/api/files', { token, body: form, expect: [201] });
    const report = stored.validation;
    if (!report?.ok) {
      const errors = (report?.errors ?? []).map((e: { code: string; message: string }) => `${e.code}: ${e.message}`).join('; ');
      throw new DemoJobError(`${input.name} did not pass validation: ${errors || 'no report'}`);
    }
    const stats = report.stats;
    step(`uploaded ${input.name} → ${stored.id}: valid (${stats.samples} samples, ${stats.variants} variants, chr ${stats.chromosome}, ${stats.buildGuess}), sha256 ${short(stored.sha256)}`);
    fileIds.push(stored.id);
  }

  phase = 'opening the notification stream';
  const notified: string[] = [];
  const stream = followNotifications(
    api,
    token,
    (n) => {
      notified.push(n.type);
      step(`notification: ${n.title}`);
    },
    (message) => step(`(the notification stream stopped: ${message})`),
  );

  try {
    phase = 'submitting';
    const created = await api.json('submit the job', 'POST', '/api/jobs', {
      token,
      json: {
        name: `demo cohort ${new Date().toISOString().slice(11, 19)}`,
        inputFileIds: fileIds,
        build: manifest?.build ?? DEMO_REQUEST.build,
        population: manifest?.population ?? DEMO_REQUEST.population,
        targets,
      },
      expect: [202],
    });
    const jobId = created.id as string;
    step(`submitted job ${jobId} to ${targets.map((t) => `${t.serviceId} (${t.panel})`).join(' and ')}`);

    phase = `following job ${jobId}`;
    const job = await follow(api, token, jobId);
    if (job.state !== 'completed') {
      const reasons = [job, ...job.children]
        .filter((j: any) => j.error)
        .map((j: any) => `${j.service?.slug ?? 'job'}: ${j.error.code}${j.error.message ? ` (${j.error.message})` : ''}${j.error.hint ? ` — ${j.error.hint}` : ''}`);
      throw new DemoJobError(`job ${jobId} ended ${job.state}${reasons.length ? `: ${reasons.join('; ')}` : ''}`);
    }

    phase = 'downloading results';
    const results = (await api.json('list the results', 'GET', `/api/jobs/${jobId}/results`, { token })).items as any[];
    const missing = results.filter((r) => r.state !== 'stored' || !r.fileId);
    if (results.length === 0 || missing.length > 0) {
      throw new DemoJobError(`results not all in platform storage: ${missing.map((r) => `${r.service}/${r.name} ${r.state}${r.error ? ` (${r.error})` : ''}`).join(', ') || 'none listed'}`);
    }
    const servers = new Set(results.map((r) => r.service));
    for (const target of targets) if (!servers.has(target.serviceId)) throw new DemoJobError(`no results from ${target.serviceId}`);
    const { password } = await api.json('read the result password', 'GET', `/api/jobs/${jobId}/password`, { token });
    const downloadDir = join(settings.DEMO_DOWNLOAD_DIR ?? join(settings.DEMO_DATA_DIR, 'downloads'), jobId);
    let bytes = 0;
    for (const result of results) {
      const size = await download(api, token, result, downloadDir);
      bytes += size;
    }
    step(`${results.length} result files (${kib(bytes)}) downloaded to ${downloadDir}, every sha256 verified`);
    step(`the result zips open with the job's password: ${password}`);

    // The platform tells the user too: live on the stream, and in the inbox for anyone who was not listening.
    phase = 'looking for the job.completed notification';
    for (let i = 0; i < 20 && !notified.includes('job.completed'); i++) await Bun.sleep(100);
    if (!notified.includes('job.completed')) {
      const inbox = (await api.json('read the inbox', 'GET', '/api/notifications?limit=20', { token })).items as any[];
      const mine = inbox.find((n) => n.type === 'job.completed' && n.data?.jobId === jobId);
      step(mine ? `notification (inbox): ${mine.title}` : '(no job.completed notification yet)');
    }
    step(`done: job ${jobId} completed on ${targets.length} servers, results downloaded and verified in ${elapsed().toFixed(1)} s`);
  } finally {
    stream.stop();
  }
}

/** Polls the job until it ends, printing every change of the parent's or a child's state. */
async function follow(api: ReturnType<typeof demoApi>, token: string, jobId: string): Promise<any> {
  let last = '';
  for (;;) {
    const job = await api.json('read the job', 'GET', `/api/jobs/${jobId}`, { token });
    const children = (job.children as any[]).map((c) => `${c.service?.slug ?? '?'} ${c.state}${c.externalState ? ` (${c.externalState})` : ''}`);
    const line = `job ${job.state}${children.length ? ` — ${children.join(', ')}` : ''}`;
    if (line !== last) step(line);
    last = line;
    if (TERMINAL.has(job.state)) return job;
    await Bun.sleep(POLL_MS);
  }
}

/** Streams one stored result to disk while hashing it; fails unless size and sha256 match what the platform reports. */
async function download(api: ReturnType<typeof demoApi>, token: string, result: any, dir: string): Promise<number> {
  const meta = await api.json(`describe result ${result.name}`, 'GET', `/api/files/${result.fileId}`, { token });
  const res = await api.call(`download ${result.name}`, 'GET', `/api/files/${result.fileId}/content`, { token, expect: [200] });
  const target = join(dir, result.service ?? 'job', basename(String(result.name)));
  await mkdir(join(target, '..'), { recursive: true });
  const hash = createHash('sha256');
  const out = createWriteStream(target);
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    hash.update(chunk);
    size += chunk.length;
    if (!out.write(chunk)) await new Promise((resolve) => out.once('drain', resolve));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  const sha256 = hash.digest('hex');
  if (sha256 !== meta.sha256) throw new DemoJobError(`${result.service}/${result.name}: downloaded sha256 ${sha256} but the platform reports ${meta.sha256}`);
  if (size !== meta.sizeBytes) throw new DemoJobError(`${result.service}/${result.name}: downloaded ${size} bytes but the platform reports ${meta.sizeBytes}`);
  step(`downloaded ${result.service}/${result.name} (${kib(size)}), sha256 ${short(sha256)} matches`);
  return size;
}

async function readManifest(dataDir: string): Promise<DemoManifest | null> {
  const path = join(dataDir, MANIFEST_NAME);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return null;
  }
  const parsed = DemoManifestSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new DemoJobError(`${path} is not a demo manifest; restart the demo (npm run demo)`);
  return parsed.data;
}

/** The VCFs the demo wrote (as named in its manifest), or the same cohort generated here when there is no manifest. */
async function demoInputs(manifest: DemoManifest | null): Promise<DemoVcf[]> {
  if (!manifest) return demoVcfSet();
  return Promise.all(
    manifest.files.map(async (path) => {
      const file = Bun.file(path);
      if (!(await file.exists())) throw new DemoJobError(`${path} (named in the demo manifest) is missing; restart the demo (npm run demo)`);
      return { name: basename(path), bytes: new Uint8Array(await file.arrayBuffer()) };
    }),
  );
}

const short = (sha: string) => `${sha.slice(0, 12)}…`;
const kib = (n: number) => (n < 1024 ? `${n} B` : `${(n / 1024).toFixed(1)} KiB`);

let settings: DemoJobSettings;
try {
  settings = demoJobSettings(process.env);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`demo:job: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}
const deadline = setTimeout(() => {
  process.stderr.write(`demo:job FAILED: timed out after ${settings.DEMO_JOB_TIMEOUT_SECONDS} s while ${phase}\n`);
  process.exit(1);
}, settings.DEMO_JOB_TIMEOUT_SECONDS * 1000);
try {
  await main(settings);
  clearTimeout(deadline);
  process.exit(0);
} catch (err) {
  const message = err instanceof DemoJobError || err instanceof DemoApiError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
  process.stderr.write(`demo:job FAILED while ${phase}: ${message}\n`);
  process.exit(1);
}
