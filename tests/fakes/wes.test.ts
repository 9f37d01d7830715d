import { afterEach, describe, expect, it } from 'bun:test';
import { FAKE_VCF, FakeClock, startRegistryFake, startWesFake, type WesFake, type WesFakeOptions } from './wes.ts';

const TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

let fakes: { stop(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(fakes.map((f) => f.stop()));
  fakes = [];
});

async function start(options: WesFakeOptions = {}): Promise<WesFake> {
  const f = await startWesFake(options);
  fakes.push(f);
  return f;
}

function auth(token?: string): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}

async function getJson(url: string, token?: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { headers: auth(token) });
  return { status: res.status, body: await res.json() };
}

function validForm(overrides: Record<string, string | null> = {}): FormData {
  const base: Record<string, string> = {
    workflow_url: 'https://example.org/impute.nf',
    workflow_type: 'Nextflow',
    workflow_type_version: '23.04',
    workflow_params: JSON.stringify({ panel: 'hrc', build: 'hg38' }),
    tags: JSON.stringify({ project: 'p1' }),
  };
  const form = new FormData();
  for (const [k, v] of Object.entries({ ...base, ...overrides })) if (v !== null) form.set(k, v);
  return form;
}

async function submit(wes: WesFake, form: FormData, token?: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${wes.url}/runs`, { method: 'POST', body: form, headers: auth(token) });
  return { status: res.status, body: await res.json() };
}

describe('service-info', () => {
  it('1.1.0 extends GA4GH Service with all required fields', async () => {
    const wes = await start({ version: '1.1.0', systemStateCounts: { RUNNING: 2, QUEUED: 1 } });
    expect(wes.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/ga4gh\/wes\/v1$/);
    const { status, body } = await getJson(`${wes.url}/service-info`);
    expect(status).toBe(200);
    for (const k of ['id', 'name', 'type', 'organization', 'version']) expect(body[k]).toBeDefined();
    expect(body.type).toEqual({ group: 'org.ga4gh', artifact: 'wes', version: '1.1.0' });
    expect(body.organization.name).toBeString();
    expect(body.organization.url).toBeString();
    for (const k of [
      'workflow_type_versions',
      'supported_wes_versions',
      'supported_filesystem_protocols',
      'workflow_engine_versions',
      'default_workflow_engine_parameters',
      'system_state_counts',
      'auth_instructions_url',
      'tags',
    ]) {
      expect(body[k]).toBeDefined();
    }
    expect(body.workflow_type_versions.Nextflow).toEqual({ workflow_type_version: ['22.10', '23.04'] });
    expect(body.workflow_engine_versions.nextflow).toEqual({ workflow_engine_version: ['23.04.1'] });
    expect(body.supported_wes_versions).toEqual(['1.1.0']);
    expect(body.system_state_counts).toEqual({ RUNNING: 2, QUEUED: 1 });
    expect(body.contact_info_url).toBeUndefined();
  });

  it('1.0.0 is standalone with engine → string and contact_info_url', async () => {
    const wes = await start({ version: '1.0.0', workflowEngines: { snakemake: ['7.32.4'] } });
    const { body } = await getJson(`${wes.url}/service-info`);
    expect(body.id).toBeUndefined();
    expect(body.type).toBeUndefined();
    expect(body.contact_info_url).toBeString();
    expect(body.workflow_engine_versions).toEqual({ snakemake: '7.32.4' });
    expect(body.supported_wes_versions).toEqual(['1.0.0']);
    expect(body.system_state_counts).toEqual({});
  });

  it('non-standard array shape for workflow_type_versions, and computed state counts', async () => {
    const wes = await start({ workflowTypeVersionsShape: 'array', workflowTypes: { Snakemake: ['7', '8'] } });
    wes.control.addRun({ state: 'RUNNING' });
    wes.control.addRun({ state: 'RUNNING' });
    wes.control.addRun();
    const { body } = await getJson(`${wes.url}/service-info`);
    expect(body.workflow_type_versions).toEqual({ Snakemake: ['7', '8'] });
    expect(body.system_state_counts).toEqual({ RUNNING: 2, QUEUED: 1 });
  });
});

describe('auth', () => {
  it('401 {msg, status_code} for missing and wrong tokens; records the header', async () => {
    const wes = await start({ tokens: ['good', 'other'] });
    const missing = await getJson(`${wes.url}/runs`);
    expect(missing.status).toBe(401);
    expect(missing.body).toEqual({ msg: expect.any(String), status_code: 401 });
    const wrong = await getJson(`${wes.url}/service-info`, 'bad');
    expect(wrong.status).toBe(401);
    expect((await getJson(`${wes.url}/service-info`, 'good')).status).toBe(200);
    expect(wes.control.requests.map((r) => r.authorization)).toEqual([null, 'Bearer bad', 'Bearer good']);
  });

  it('publicServiceInfo leaves service-info open', async () => {
    const wes = await start({ tokens: ['good'], publicServiceInfo: true });
    expect((await getJson(`${wes.url}/service-info`)).status).toBe(200);
    expect((await getJson(`${wes.url}/runs`)).status).toBe(401);
  });

  it("another token's run is 404 everywhere and hidden from the list", async () => {
    const wes = await start({ tokens: ['alice', 'bob'] });
    const { body } = await submit(wes, validForm(), 'alice');
    const id = body.run_id as string;
    for (const p of [`/runs/${id}`, `/runs/${id}/status`, `/runs/${id}/tasks`]) {
      expect((await getJson(`${wes.url}${p}`, 'bob')).status).toBe(404);
    }
    const cancel = await fetch(`${wes.url}/runs/${id}/cancel`, { method: 'POST', headers: auth('bob') });
    expect(cancel.status).toBe(404);
    expect((await getJson(`${wes.url}/runs`, 'bob')).body.runs).toEqual([]);
    expect((await getJson(`${wes.url}/runs`, 'alice')).body.runs).toHaveLength(1);
    expect((await getJson(`${wes.url}/runs/${id}/status`, 'alice')).status).toBe(200);
  });
});

describe('GET /runs paging', () => {
  it('stable order, opaque tokens, "" at the end', async () => {
    const wes = await start();
    const ids = Array.from({ length: 5 }, () => wes.control.addRun({ tags: { k: 'v' } }).run_id);
    const p1 = (await getJson(`${wes.url}/runs?page_size=2`)).body;
    expect(p1.runs.map((r: any) => r.run_id)).toEqual(ids.slice(0, 2));
    expect(p1.next_page_token).not.toBe('');
    expect(p1.next_page_token).not.toMatch(/^\d+$/);
    expect(p1.runs[0]).toEqual({ run_id: ids[0], state: 'QUEUED', tags: { k: 'v' } });
    // A run created mid-paging does not shift pages.
    const late = wes.control.addRun().run_id;
    const p2 = (await getJson(`${wes.url}/runs?page_size=2&page_token=${p1.next_page_token}`)).body;
    expect(p2.runs.map((r: any) => r.run_id)).toEqual(ids.slice(2, 4));
    const p3 = (await getJson(`${wes.url}/runs?page_size=2&page_token=${p2.next_page_token}`)).body;
    expect(p3.runs.map((r: any) => r.run_id)).toEqual([ids[4], late]);
    expect(p3.next_page_token).toBe('');
    // Same token twice gives the same page.
    const again = (await getJson(`${wes.url}/runs?page_size=2&page_token=${p1.next_page_token}`)).body;
    expect(again).toEqual(p2);
  });

  it('400 on bad page_size / page_token; 1.0 lists RunStatus only', async () => {
    const wes = await start({ version: '1.0.0' });
    expect((await getJson(`${wes.url}/runs?page_size=0`)).status).toBe(400);
    expect((await getJson(`${wes.url}/runs?page_size=abc`)).status).toBe(400);
    const bad = await getJson(`${wes.url}/runs?page_token=garbage`);
    expect(bad).toEqual({ status: 400, body: { msg: expect.any(String), status_code: 400 } });
    const id = wes.control.addRun().run_id;
    expect((await getJson(`${wes.url}/runs`)).body).toEqual({ runs: [{ run_id: id, state: 'QUEUED' }], next_page_token: '' });
  });
});

describe('POST /runs', () => {
  it('happy path returns {run_id} and records parsed parts including attachments', async () => {
    const wes = await start({ version: '1.1.0' });
    const form = validForm({
      workflow_url: 'main.nf',
      workflow_engine: 'nextflow',
      workflow_engine_version: '23.04.1',
      workflow_engine_parameters: JSON.stringify({ '-resume': 'true' }),
    });
    form.append('workflow_attachment', new File(['workflow {}'], 'main.nf'));
    form.append('workflow_attachment', new File(['params {}'], 'conf/params.config'));
    const { status, body } = await submit(wes, form);
    expect(status).toBe(200);
    expect(Object.keys(body)).toEqual(['run_id']);
    const rec = wes.control.requests.at(-1)!;
    expect(rec.method).toBe('POST');
    expect(rec.path).toBe('/ga4gh/wes/v1/runs');
    expect(rec.parts?.find((p) => p.name === 'workflow_type')?.value).toBe('Nextflow');
    const atts = rec.parts?.filter((p) => p.name === 'workflow_attachment') ?? [];
    expect(atts.map((p) => [p.filename, p.text])).toEqual([
      ['main.nf', 'workflow {}'],
      ['conf/params.config', 'params {}'],
    ]);
    const log = (await getJson(`${wes.url}/runs/${body.run_id}`)).body;
    expect(log.request).toEqual({
      workflow_params: { panel: 'hrc', build: 'hg38' },
      workflow_type: 'Nextflow',
      workflow_type_version: '23.04',
      tags: { project: 'p1' },
      workflow_engine_parameters: { '-resume': 'true' },
      workflow_url: 'main.nf',
      workflow_engine: 'nextflow',
      workflow_engine_version: '23.04.1',
    });
  });

  const cases: [string, Record<string, string | null>, RegExp][] = [
    ['missing workflow_url', { workflow_url: null }, /workflow_url/],
    ['relative workflow_url without attachment', { workflow_url: 'main.nf' }, /workflow_url/],
    ['missing workflow_type', { workflow_type: null }, /workflow_type/],
    ['unlisted workflow_type', { workflow_type: 'CWL' }, /CWL/],
    ['missing workflow_type_version', { workflow_type_version: null }, /workflow_type_version/],
    ['unlisted workflow_type_version', { workflow_type_version: '99' }, /99/],
    ['missing workflow_params', { workflow_params: null }, /workflow_params/],
    ['workflow_params not JSON', { workflow_params: '{oops' }, /workflow_params/],
    ['workflow_params an array', { workflow_params: '[1,2]' }, /workflow_params/],
    ['tags not an object', { tags: '"x"' }, /tags/],
    ['tags with non-string value', { tags: '{"n":1}' }, /tags\.n/],
    ['engine parameters with non-string value', { workflow_engine_parameters: '{"cpus":4}' }, /workflow_engine_parameters/],
    ['engine version without engine', { workflow_engine_version: '23.04.1' }, /requires workflow_engine/],
    ['unlisted engine', { workflow_engine: 'cromwell' }, /cromwell/],
    ['unlisted engine version', { workflow_engine: 'nextflow', workflow_engine_version: '1' }, /workflow_engine_version/],
    ['unknown part', { workflow_typo: 'x' }, /unknown part/],
  ];
  for (const [name, overrides, re] of cases) {
    it(`400 {msg, status_code}: ${name}`, async () => {
      const wes = await start({ version: '1.1.0' });
      const { status, body } = await submit(wes, validForm(overrides));
      expect(status).toBe(400);
      expect(body.status_code).toBe(400);
      expect(body.msg).toMatch(re);
      expect(wes.control.runs.size).toBe(0);
    });
  }

  it('400 for attachment paths with .., absolute paths, and string (filename-less) attachment parts', async () => {
    const wes = await start();
    for (const name of ['../evil.nf', 'a/../../b.nf', '/etc/passwd']) {
      const form = validForm();
      form.append('workflow_attachment', new File(['x'], name));
      const r = await submit(wes, form);
      expect(r.status).toBe(400);
      expect(r.body.msg).toMatch(/filename not allowed/);
    }
    const form = validForm();
    form.append('workflow_attachment', 'no filename');
    const r = await submit(wes, form);
    expect(r.status).toBe(400);
    expect(r.body.msg).toMatch(/Content-Disposition filename/);
  });

  it('400 for non-multipart bodies and, in 1.0, workflow_engine parts', async () => {
    const wes = await start({ version: '1.0.0' });
    const res = await fetch(`${wes.url}/runs`, {
      method: 'POST',
      body: JSON.stringify({ workflow_url: 'x' }),
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { msg: string }).msg).toMatch(/multipart/);
    const r = await submit(wes, validForm({ workflow_engine: 'nextflow' }));
    expect(r.status).toBe(400);
    expect(r.body.msg).toMatch(/1\.0\.0/);
  });
});

describe('run lifecycle', () => {
  it('polls progress QUEUED → INITIALIZING → RUNNING → COMPLETE; outputs download real bytes', async () => {
    const wes = await start({ version: '1.1.0', clock: new FakeClock(Date.UTC(2025, 5, 1, 12), 60_000) });
    const { body } = await submit(wes, validForm());
    const id = body.run_id as string;
    const seen: string[] = [];
    for (let i = 0; i < 5; i++) seen.push((await getJson(`${wes.url}/runs/${id}/status`)).body.state);
    expect(seen).toEqual(['QUEUED', 'INITIALIZING', 'RUNNING', 'COMPLETE', 'COMPLETE']);
    const log = (await getJson(`${wes.url}/runs/${id}`)).body;
    expect(log.state).toBe('COMPLETE');
    expect(log.run_id).toBe(id);
    expect(log.task_logs_url).toBe(`${wes.url}/runs/${id}/tasks`);
    expect(log.task_logs).toBeNull();
    expect(log.run_log.start_time).toBe('2025-06-01T12:00:00Z');
    expect(log.run_log.end_time).toMatch(TIME_RE);
    expect(log.run_log.exit_code).toBe(0);
    expect(Object.keys(log.outputs).sort()).toEqual(['imputed_vcf', 'info', 'qc_report']);
    const vcf = await fetch(log.outputs.imputed_vcf);
    expect(vcf.status).toBe(200);
    const bytes = new Uint8Array(await vcf.arrayBuffer());
    expect(new TextDecoder().decode(Bun.gunzipSync(bytes))).toBe(FAKE_VCF);
    expect(await (await fetch(log.outputs.info)).text()).toContain('Rsq');
  });

  it('manual mode: control.advance drives state; outputs empty until COMPLETE', async () => {
    const wes = await start({ autoAdvance: 'manual' });
    const id = (await submit(wes, validForm())).body.run_id as string;
    expect((await getJson(`${wes.url}/runs/${id}/status`)).body.state).toBe('QUEUED');
    expect((await getJson(`${wes.url}/runs/${id}/status`)).body.state).toBe('QUEUED');
    expect(wes.control.advance(id)).toBe('INITIALIZING');
    expect(wes.control.advance(id)).toBe('RUNNING');
    expect((await getJson(`${wes.url}/runs/${id}`)).body.outputs).toEqual({});
    expect(wes.control.advance(id)).toBe('COMPLETE');
    expect(wes.control.advance(id)).toBe('COMPLETE');
  });

  it('cancel → CANCELING, then CANCELED on the next advance/poll', async () => {
    const wes = await start({ autoAdvance: 'manual' });
    const id = (await submit(wes, validForm())).body.run_id as string;
    wes.control.advance(id);
    const res = await fetch(`${wes.url}/runs/${id}/cancel`, { method: 'POST' });
    expect(await res.json()).toEqual({ run_id: id });
    expect((await getJson(`${wes.url}/runs/${id}/status`)).body).toEqual({ run_id: id, state: 'CANCELING' });
    expect(wes.control.advance(id)).toBe('CANCELED');
    // poll mode: the poll reports CANCELING and moves on
    wes.control.setAutoAdvance('poll');
    const id2 = (await submit(wes, validForm())).body.run_id as string;
    await fetch(`${wes.url}/runs/${id2}/cancel`, { method: 'POST' });
    expect((await getJson(`${wes.url}/runs/${id2}/status`)).body.state).toBe('CANCELING');
    expect((await getJson(`${wes.url}/runs/${id2}/status`)).body.state).toBe('CANCELED');
  });

  it('scripted EXECUTOR_ERROR carries the stderr message; SYSTEM_ERROR and PREEMPTED (1.1)', async () => {
    const wes = await start({ autoAdvance: 'manual' });
    wes.control.queueOutcome({ state: 'EXECUTOR_ERROR', stderr: 'Error: no chunks passed QC', exitCode: 2 });
    const a = (await submit(wes, validForm())).body.run_id as string;
    expect(wes.control.finish(a)).toBe('EXECUTOR_ERROR');
    const log = (await getJson(`${wes.url}/runs/${a}`)).body;
    expect(log.run_log.exit_code).toBe(2);
    expect(log.run_log.system_logs).toContain('Error: no chunks passed QC');
    expect(log.outputs).toEqual({});
    expect(await (await fetch(log.run_log.stderr)).text()).toBe('Error: no chunks passed QC');

    const b = (await submit(wes, validForm())).body.run_id as string;
    wes.control.setOutcome(b, { state: 'SYSTEM_ERROR', message: 'disk full' });
    expect(wes.control.finish(b)).toBe('SYSTEM_ERROR');
    expect((await getJson(`${wes.url}/runs/${b}`)).body.run_log.system_logs).toEqual(['disk full']);

    const c = (await submit(wes, validForm())).body.run_id as string;
    wes.control.setOutcome(c, { state: 'PREEMPTED' });
    expect(wes.control.finish(c)).toBe('PREEMPTED');
  });

  it('1.0: PREEMPTED is refused; RunLog has inline task_logs and no task_logs_url', async () => {
    const wes = await start({ version: '1.0.0', autoAdvance: 'manual' });
    expect(() => wes.control.queueOutcome({ state: 'PREEMPTED' })).toThrow();
    const id = (await submit(wes, validForm())).body.run_id as string;
    wes.control.finish(id);
    const log = (await getJson(`${wes.url}/runs/${id}`)).body;
    expect(log.task_logs_url).toBeUndefined();
    expect(log.task_logs).toHaveLength(3);
    expect(log.task_logs[0].end_time).toMatch(TIME_RE);
  });

  it('with tokens, result downloads need the bearer token; Log fields absent until known', async () => {
    const wes = await start({ tokens: ['t1'], autoAdvance: 'manual' });
    const id = (await submit(wes, validForm(), 't1')).body.run_id as string;
    const early = (await getJson(`${wes.url}/runs/${id}`, 't1')).body;
    expect(early.state).toBe('QUEUED');
    expect('start_time' in early.run_log).toBe(false);
    expect('exit_code' in early.run_log).toBe(false);
    wes.control.finish(id);
    const log = (await getJson(`${wes.url}/runs/${id}`, 't1')).body;
    expect((await fetch(log.outputs.qc_report)).status).toBe(401);
    const ok = await fetch(log.outputs.qc_report, { headers: auth('t1') });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain(id);
  });

  it('404 {msg, status_code} for unknown runs', async () => {
    const wes = await start();
    for (const p of ['/runs/nope', '/runs/nope/status', '/runs/nope/tasks']) {
      expect(await getJson(`${wes.url}${p}`)).toEqual({ status: 404, body: { msg: expect.any(String), status_code: 404 } });
    }
    expect((await fetch(`${wes.url}/runs/nope/cancel`, { method: 'POST' })).status).toBe(404);
  });
});

describe('tasks', () => {
  it('1.1: paged task list and single task', async () => {
    const wes = await start({ version: '1.1.0', tasksPerRun: 5, autoAdvance: 'manual' });
    const id = (await submit(wes, validForm())).body.run_id as string;
    expect((await getJson(`${wes.url}/runs/${id}/tasks`)).body).toEqual({ task_logs: [], next_page_token: '' });
    wes.control.advance(id);
    wes.control.advance(id);
    const p1 = (await getJson(`${wes.url}/runs/${id}/tasks?page_size=2`)).body;
    expect(p1.task_logs).toHaveLength(2);
    expect(p1.task_logs[0].id).toBeString();
    expect(p1.task_logs[0].name).toBeString();
    const p2 = (await getJson(`${wes.url}/runs/${id}/tasks?page_size=2&page_token=${p1.next_page_token}`)).body;
    const p3 = (await getJson(`${wes.url}/runs/${id}/tasks?page_size=2&page_token=${p2.next_page_token}`)).body;
    expect(p3.task_logs).toHaveLength(1);
    expect(p3.next_page_token).toBe('');
    const all = [...p1.task_logs, ...p2.task_logs, ...p3.task_logs].map((t: any) => t.id);
    expect(new Set(all).size).toBe(5);
    const one = await getJson(`${wes.url}/runs/${id}/tasks/${all[3]}`);
    expect(one.status).toBe(200);
    expect(one.body.id).toBe(all[3]);
    expect((await getJson(`${wes.url}/runs/${id}/tasks/missing`)).status).toBe(404);
  });

  it('1.0: /tasks endpoints do not exist (404)', async () => {
    const wes = await start({ version: '1.0.0', autoAdvance: 'manual' });
    const id = (await submit(wes, validForm())).body.run_id as string;
    wes.control.finish(id);
    expect((await getJson(`${wes.url}/runs/${id}/tasks`)).status).toBe(404);
    expect((await getJson(`${wes.url}/runs/${id}/tasks/${id}-task-1`)).status).toBe(404);
  });
});

describe('scripted faults', () => {
  it('hang: a client with a 300 ms timeout times out; stop() still returns', async () => {
    const wes = await start({ behavior: { mode: 'hang', match: '/service-info' } });
    const t0 = Date.now();
    const err = await fetch(`${wes.url}/service-info`, { signal: AbortSignal.timeout(300) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).name).toBe('TimeoutError');
    expect(Date.now() - t0).toBeLessThan(2000);
    expect((await getJson(`${wes.url}/runs`)).status).toBe(200); // match limits the fault
    expect(wes.control.requests[0]?.path).toBe('/ga4gh/wes/v1/service-info');
  });

  it('status500 with {msg, status_code}, limited by times', async () => {
    const wes = await start();
    wes.control.setBehavior({ mode: 'status500', times: 1 });
    expect(await getJson(`${wes.url}/runs`)).toEqual({ status: 500, body: { msg: expect.any(String), status_code: 500 } });
    expect((await getJson(`${wes.url}/runs`)).status).toBe(200);
  });

  it('malformedJson: 200 with an unparseable JSON body', async () => {
    const wes = await start({ behavior: { mode: 'malformedJson', match: /^\/runs/ } });
    const res = await fetch(`${wes.url}/runs`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('application/json');
    await expect(res.json()).rejects.toThrow();
    wes.control.setBehavior(null);
    expect((await getJson(`${wes.url}/runs`)).status).toBe(200);
  });
});

describe('registry fake', () => {
  it('/services, /services/{id}, /services/types, errors {status,title,detail}', async () => {
    const wes = await start();
    const svc = {
      id: 'org.example.wes-a',
      name: 'WES A',
      type: { group: 'org.ga4gh', artifact: 'wes', version: '1.1.0' },
      organization: { name: 'Example', url: 'https://example.org' },
      version: '1.0',
      url: wes.url,
    };
    const reg = await startRegistryFake({ services: [svc, { ...svc, id: 'org.example.wes-b', name: 'WES B' }] });
    fakes.push(reg);
    const list = (await getJson(`${reg.url}/services`)).body;
    expect(list).toHaveLength(2);
    expect((await getJson(`${list[0].url}/service-info`)).status).toBe(200);
    expect((await getJson(`${reg.url}/services/org.example.wes-b`)).body.name).toBe('WES B');
    expect((await getJson(`${reg.url}/services/types`)).body).toEqual([svc.type]);
    expect((await getJson(`${reg.url}/service-info`)).body.type.artifact).toBe('service-registry');
    const missing = await getJson(`${reg.url}/services/nope`);
    expect(missing).toEqual({ status: 404, body: { status: 404, title: 'Not Found', detail: expect.any(String) } });
  });
});
