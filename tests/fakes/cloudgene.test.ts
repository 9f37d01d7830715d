import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { DEFAULT_QC_FAILURE_MESSAGE, makeFakeJwt, startCloudgeneFake, type CloudgeneFake } from './cloudgene.ts';

const ALICE = makeFakeJwt('alice');
const BOB = makeFakeJwt('bob');
const ALICE_LOGIN = makeFakeJwt('alice', { api: false, expDays: 1 });

// Response bodies are asserted structurally; `any` keeps the assertions short.
type Json = Record<string, any>;

let fake: CloudgeneFake;
let clockMs = Date.UTC(2025, 0, 15, 10, 30, 0, 123);

beforeAll(async () => {
  fake = await startCloudgeneFake({
    tokens: { [ALICE]: 'alice', [BOB]: 'bob' },
    loginTokens: { [ALICE_LOGIN]: 'alice' },
    now: () => clockMs,
    downloadsPerFile: 3,
  });
});
afterAll(async () => {
  await fake.stop();
});
beforeEach(() => {
  fake.control.clearFaults();
  fake.control.clearRequests();
  fake.control.maintenance = false;
  fake.control.qcFailure = false;
  fake.control.progression = 'perPoll';
  fake.control.maxActiveJobs = 2;
  // Cancel leftovers so the per-user active limit does not leak between tests.
  for (const j of fake.control.jobs.values()) if ([1, 2, 3].includes(j.state)) fake.control.advance(j.id, 6);
});

const auth = (token = ALICE): Record<string, string> => ({ 'X-Auth-Token': token });
async function getJson(path: string, token: string | null = ALICE): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${fake.url}${path}`, { headers: token ? auth(token) : {} });
  return { status: res.status, body: (await res.json()) as Json };
}
function vcfForm(extra: Record<string, string> = {}, nFiles = 1): FormData {
  const fd = new FormData();
  for (let i = 0; i < nFiles; i++)
    fd.append('files', new File([new Uint8Array([0x1f, 0x8b, 8, 0, i])], `chr${20 + i}.vcf.gz`));
  fd.append('refpanel', 'apps@hapmap-2@2.0.0');
  fd.append('population', 'eur');
  for (const [k, v] of Object.entries(extra)) fd.append(k, v);
  return fd;
}
async function submit(fd: FormData, token = ALICE, app = 'imputationserver2'): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${fake.url}/api/v2/jobs/submit/${app}`, { method: 'POST', headers: auth(token), body: fd });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text) as Json };
}

describe('auth + server info', () => {
  test('Authorization: Bearer is rejected with 401; X-Auth-Token works', async () => {
    const bearer = await fetch(`${fake.url}/api/v2/jobs`, { headers: { Authorization: `Bearer ${ALICE}` } });
    expect(bearer.status).toBe(401);
    expect(((await bearer.json()) as Json).success).toBe(false);
    const ok = await getJson('/api/v2/jobs');
    expect(ok.status).toBe(200);
    const unknown = await getJson('/api/v2/jobs', makeFakeJwt('mallory'));
    expect(unknown.status).toBe(401);
    const rec = fake.control.requestsTo('/api/v2/jobs', 'GET')[0]!;
    expect(rec.headers.authorization).toBe(`Bearer ${ALICE}`);
    expect(rec.headers['x-auth-token']).toBeUndefined();
  });

  test('tokens/verify: valid and invalid (both HTTP 200)', async () => {
    const fd = new URLSearchParams({ token: ALICE });
    const res = await fetch(`${fake.url}/api/v2/tokens/verify`, { method: 'POST', body: fd });
    const body = (await res.json()) as Json;
    expect(res.status).toBe(200);
    expect(body.valid).toBe(true);
    expect(body.username).toBe('alice');
    expect(typeof body.expire).toBe('string');
    expect(Number.isNaN(Date.parse(body.expire))).toBe(false);
    const bad = await fetch(`${fake.url}/api/v2/tokens/verify`, {
      method: 'POST',
      body: new URLSearchParams({ token: 'nope' }),
    });
    expect(bad.status).toBe(200);
    expect((await bad.json()) as Json).toEqual({ valid: false, message: 'Invalid API Token.' });
    expect(fake.control.requests[0]!.form).toEqual({ token: ALICE });
  });

  test('server: apps only when logged in; maintenance flag (sic maintenace)', async () => {
    const anon = await getJson('/api/v2/server', null);
    expect(anon.body.apps).toEqual([]);
    expect(anon.body.loggedIn).toBe(false);
    const me = await getJson('/api/v2/server');
    expect(me.body.apps).toEqual([{ id: 'imputationserver2', name: 'Genotype Imputation', version: '2.0.12' }]);
    expect(me.body.maintenace).toBe(false);
    fake.control.maintenance = true;
    const m = await getJson('/api/v2/server');
    expect(m.body.maintenace).toBe(true);
    expect(m.body.maintenaceMessage).not.toBe('');
    const sub = await submit(vcfForm());
    expect(sub.status).toBe(503);
    expect(sub.body).toEqual({ message: 'This functionality is currently under maintenance.', success: false });
  });

  test('app schema: refpanel app_list, population binded_list, build/phasing/mode lists', async () => {
    expect((await getJson('/api/v2/server/apps/imputationserver2', null)).status).toBe(401);
    expect((await getJson('/api/v2/server/apps/nope')).status).toBe(404);
    const { status, body } = await getJson('/api/v2/server/apps/imputationserver2@2.0.12');
    expect(status).toBe(200);
    expect(body.id).toBe('imputationserver2');
    expect(body.version).toBe('2.0.12');
    const byId = Object.fromEntries((body.params as Json[]).map((p) => [p.id, p]));
    expect(byId.password).toBeUndefined();
    expect(byId.refpanel!.type).toBe('app_list');
    expect(byId.refpanel!.values.map((v: Json) => v.key)).toEqual([
      'apps@hapmap-2@2.0.0',
      'apps@1000g-phase-3-v5@2.0.0',
      'apps@hrc-r1.1@2.0.0',
    ]);
    expect(byId.population!.type).toBe('binded_list');
    expect(byId.population!.bind).toBe('refpanel');
    const kg = byId.population!.values.find((v: Json) => v.key === 'apps@1000g-phase-3-v5@2.0.0');
    expect(kg.values.map((v: Json) => v.key)).toContain('sas');
    expect(byId.build!.values.map((v: Json) => v.key)).toEqual(['hg19', 'hg38']);
    expect(byId.phasing!.values.map((v: Json) => v.key)).toEqual(['beagle', 'eagle', 'no_phasing']);
    expect(byId.mode!.values.map((v: Json) => v.key)).toEqual(['imputation', 'qc_only']);
    expect(byId.files!.source).toBe('upload');
    expect(byId.aesEncryption!.type).toBe('checkbox');
  });
});

describe('submission', () => {
  test('happy path records fields, files and defaults; job id format', async () => {
    const { status, body } = await submit(vcfForm({ 'input-build': 'hg38', 'job-name': 'my <job>' }, 2));
    expect(status).toBe(200);
    expect(body.success).toBe(true);
    expect(body.message).toBe('Your job was successfully added to the job queue.');
    expect(body.id).toMatch(/^job-\d{8}-\d{6}-\d{3}$/);
    const rec = fake.control.requestsTo('/api/v2/jobs/submit', 'POST')[0]!;
    expect(rec.headers['content-type']).toContain('multipart/form-data');
    expect(rec.files!.map((f) => f.name)).toEqual(['chr20.vcf.gz', 'chr21.vcf.gz']);
    expect(rec.files![0]!.size).toBe(5);
    expect(rec.form!.files).toEqual(['chr20.vcf.gz', 'chr21.vcf.gz']);
    const job = fake.control.jobs.get(body.id)!;
    expect(job.params).toMatchObject({
      refpanel: 'apps@hapmap-2@2.0.0',
      build: 'hg38',
      population: 'eur',
      phasing: 'eagle',
      mode: 'imputation',
      aesEncryption: 'false',
      meta: 'false',
    });
    expect(job.name).toBe('my &lt;job&gt;');
    expect(job.inputFiles).toHaveLength(2);
  });

  test('unknown field → 400 Parameter not found; missing refpanel → 400; unknown app → 404', async () => {
    const bad = await submit(vcfForm({ bogus: '1' }));
    expect(bad.status).toBe(400);
    expect(bad.body).toEqual({ message: "Parameter 'bogus' not found.", success: false });
    const fd = new FormData();
    fd.append('files', new File(['x'], 'a.vcf.gz'));
    const missing = await submit(fd);
    expect(missing.status).toBe(400);
    expect(missing.body.success).toBe(false);
    expect((await submit(vcfForm(), ALICE, 'minimac4')).status).toBe(404);
    const bearer = await fetch(`${fake.url}/api/v2/jobs/submit/imputationserver2`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${ALICE}` },
      body: vcfForm(),
    });
    expect(bearer.status).toBe(401);
  });

  test('third concurrent job → 400; other users unaffected', async () => {
    expect((await submit(vcfForm())).status).toBe(200);
    expect((await submit(vcfForm())).status).toBe(200);
    const third = await submit(vcfForm());
    expect(third.status).toBe(400);
    expect(third.body).toEqual({ message: 'Only 2 jobs per user can be executed simultaneously.', success: false });
    expect((await submit(vcfForm(), BOB)).status).toBe(200);
  });

  test('counters expose the queue size', async () => {
    const before = (await getJson('/api/v2/server/counters', null)).body;
    expect(before.queue.size).toBe(0);
    await submit(vcfForm());
    await submit(vcfForm(), BOB);
    const after = (await getJson('/api/v2/server/counters', null)).body;
    expect(after.queue.size).toBe(2);
    expect(typeof after.complete.runs).toBe('number');
    expect(after.users).toBeGreaterThanOrEqual(2);
  });
});

describe('job lifecycle', () => {
  test('1→2→3→4 per poll; job JSON shape; downloads until the counter runs out', async () => {
    const { body: sub } = await submit(vcfForm({ password: 'Secret-pw1' }));
    const id = sub.id as string;
    const states: number[] = [];
    let job: Json = {};
    for (let i = 0; i < 4; i++) {
      job = (await getJson(`/api/v2/jobs/${id}`)).body;
      states.push(job.state);
    }
    expect(states).toEqual([2, 3, 4, 4]);
    expect(job).toMatchObject({
      id,
      application: 'Genotype Imputation 2.0.12',
      applicationId: 'imputationserver2',
      positionInQueue: -1,
      username: 'alice',
      logs: '',
    });
    for (const k of ['submittedOn', 'startTime', 'endTime', 'deletedOn', 'currentTime']) expect(typeof job[k]).toBe('number');
    expect(job.running).toBeUndefined();
    expect(job.steps.map((s: Json) => s.name)).toEqual([
      'Input Validation',
      'Quality Control',
      'Phasing and Imputation',
      'Summary',
    ]);
    const summary = job.steps[3].logMessages[0];
    expect(summary.type).toBe(0);
    expect(summary.message).toContain('<b>Secret-pw1</b>');
    const out = job.outputParams[0];
    expect(out.name).toBe('output');
    expect(out.download).toBe(true);
    const names = out.files.map((f: Json) => f.name);
    expect(names).toEqual(expect.arrayContaining(['qc_report.txt', 'statistics/snps-excluded.txt', 'chr_20.zip']));
    const zipMeta = out.files.find((f: Json) => f.name === 'chr_20.zip');
    expect(zipMeta.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(zipMeta.count).toBe(3);
    expect(zipMeta.size).toMatch(/bytes|KB/);

    // Download without auth; counter decrements, then 400.
    const url = `${fake.url}/share/results/${zipMeta.hash}/chr_20.zip`;
    const first = await fetch(url);
    expect(first.status).toBe(200);
    const bytes = new Uint8Array(await first.arrayBuffer());
    expect([...bytes.slice(0, 4)]).toEqual([0x50, 0x4b, 0x03, 0x04]);
    expect((await fetch(url)).status).toBe(200);
    expect((await fetch(url)).status).toBe(200);
    const exhausted = await fetch(url);
    expect(exhausted.status).toBe(400);
    expect((await exhausted.json()) as Json).toEqual({ success: false, message: 'number of max downloads exceeded.' });
    expect((await getJson(`/api/v2/jobs/${id}`)).body.outputParams[0].files.find((f: Json) => f.name === 'chr_20.zip').count).toBe(0);
    expect((await fetch(`${fake.url}/share/results/${'0'.repeat(64)}/chr_20.zip`)).status).toBe(404);

    // The zip is a real ZipCrypto archive: python's zipfile decrypts it with the password.
    const dir = mkdtempSync(join(tmpdir(), 'cgfake-'));
    try {
      writeFileSync(join(dir, 'r.zip'), bytes);
      const py = Bun.spawnSync(
        [
          'python3',
          '-c',
          'import sys,zipfile;z=zipfile.ZipFile(sys.argv[1]);sys.stdout.buffer.write(z.read("chr20.dose.vcf.gz",pwd=sys.argv[2].encode()))',
          join(dir, 'r.zip'),
          'Secret-pw1',
        ],
        { stdout: 'pipe', stderr: 'pipe' },
      );
      expect(py.stderr.toString()).toBe('');
      expect(py.exitCode).toBe(0);
      const vcf = gunzipSync(py.stdout).toString();
      expect(vcf).toContain('##mis_panel=apps@hapmap-2@2.0.0');
      expect(vcf).toContain('GT:DS:GP:HDS');
      const wrong = Bun.spawnSync(['unzip', '-P', 'wrong', '-p', join(dir, 'r.zip')], { stdout: 'pipe', stderr: 'pipe' });
      if (wrong.exitCode !== null) expect(wrong.exitCode).not.toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('manual progression and positionInQueue; /status endpoint', async () => {
    fake.control.progression = 'manual';
    const id = (await submit(vcfForm())).body.id as string;
    const j1 = (await getJson(`/api/v2/jobs/${id}/status`)).body;
    expect(j1.state).toBe(1);
    expect(j1.positionInQueue).toBe(0);
    fake.control.advance(id);
    expect((await getJson(`/api/v2/jobs/${id}`)).body.state).toBe(2);
    fake.control.complete(id);
    expect((await getJson(`/api/v2/jobs/${id}`)).body.state).toBe(4);
  });

  test('cancel via GET → 6', async () => {
    const id = (await submit(vcfForm())).body.id as string;
    const res = await getJson(`/api/v2/jobs/${id}/cancel`);
    expect(res.status).toBe(200);
    expect(res.body.state).toBe(6);
    expect((await getJson(`/api/v2/jobs/${id}`)).body.state).toBe(6);
    // Canceled jobs no longer count against the active limit.
    expect((await submit(vcfForm())).status).toBe(200);
  });

  test('QC failure → 5 with QC message type 1 and QC files', async () => {
    fake.control.qcFailure = true;
    const id = (await submit(vcfForm())).body.id as string;
    await getJson(`/api/v2/jobs/${id}`);
    const job = (await getJson(`/api/v2/jobs/${id}`)).body;
    expect(job.state).toBe(5);
    const qc = job.steps.find((s: Json) => s.name === 'Quality Control');
    expect(qc.logMessages[0]).toMatchObject({ type: 1, success: false, message: DEFAULT_QC_FAILURE_MESSAGE });
    expect(job.outputParams[0].files.map((f: Json) => f.name)).toContain('qc_report.txt');
    expect(job.outputParams[0].files.map((f: Json) => f.name)).not.toContain('chr_20.zip');

    fake.control.qcFailure = false;
    fake.control.progression = 'manual';
    const id2 = (await submit(vcfForm())).body.id as string;
    fake.control.failQc(id2, 'Custom QC error');
    fake.control.complete(id2);
    const j2 = (await getJson(`/api/v2/jobs/${id2}`)).body;
    expect(j2.state).toBe(5);
    expect(JSON.stringify(j2.steps)).toContain('Custom QC error');
  });

  test('unknown panel is accepted at submit but the job fails', async () => {
    fake.control.progression = 'manual';
    const fd = new FormData();
    fd.append('files', new File(['x'], 'a.vcf.gz'));
    fd.append('refpanel', 'no-such-panel');
    const id = (await submit(fd)).body.id as string;
    fake.control.complete(id);
    const job = (await getJson(`/api/v2/jobs/${id}`)).body;
    expect(job.state).toBe(5);
    expect(JSON.stringify(job.steps)).toContain('is not installed or wrong permissions.');
  });

  test('retirement: 4 → 8 after notification days → 7 (files gone) after retire days', async () => {
    fake.control.progression = 'manual';
    const id = (await submit(vcfForm())).body.id as string;
    fake.control.complete(id);
    const hash = fake.control.jobs.get(id)!.files[0]!.hash;
    fake.control.advanceClockDays(4);
    const j8 = (await getJson(`/api/v2/jobs/${id}`)).body;
    expect(j8.state).toBe(8);
    expect(j8.deletedOn).toBeGreaterThan(j8.currentTime);
    fake.control.advanceClockDays(3);
    const j7 = (await getJson(`/api/v2/jobs/${id}`)).body;
    expect(j7.state).toBe(7);
    expect(j7.outputParams[0].files).toEqual([]);
    expect((await fetch(`${fake.url}/share/results/${hash}/qc_report.txt`)).status).toBe(404);
  });

  test('dead job (-1) can be restarted; restart of others → 400', async () => {
    fake.control.progression = 'manual';
    const id = (await submit(vcfForm())).body.id as string;
    expect((await getJson(`/api/v2/jobs/${id}/restart`)).status).toBe(400);
    fake.control.kill(id);
    expect((await getJson(`/api/v2/jobs/${id}`)).body.state).toBe(-1);
    const r = await getJson(`/api/v2/jobs/${id}/restart`);
    expect(r.body.success).toBe(true);
    expect((await getJson(`/api/v2/jobs/${id}`)).body.state).toBe(1);
  });

  test('other user → 403 Access denied; unknown job → 404', async () => {
    const id = (await submit(vcfForm())).body.id as string;
    for (const p of [`/api/v2/jobs/${id}`, `/api/v2/jobs/${id}/cancel`, `/api/v2/jobs/${id}/status`]) {
      const r = await getJson(p, BOB);
      expect(r.status).toBe(403);
      expect(r.body).toEqual({ message: 'Access denied.', success: false });
    }
    const nf = await getJson('/api/v2/jobs/job-20000101-000000-000');
    expect(nf.status).toBe(404);
    expect(nf.body).toEqual({ message: 'Job job-20000101-000000-000 not found.', success: false });
  });

  test('DELETE: API token → 403, login token → removes (state 10)', async () => {
    const id = (await submit(vcfForm())).body.id as string;
    const viaApi = await fetch(`${fake.url}/api/v2/jobs/${id}`, { method: 'DELETE', headers: auth(ALICE) });
    expect(viaApi.status).toBe(403);
    const viaLogin = await fetch(`${fake.url}/api/v2/jobs/${id}`, { method: 'DELETE', headers: auth(ALICE_LOGIN) });
    expect(viaLogin.status).toBe(200);
    expect(((await viaLogin.json()) as Json).state).toBe(10);
    expect((await getJson(`/api/v2/jobs/${id}`)).status).toBe(404);
  });

  test('job list: all without page, paged with page (15 per page), only own jobs', async () => {
    fake.control.maxActiveJobs = 100;
    for (let i = 0; i < 16; i++) {
      clockMs += 1000;
      await submit(vcfForm());
    }
    const all = (await getJson('/api/v2/jobs')).body;
    expect(all.data.length).toBeGreaterThanOrEqual(16);
    expect(all.data.every((j: Json) => j.username === 'alice')).toBe(true);
    const p1 = (await getJson('/api/v2/jobs?page=1')).body;
    expect(p1.data).toHaveLength(15);
    expect(p1.pageSize).toBe(15);
    expect(p1.next).toBe(2);
    expect(p1.prev).toBeNull();
    const p2 = (await getJson('/api/v2/jobs?page=2')).body;
    expect(p2.prev).toBe(1);
    expect(p2.data.length).toBe(all.data.length - 15);
    const bobs = (await getJson('/api/v2/jobs', BOB)).body;
    expect(bobs.data.every((j: Json) => j.username === 'bob')).toBe(true);
  });
});

describe('scripted faults', () => {
  afterEach(() => fake.control.clearFaults());

  test('hang: a client with a 300 ms timeout times out', async () => {
    fake.control.addFault({ kind: 'hang', path: '/api/v2/server' });
    const started = performance.now();
    let error: unknown;
    try {
      await fetch(`${fake.url}/api/v2/server`, { headers: auth(), signal: AbortSignal.timeout(300) });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).name).toBe('TimeoutError');
    expect(performance.now() - started).toBeLessThan(5000);
    expect(fake.control.requestsTo('/api/v2/server')).toHaveLength(1);
  });

  test('status500 (limited times) then recovers', async () => {
    fake.control.addFault({ kind: 'status500', path: /^\/api\/v2\/jobs/, times: 1 });
    const r1 = await fetch(`${fake.url}/api/v2/jobs`, { headers: auth() });
    expect(r1.status).toBe(500);
    expect(((await r1.json()) as Json).success).toBe(false);
    expect((await fetch(`${fake.url}/api/v2/jobs`, { headers: auth() })).status).toBe(200);
  });

  test('malformedJson: body is not parseable JSON', async () => {
    fake.control.addFault({ kind: 'malformedJson' });
    const r = await fetch(`${fake.url}/api/v2/server`, { headers: auth() });
    expect(r.headers.get('content-type')).toContain('application/json');
    let parseError: unknown;
    try {
      await r.json();
    } catch (e) {
      parseError = e;
    }
    expect(parseError).toBeInstanceOf(SyntaxError);
  });

  test('constructor shorthands and custom panels/appId', async () => {
    const other = await startCloudgeneFake({
      tokens: { [ALICE]: 'alice' },
      appId: 'imputationserver2-pgs',
      panels: [{ id: 'topmed-r3', version: '1.0.0', label: 'TOPMed r3', build: 'hg38', populations: [{ id: 'all', label: 'All' }] }],
      status500: '/api/v2/server/counters',
      maxActiveJobs: 1,
    });
    try {
      expect((await fetch(`${other.url}/api/v2/server/counters`)).status).toBe(500);
      const schema = (await (await fetch(`${other.url}/api/v2/server/apps/imputationserver2-pgs`, { headers: auth() })).json()) as Json;
      expect(schema.params[0].values).toEqual([{ key: 'apps@topmed-r3@1.0.0', value: 'TOPMed r3' }]);
      const fd = vcfForm();
      const s1 = await fetch(`${other.url}/api/v2/jobs/submit/imputationserver2-pgs`, { method: 'POST', headers: auth(), body: fd });
      expect(s1.status).toBe(200);
      const s2 = await fetch(`${other.url}/api/v2/jobs/submit/imputationserver2-pgs`, { method: 'POST', headers: auth(), body: vcfForm() });
      expect(s2.status).toBe(400);
      expect(((await s2.json()) as Json).message).toBe('Only 1 jobs per user can be executed simultaneously.');
    } finally {
      await other.stop();
    }
    expect(other.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });
});
