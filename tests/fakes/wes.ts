/**
 * Fake GA4GH WES server (1.0.0 and 1.1.0) for adapter, registry and end-to-end tests.
 * Follows /work/shared/reference/imputation-protocols.md §3 and §7. Loopback only (127.0.0.1).
 *
 * Usage:
 * ```ts
 * const wes = await startWesFake({ version: '1.1.0', tokens: ['t1'] });
 * // wes.url === 'http://127.0.0.1:<port>/ga4gh/wes/v1'
 * const form = new FormData();
 * form.set('workflow_url', 'https://example.org/impute.nf');
 * form.set('workflow_type', 'Nextflow');
 * form.set('workflow_type_version', '23.04');
 * form.set('workflow_params', JSON.stringify({ panel: 'hrc' }));
 * const { run_id } = await (await fetch(`${wes.url}/runs`, { method: 'POST', body: form,
 *   headers: { authorization: 'Bearer t1' } })).json();
 * wes.control.advance(run_id);            // QUEUED -> INITIALIZING (or just poll)
 * wes.control.requests                    // every request, with parsed multipart parts
 * await wes.stop();
 * ```
 *
 * Behaviour (decisions documented here, not in tests/fakes/README.md):
 * - State machine: QUEUED → INITIALIZING → RUNNING → outcome (COMPLETE by default).
 *   With `autoAdvance: 'poll'` (default) every `GET /runs/{id}` or `GET /runs/{id}/status` REPORTS the
 *   current state, THEN moves the run one step on. So the first poll after submit sees QUEUED and the
 *   4th sees COMPLETE. `control.advance(id)` moves one step without HTTP. `autoAdvance: 'manual'`
 *   disables poll-driven progress.
 * - Cancel: `POST /runs/{id}/cancel` on a non-terminal run sets CANCELING; the next step (poll or
 *   advance) makes it CANCELED. Cancel on a terminal run is a no-op that still answers `{run_id}`.
 * - Outcomes: `control.queueOutcome(o)` applies to the next submitted run, `control.setOutcome(id, o)`
 *   to an existing one, `options.defaultOutcome` otherwise. EXECUTOR_ERROR puts its `stderr` text into
 *   `run_log.system_logs` and into the stderr URL body (exit_code defaults to 1); SYSTEM_ERROR puts its
 *   message into `system_logs`; PREEMPTED is rejected in 1.0.0 (throws).
 * - Auth: when `tokens` is given, every WES endpoint (service-info too unless `publicServiceInfo`)
 *   and the result downloads need `Authorization: Bearer <token>`; missing/wrong → 401 `{msg, status_code}`.
 *   Runs belong to the token that created them. Another token's run answers **404** (not 403): the spec
 *   says the runs list is filtered to what the caller may see, so the per-run endpoints behave the same
 *   way and do not reveal that a run id exists. Without `tokens`, all runs are visible to everyone.
 * - Paging (`/runs`, `/runs/{id}/tasks`): stable creation order; `page_token` is opaque base64url of
 *   the last seen sequence number (so inserts do not shift pages); `next_page_token` is `""` at the end.
 *   Default page size 10, max 100; bad `page_size` or `page_token` → 400.
 * - `POST /runs` must be multipart/form-data. Unknown parts, repeated single parts, and (on 1.0.0)
 *   `workflow_engine*` parts → 400. A `workflow_url` that is not an absolute URL must name an attachment.
 * - Outputs of a COMPLETE run: `{ imputed_vcf, info, qc_report }` URLs served by the fake itself
 *   under `{origin}/fake-files/{runId}/…` (real gzip VCF bytes, plain text); logs under
 *   `{origin}/fake-logs/{runId}/{stdout|stderr}`. Optional Log fields (start_time, end_time, exit_code)
 *   are omitted, not null, until known; `task_logs` is null in 1.1 (deprecated there, nullable).
 * - Scripted faults (`options.behavior` or `control.setBehavior`): `hang` (never answers until stop()),
 *   `status500` (500 `{msg, status_code}`), `malformedJson` (200 with a truncated JSON body). Optional
 *   `match` (path substring or RegExp on the path after the base, e.g. '/service-info') and `times`.
 *   Faults apply before auth; the request is still recorded.
 * - Clock: `options.clock` ({ now(): number } in epoch ms); default `new FakeClock(2025-01-01Z, 1000 ms
 *   tick per read)`. Times are `YYYY-MM-DDTHH:MM:SSZ`.
 * - `system_state_counts`: `options.systemStateCounts` if given, else counts of the fake's runs by state.
 *
 * Also exports `startRegistryFake()` (GA4GH service registry 1.0.0; errors `{status, title, detail}`).
 */

export type WesVersion = '1.0.0' | '1.1.0';

export type WesState =
  | 'UNKNOWN'
  | 'QUEUED'
  | 'INITIALIZING'
  | 'RUNNING'
  | 'PAUSED'
  | 'COMPLETE'
  | 'EXECUTOR_ERROR'
  | 'SYSTEM_ERROR'
  | 'CANCELED'
  | 'CANCELING'
  | 'PREEMPTED';

export const TERMINAL_STATES: readonly WesState[] = ['COMPLETE', 'EXECUTOR_ERROR', 'SYSTEM_ERROR', 'CANCELED', 'PREEMPTED'];

export type WesOutcome =
  | { state: 'COMPLETE' }
  | { state: 'EXECUTOR_ERROR'; stderr?: string; exitCode?: number }
  | { state: 'SYSTEM_ERROR'; message?: string }
  | { state: 'PREEMPTED' };

export type FaultMode = 'hang' | 'status500' | 'malformedJson';

export interface FaultBehavior {
  mode: FaultMode;
  /** Path (after the WES base, e.g. '/runs') substring or RegExp; all paths when absent. */
  match?: string | RegExp;
  /** Apply to this many matching requests, then clear. Unlimited when absent. */
  times?: number;
}

export interface Clock {
  now(): number;
}

/** Manual clock. `tickMs` is added after every read so successive timestamps differ. */
export class FakeClock implements Clock {
  constructor(
    private current: number = Date.UTC(2025, 0, 1),
    public tickMs = 0,
  ) {}
  now(): number {
    const t = this.current;
    this.current += this.tickMs;
    return t;
  }
  advance(ms: number): void {
    this.current += ms;
  }
  set(epochMs: number): void {
    this.current = epochMs;
  }
}

export interface WesFakeOptions {
  version?: WesVersion;
  port?: number;
  /** Accepted bearer tokens. When absent, no auth is required. */
  tokens?: string[];
  /** When tokens are set, leave GET /service-info open. Default false. */
  publicServiceInfo?: boolean;
  /** type → versions. Default `{ Nextflow: ['22.10', '23.04'], Snakemake: ['7.32'] }`. */
  workflowTypes?: Record<string, string[]>;
  /** 'spec' (default): type → {workflow_type_version: [...]}; 'array': type → [...] (non-standard). */
  workflowTypeVersionsShape?: 'spec' | 'array';
  /** engine → versions. Default `{ nextflow: ['23.04.1'] }`. 1.0 reports the first version as a string. */
  workflowEngines?: Record<string, string[]>;
  /** Static system_state_counts; computed from runs when absent. */
  systemStateCounts?: Partial<Record<WesState, number>>;
  behavior?: FaultBehavior;
  clock?: Clock;
  autoAdvance?: 'poll' | 'manual';
  defaultOutcome?: WesOutcome;
  /** Tasks per run (created on RUNNING). Default 3. */
  tasksPerRun?: number;
  /** Override service-info fields (merged shallowly last). */
  serviceInfo?: Record<string, unknown>;
}

export interface RecordedPart {
  name: string;
  value?: string;
  filename?: string;
  contentType?: string;
  size?: number;
  text?: string;
}

export interface RecordedRequest {
  method: string;
  /** Full path including the base, e.g. /ga4gh/wes/v1/runs. */
  path: string;
  query: Record<string, string>;
  authorization: string | null;
  contentType: string | null;
  parts?: RecordedPart[];
  at: number;
}

export interface RunRequest {
  workflow_params: Record<string, unknown>;
  workflow_type: string;
  workflow_type_version: string;
  tags: Record<string, string>;
  workflow_engine_parameters: Record<string, string>;
  workflow_url: string;
  workflow_engine?: string;
  workflow_engine_version?: string;
}

interface TaskRecord {
  id: string;
  name: string;
  start_time?: string;
  end_time?: string;
  exit_code?: number;
}

export interface FakeRun {
  seq: number;
  run_id: string;
  owner: string | null;
  state: WesState;
  request: RunRequest;
  attachments: { filename: string; size: number }[];
  outcome: WesOutcome;
  start_time?: string;
  end_time?: string;
  exit_code?: number;
  systemLogs: string[];
  stderr: string;
  tasks: TaskRecord[];
}

export interface WesFakeControl {
  readonly requests: RecordedRequest[];
  readonly runs: Map<string, FakeRun>;
  readonly clock: Clock;
  /** Move a run one step on; returns the new state. */
  advance(runId: string): WesState;
  /** Advance until terminal; returns the final state. */
  finish(runId: string): WesState;
  setState(runId: string, state: WesState): void;
  setOutcome(runId: string, outcome: WesOutcome): void;
  queueOutcome(outcome: WesOutcome): void;
  setBehavior(behavior: FaultBehavior | null): void;
  setAutoAdvance(mode: 'poll' | 'manual'): void;
  /** Create a run directly (bypasses HTTP and validation). */
  addRun(input?: Partial<RunRequest> & { owner?: string | null; state?: WesState }): FakeRun;
  reset(): void;
}

export interface WesFake {
  url: string;
  origin: string;
  port: number;
  stop(): Promise<void>;
  control: WesFakeControl;
}

export const WES_BASE = '/ga4gh/wes/v1';

const MAX_PAGE = 100;
const DEFAULT_PAGE = 10;

export function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function encodeToken(seq: number): string {
  return Buffer.from(`after:${seq}`).toString('base64url');
}

function decodeToken(token: string): number | null {
  const raw = Buffer.from(token, 'base64url').toString('utf8');
  const m = /^after:(\d+)$/.exec(raw);
  return m ? Number(m[1]) : null;
}

export const FAKE_VCF = [
  '##fileformat=VCFv4.2',
  '##source=wes-fake',
  '##contig=<ID=20>',
  '##INFO=<ID=R2,Number=1,Type=Float,Description="Estimated imputation accuracy">',
  '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
  '#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2',
  '20\t60343\trs527639301\tG\tA\t.\tPASS\tR2=0.91\tGT\t0|0\t0|1',
  '20\t60419\trs538242240\tA\tG\t.\tPASS\tR2=0.88\tGT\t1|0\t0|0',
  '',
].join('\n');

class HttpError extends Error {
  constructor(
    public status: number,
    message: string,
  ) {
    super(message);
  }
}

function wesError(status: number, msg: string): Response {
  return Response.json({ msg, status_code: status }, { status });
}

function parseJsonObject(name: string, raw: string, stringValues: boolean): Record<string, any> {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new HttpError(400, `${name} must be a JSON-encoded object (invalid JSON)`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new HttpError(400, `${name} must be a JSON-encoded object`);
  }
  if (stringValues) {
    for (const [k, val] of Object.entries(v)) {
      if (typeof val !== 'string') throw new HttpError(400, `${name}.${k} must be a string`);
    }
  }
  return v as Record<string, any>;
}

const KNOWN_PARTS = new Set([
  'workflow_url',
  'workflow_type',
  'workflow_type_version',
  'workflow_params',
  'tags',
  'workflow_engine_parameters',
  'workflow_engine',
  'workflow_engine_version',
  'workflow_attachment',
]);

/** Raw multipart part names → filenames as sent (Bun's FormData keeps the filename verbatim). */
function safeAttachmentName(name: string): boolean {
  if (!name || name.startsWith('/') || name.includes('\\') || name.includes('\0')) return false;
  return name.split('/').every((seg) => seg !== '..' && seg !== '');
}

export async function startWesFake(options: WesFakeOptions = {}): Promise<WesFake> {
  const version: WesVersion = options.version ?? '1.1.0';
  const is11 = version === '1.1.0';
  const workflowTypes = options.workflowTypes ?? { Nextflow: ['22.10', '23.04'], Snakemake: ['7.32'] };
  const engines = options.workflowEngines ?? { nextflow: ['23.04.1'] };
  const clock: Clock = options.clock ?? new FakeClock(Date.UTC(2025, 0, 1), 1000);
  const tokens = options.tokens ? new Set(options.tokens) : null;
  const tasksPerRun = options.tasksPerRun ?? 3;
  let autoAdvance = options.autoAdvance ?? 'poll';
  let behavior: FaultBehavior | null = options.behavior ?? null;
  const requests: RecordedRequest[] = [];
  const runs = new Map<string, FakeRun>();
  const outcomeQueue: WesOutcome[] = [];
  const pending = new Set<(r: Response) => void>();
  let seq = 0;
  let origin = '';

  const checkOutcome = (o: WesOutcome): void => {
    if (o.state === 'PREEMPTED' && !is11) throw new Error('PREEMPTED does not exist in WES 1.0.0');
  };
  if (options.defaultOutcome) checkOutcome(options.defaultOutcome);

  const TASK_NAMES = ['input_validation', 'quality_control', 'phasing', 'imputation', 'compression'];

  function createRun(request: RunRequest, owner: string | null, attachments: FakeRun['attachments']): FakeRun {
    seq += 1;
    const run: FakeRun = {
      seq,
      run_id: `run-${String(seq).padStart(4, '0')}-${crypto.randomUUID().slice(0, 8)}`,
      owner,
      state: 'QUEUED',
      request,
      attachments,
      outcome: outcomeQueue.shift() ?? options.defaultOutcome ?? { state: 'COMPLETE' },
      systemLogs: [],
      stderr: '',
      tasks: [],
    };
    runs.set(run.run_id, run);
    return run;
  }

  function terminal(run: FakeRun, state: WesState): void {
    const t = isoSeconds(clock.now());
    run.state = state;
    run.end_time = t;
    for (const task of run.tasks) {
      if (!task.end_time) {
        task.end_time = t;
        task.exit_code = state === 'COMPLETE' ? 0 : 1;
      }
    }
  }

  function step(run: FakeRun): WesState {
    switch (run.state) {
      case 'QUEUED':
        run.state = 'INITIALIZING';
        run.start_time = isoSeconds(clock.now());
        break;
      case 'INITIALIZING': {
        run.state = 'RUNNING';
        const t = isoSeconds(clock.now());
        run.tasks = Array.from({ length: tasksPerRun }, (_, i) => ({
          id: `${run.run_id}-task-${i + 1}`,
          name: TASK_NAMES[i % TASK_NAMES.length] ?? `task_${i + 1}`,
          start_time: t,
        }));
        break;
      }
      case 'RUNNING':
      case 'PAUSED': {
        const o = run.outcome;
        if (o.state === 'COMPLETE') {
          run.exit_code = 0;
        } else if (o.state === 'EXECUTOR_ERROR') {
          run.exit_code = o.exitCode ?? 1;
          run.stderr = o.stderr ?? 'Error: workflow step failed';
          run.systemLogs.push(run.stderr);
        } else if (o.state === 'SYSTEM_ERROR') {
          run.systemLogs.push(o.message ?? 'System error: executor unavailable');
        } else {
          run.systemLogs.push('Run preempted by the scheduler');
        }
        terminal(run, o.state);
        break;
      }
      case 'CANCELING':
        if (!run.start_time) run.start_time = isoSeconds(clock.now());
        terminal(run, 'CANCELED');
        break;
      default:
        break; // terminal or UNKNOWN: stays
    }
    return run.state;
  }

  function outputs(run: FakeRun): Record<string, string> {
    if (run.state !== 'COMPLETE') return {};
    const b = `${origin}/fake-files/${run.run_id}`;
    return { imputed_vcf: `${b}/chr20.dose.vcf.gz`, info: `${b}/chr20.info.txt`, qc_report: `${b}/qc_report.txt` };
  }

  function logBody(run: FakeRun) {
    return {
      name: run.request.workflow_url,
      cmd: ['nextflow', 'run', run.request.workflow_url],
      ...(run.start_time ? { start_time: run.start_time } : {}),
      ...(run.end_time ? { end_time: run.end_time } : {}),
      stdout: `${origin}/fake-logs/${run.run_id}/stdout`,
      stderr: `${origin}/fake-logs/${run.run_id}/stderr`,
      ...(run.exit_code !== undefined ? { exit_code: run.exit_code } : {}),
      system_logs: [...run.systemLogs],
    };
  }

  function taskLog(run: FakeRun, t: TaskRecord) {
    return {
      id: t.id,
      name: t.name,
      cmd: ['bash', '-c', t.name],
      ...(t.start_time ? { start_time: t.start_time } : {}),
      ...(t.end_time ? { end_time: t.end_time } : {}),
      stdout: `${origin}/fake-logs/${run.run_id}/stdout`,
      stderr: `${origin}/fake-logs/${run.run_id}/stderr`,
      ...(t.exit_code !== undefined ? { exit_code: t.exit_code } : {}),
      system_logs: [],
    };
  }

  function runLog(run: FakeRun) {
    const base = {
      run_id: run.run_id,
      request: run.request,
      state: run.state,
      run_log: logBody(run),
    };
    if (is11) {
      return { ...base, task_logs_url: `${origin}${WES_BASE}/runs/${run.run_id}/tasks`, task_logs: null, outputs: outputs(run) };
    }
    return { ...base, task_logs: run.tasks.map((t) => taskLog(run, t)), outputs: outputs(run) };
  }

  function stateCounts(): Record<string, number> {
    if (options.systemStateCounts) return { ...options.systemStateCounts };
    const counts: Record<string, number> = {};
    for (const r of runs.values()) counts[r.state] = (counts[r.state] ?? 0) + 1;
    return counts;
  }

  function serviceInfo(): Record<string, unknown> {
    const wtv: Record<string, unknown> = {};
    for (const [t, vs] of Object.entries(workflowTypes)) {
      wtv[t] = options.workflowTypeVersionsShape === 'array' ? [...vs] : { workflow_type_version: [...vs] };
    }
    const common = {
      workflow_type_versions: wtv,
      supported_wes_versions: [version],
      supported_filesystem_protocols: ['http', 'https', 'file'],
      default_workflow_engine_parameters: [{ name: 'max_cpus', type: 'int', default_value: '4' }],
      system_state_counts: stateCounts(),
      auth_instructions_url: 'https://fake-wes.example.org/auth',
      tags: { fake: 'true' },
    };
    let info: Record<string, unknown>;
    if (is11) {
      const wev: Record<string, unknown> = {};
      for (const [e, vs] of Object.entries(engines)) wev[e] = { workflow_engine_version: [...vs] };
      info = {
        id: 'org.example.fake-wes',
        name: 'Fake WES',
        type: { group: 'org.ga4gh', artifact: 'wes', version: '1.1.0' },
        description: 'In-process fake GA4GH WES server for tests',
        organization: { name: 'Example Org', url: 'https://example.org' },
        contactUrl: 'mailto:wes@example.org',
        documentationUrl: 'https://example.org/docs',
        createdAt: '2025-01-01T00:00:00Z',
        updatedAt: '2025-01-01T00:00:00Z',
        environment: 'test',
        version: '0.0.1-fake',
        ...common,
        workflow_engine_versions: wev,
      };
    } else {
      const wev: Record<string, string> = {};
      for (const [e, vs] of Object.entries(engines)) wev[e] = vs[0] ?? '';
      info = { ...common, workflow_engine_versions: wev, contact_info_url: 'mailto:wes@example.org' };
    }
    return { ...info, ...(options.serviceInfo ?? {}) };
  }

  function page<T>(items: T[], seqOf: (t: T) => number, url: URL): { slice: T[]; next: string } {
    const ps = url.searchParams.get('page_size');
    let size = DEFAULT_PAGE;
    if (ps !== null) {
      if (!/^\d+$/.test(ps) || Number(ps) < 1) throw new HttpError(400, 'page_size must be a positive integer');
      size = Math.min(Number(ps), MAX_PAGE);
    }
    const pt = url.searchParams.get('page_token');
    let after = 0;
    if (pt) {
      const d = decodeToken(pt);
      if (d === null) throw new HttpError(400, 'invalid page_token');
      after = d;
    }
    const rest = items.filter((i) => seqOf(i) > after);
    const slice = rest.slice(0, size);
    const last = slice[slice.length - 1];
    const next = rest.length > size && last !== undefined ? encodeToken(seqOf(last)) : '';
    return { slice, next };
  }

  function visibleRun(id: string, token: string | null): FakeRun {
    const run = runs.get(id);
    if (!run || (tokens && run.owner !== token)) throw new HttpError(404, `run ${id} not found`);
    return run;
  }

  async function submit(req: Request, token: string | null, rec: RecordedRequest): Promise<Response> {
    const ct = req.headers.get('content-type') ?? '';
    if (!ct.toLowerCase().startsWith('multipart/form-data')) {
      throw new HttpError(400, 'POST /runs requires multipart/form-data');
    }
    const form = await req.formData().catch(() => null);
    if (!form) throw new HttpError(400, 'malformed multipart body');
    const parts: RecordedPart[] = [];
    const single = new Map<string, string>();
    const attachments: { filename: string; size: number }[] = [];
    const errors: string[] = [];
    for (const [name, value] of form.entries()) {
      if (typeof value === 'string') {
        parts.push({ name, value });
        if (name === 'workflow_attachment') {
          errors.push('workflow_attachment parts must be files with a Content-Disposition filename');
        } else if (single.has(name)) errors.push(`${name} given more than once`);
        else single.set(name, value);
      } else {
        const text = await value.text();
        parts.push({ name, filename: value.name, contentType: value.type, size: value.size, text });
        if (name !== 'workflow_attachment') errors.push(`${name} must not be a file part`);
        else if (!value.name) errors.push('workflow_attachment needs a filename');
        else if (!safeAttachmentName(value.name)) errors.push(`workflow_attachment filename not allowed: ${value.name}`);
        else attachments.push({ filename: value.name, size: value.size });
      }
      if (!KNOWN_PARTS.has(name)) errors.push(`unknown part ${name}`);
    }
    rec.parts = parts;
    if (errors.length) throw new HttpError(400, errors.join('; '));

    const url = single.get('workflow_url');
    if (!url) throw new HttpError(400, 'workflow_url is required');
    if (!URL.canParse(url) && !attachments.some((a) => a.filename === url)) {
      throw new HttpError(400, 'workflow_url must be an absolute URL or the path of a workflow_attachment');
    }
    const type = single.get('workflow_type');
    if (!type) throw new HttpError(400, 'workflow_type is required');
    const versions = workflowTypes[type];
    if (!versions) throw new HttpError(400, `workflow_type ${type} is not supported`);
    const tv = single.get('workflow_type_version');
    if (!tv) throw new HttpError(400, 'workflow_type_version is required');
    if (!versions.includes(tv)) throw new HttpError(400, `workflow_type_version ${tv} is not supported for ${type}`);
    const paramsRaw = single.get('workflow_params');
    if (paramsRaw === undefined) throw new HttpError(400, 'workflow_params is required');
    const params = parseJsonObject('workflow_params', paramsRaw, false);
    const tagsRaw = single.get('tags');
    const tags = tagsRaw === undefined ? {} : parseJsonObject('tags', tagsRaw, true);
    const wepRaw = single.get('workflow_engine_parameters');
    const wep = wepRaw === undefined ? {} : parseJsonObject('workflow_engine_parameters', wepRaw, true);
    const engine = single.get('workflow_engine');
    const engineVersion = single.get('workflow_engine_version');
    if (!is11 && (engine !== undefined || engineVersion !== undefined)) {
      throw new HttpError(400, 'workflow_engine / workflow_engine_version are not supported by WES 1.0.0');
    }
    if (engineVersion !== undefined && !engine) throw new HttpError(400, 'workflow_engine_version requires workflow_engine');
    if (engine !== undefined) {
      const ev = engines[engine];
      if (!ev) throw new HttpError(400, `workflow_engine ${engine} is not supported`);
      if (engineVersion !== undefined && !ev.includes(engineVersion)) {
        throw new HttpError(400, `workflow_engine_version ${engineVersion} is not supported for ${engine}`);
      }
    }
    const request: RunRequest = {
      workflow_params: params,
      workflow_type: type,
      workflow_type_version: tv,
      tags: tags as Record<string, string>,
      workflow_engine_parameters: wep as Record<string, string>,
      workflow_url: url,
      ...(engine !== undefined ? { workflow_engine: engine } : {}),
      ...(engineVersion !== undefined ? { workflow_engine_version: engineVersion } : {}),
    };
    const run = createRun(request, token, attachments);
    return Response.json({ run_id: run.run_id });
  }

  function fault(path: string): FaultBehavior | null {
    if (!behavior) return null;
    const m = behavior.match;
    const hit = m === undefined ? true : typeof m === 'string' ? path.includes(m) : m.test(path);
    if (!hit) return null;
    const b = behavior;
    if (b.times !== undefined) {
      b.times -= 1;
      if (b.times <= 0) behavior = null;
    }
    return b;
  }

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const path = url.pathname;
    const authorization = req.headers.get('authorization');
    const rec: RecordedRequest = {
      method: req.method,
      path,
      query: Object.fromEntries(url.searchParams),
      authorization,
      contentType: req.headers.get('content-type'),
      at: Date.now(),
    };
    requests.push(rec);
    const rel = path.startsWith(WES_BASE) ? path.slice(WES_BASE.length) || '/' : path;

    const f = fault(rel);
    if (f?.mode === 'hang') return new Promise<Response>((resolve) => pending.add(resolve));
    if (f?.mode === 'status500') return wesError(500, 'scripted internal server error');
    if (f?.mode === 'malformedJson') {
      return new Response('{"run_id": "run-0001", "state": "RUNN', { headers: { 'content-type': 'application/json' } });
    }

    const m = /^Bearer (.+)$/i.exec(authorization ?? '');
    const token = m?.[1]?.trim() ?? null;
    const authOk = !tokens || (token !== null && tokens.has(token));
    const needAuth = (): void => {
      if (!authOk) throw new HttpError(401, authorization ? 'invalid bearer token' : 'missing bearer token');
    };

    try {
      // Files and logs served by the fake itself.
      let mm = /^\/fake-files\/([^/]+)\/([^/]+)$/.exec(path);
      if (mm && req.method === 'GET') {
        needAuth();
        const run = visibleRun(mm[1]!, token);
        if (run.state !== 'COMPLETE') throw new HttpError(404, 'no outputs for this run');
        const name = mm[2]!;
        if (name === 'chr20.dose.vcf.gz') {
          return new Response(Bun.gzipSync(new TextEncoder().encode(FAKE_VCF)), {
            headers: { 'content-type': 'application/gzip', 'content-disposition': `attachment; filename="${name}"` },
          });
        }
        if (name === 'chr20.info.txt') return new Response('SNP\tRsq\n20:60343:G:A\t0.91\n20:60419:A:G\t0.88\n');
        if (name === 'qc_report.txt') return new Response(`QC report for ${run.run_id}\nvariants: 2\nsamples: 2\n`);
        throw new HttpError(404, `file ${name} not found`);
      }
      mm = /^\/fake-logs\/([^/]+)\/(stdout|stderr)$/.exec(path);
      if (mm && req.method === 'GET') {
        needAuth();
        const run = visibleRun(mm[1]!, token);
        return new Response(mm[2] === 'stderr' ? run.stderr : `run ${run.run_id}: state ${run.state}\n`);
      }
      if (!path.startsWith(WES_BASE + '/') && path !== WES_BASE) throw new HttpError(404, `no route ${path}`);

      if (rel === '/service-info') {
        if (req.method !== 'GET') throw new HttpError(405, 'method not allowed');
        if (!options.publicServiceInfo) needAuth();
        return Response.json(serviceInfo());
      }
      needAuth();
      if (rel === '/runs') {
        if (req.method === 'POST') return await submit(req, token, rec);
        if (req.method !== 'GET') throw new HttpError(405, 'method not allowed');
        const visible = [...runs.values()].filter((r) => !tokens || r.owner === token);
        const { slice, next } = page(visible, (r) => r.seq, url);
        const items = slice.map((r) =>
          is11
            ? {
                run_id: r.run_id,
                state: r.state,
                ...(r.start_time ? { start_time: r.start_time } : {}),
                ...(r.end_time ? { end_time: r.end_time } : {}),
                tags: r.request.tags,
              }
            : { run_id: r.run_id, state: r.state },
        );
        return Response.json({ runs: items, next_page_token: next });
      }
      mm = /^\/runs\/([^/]+)(\/status|\/cancel|\/tasks(?:\/([^/]+))?)?$/.exec(rel);
      if (!mm) throw new HttpError(404, `no route ${path}`);
      const [, id, sub, taskId] = mm;
      if (sub?.startsWith('/tasks') && !is11) throw new HttpError(404, `no route ${path} in WES 1.0.0`);
      const run = visibleRun(id!, token);
      if (sub === undefined || sub === '/status') {
        if (req.method !== 'GET') throw new HttpError(405, 'method not allowed');
        const body = sub === undefined ? runLog(run) : { run_id: run.run_id, state: run.state };
        if (autoAdvance === 'poll') step(run);
        return Response.json(body);
      }
      if (sub === '/cancel') {
        if (req.method !== 'POST') throw new HttpError(405, 'method not allowed');
        if (!TERMINAL_STATES.includes(run.state)) run.state = 'CANCELING';
        return Response.json({ run_id: run.run_id });
      }
      if (req.method !== 'GET') throw new HttpError(405, 'method not allowed');
      if (taskId !== undefined) {
        const t = run.tasks.find((x) => x.id === taskId);
        if (!t) throw new HttpError(404, `task ${taskId} not found`);
        return Response.json(taskLog(run, t));
      }
      const indexed = run.tasks.map((t, i) => ({ t, i: i + 1 }));
      const { slice, next } = page(indexed, (x) => x.i, url);
      return Response.json({ task_logs: slice.map((x) => taskLog(run, x.t)), next_page_token: next });
    } catch (e) {
      if (e instanceof HttpError) return wesError(e.status, e.message);
      return wesError(500, e instanceof Error ? e.message : String(e));
    }
  }

  const server = Bun.serve({ hostname: '127.0.0.1', port: options.port ?? 0, idleTimeout: 0, fetch: handle });
  const port = server.port ?? 0;
  origin = `http://127.0.0.1:${port}`;

  const getRun = (id: string): FakeRun => {
    const r = runs.get(id);
    if (!r) throw new Error(`unknown run ${id}`);
    return r;
  };

  const control: WesFakeControl = {
    requests,
    runs,
    clock,
    advance: (id) => step(getRun(id)),
    finish: (id) => {
      const r = getRun(id);
      for (let i = 0; i < 10 && !TERMINAL_STATES.includes(r.state); i++) step(r);
      return r.state;
    },
    setState: (id, s) => {
      if (s === 'PREEMPTED' && !is11) throw new Error('PREEMPTED does not exist in WES 1.0.0');
      getRun(id).state = s;
    },
    setOutcome: (id, o) => {
      checkOutcome(o);
      getRun(id).outcome = o;
    },
    queueOutcome: (o) => {
      checkOutcome(o);
      outcomeQueue.push(o);
    },
    setBehavior: (b) => {
      behavior = b;
    },
    setAutoAdvance: (mode) => {
      autoAdvance = mode;
    },
    addRun: (input = {}) => {
      const { owner = null, state, ...req } = input;
      const run = createRun(
        {
          workflow_params: {},
          workflow_type: Object.keys(workflowTypes)[0] ?? 'CWL',
          workflow_type_version: Object.values(workflowTypes)[0]?.[0] ?? '1.0',
          tags: {},
          workflow_engine_parameters: {},
          workflow_url: 'https://example.org/workflow.nf',
          ...req,
        },
        owner,
        [],
      );
      if (state) run.state = state;
      return run;
    },
    reset: () => {
      requests.length = 0;
      runs.clear();
      outcomeQueue.length = 0;
      behavior = null;
    },
  };

  return {
    url: `${origin}${WES_BASE}`,
    origin,
    port,
    control,
    stop: async () => {
      for (const resolve of pending) resolve(wesError(503, 'fake server stopping'));
      pending.clear();
      await server.stop(true);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// GA4GH service registry 1.0.0 fake

export interface RegistryService {
  id: string;
  name: string;
  type: { group: string; artifact: string; version: string };
  organization: { name: string; url: string };
  version: string;
  url: string;
  [k: string]: unknown;
}

export interface RegistryFakeOptions {
  port?: number;
  services?: RegistryService[];
  tokens?: string[];
}

export interface RegistryFake {
  url: string;
  port: number;
  stop(): Promise<void>;
  control: { services: RegistryService[]; requests: RecordedRequest[] };
}

/** Registry served at the server root: /services, /services/types, /services/{id}, /service-info. */
export async function startRegistryFake(options: RegistryFakeOptions = {}): Promise<RegistryFake> {
  const services = options.services ? [...options.services] : [];
  const requests: RecordedRequest[] = [];
  const tokens = options.tokens ? new Set(options.tokens) : null;
  const problem = (status: number, title: string, detail: string): Response =>
    Response.json({ status, title, detail }, { status });
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: options.port ?? 0,
    fetch(req) {
      const url = new URL(req.url);
      const authorization = req.headers.get('authorization');
      requests.push({
        method: req.method,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        authorization,
        contentType: req.headers.get('content-type'),
        at: Date.now(),
      });
      if (tokens) {
        const tok = /^Bearer (.+)$/i.exec(authorization ?? '')?.[1];
        if (!tok || !tokens.has(tok)) return problem(401, 'Unauthorized', 'missing or invalid bearer token');
      }
      if (req.method !== 'GET') return problem(405, 'Method Not Allowed', `${req.method} not supported`);
      const p = url.pathname.replace(/\/+$/, '');
      if (p === '/services') return Response.json(services);
      if (p === '/services/types') {
        const seen = new Map<string, RegistryService['type']>();
        for (const s of services) seen.set(`${s.type.group}|${s.type.artifact}|${s.type.version}`, s.type);
        return Response.json([...seen.values()]);
      }
      if (p === '/service-info') {
        return Response.json({
          id: 'org.example.fake-registry',
          name: 'Fake service registry',
          type: { group: 'org.ga4gh', artifact: 'service-registry', version: '1.0.0' },
          organization: { name: 'Example Org', url: 'https://example.org' },
          version: '0.0.1-fake',
        });
      }
      const m = /^\/services\/([^/]+)$/.exec(p);
      if (m) {
        const id = decodeURIComponent(m[1]!);
        const s = services.find((x) => x.id === id);
        return s ? Response.json(s) : problem(404, 'Not Found', `service ${id} not found`);
      }
      return problem(404, 'Not Found', `no route ${url.pathname}`);
    },
  });
  const port = server.port ?? 0;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    control: { services, requests },
    stop: async () => {
      await server.stop(true);
    },
  };
}
