/**
 * The GA4GH WES 1.0 / 1.1 adapter (protocol reference §3.1–3.2): a multipart `POST /runs` naming the
 * platform's imputation workflow, inputs handed over as signed links, the job's `externalName` in the
 * run's tags so a run can be found again after a crash, RunLog states mapped onto the platform
 * lifecycle, and outputs read from `RunLog.outputs` in the shapes servers actually send.
 */
import type { JobState, JobTarget, StepLine } from '../domain.ts';
import { AdapterError, type ExternalStatus, type ProtocolAdapter, type ResultRef, type ServerCredential, type SubmitRequest } from './adapter.ts';
import {
  downloadFile,
  isRecord,
  jsonApi,
  readCapped,
  readErrorMessage,
  send,
  type ApiErrorWording,
  type HttpDeps,
  type RequestSpec,
} from './adapter-http.ts';
import { multipartBody } from './multipart-body.ts';

export interface WesAdapterDeps {
  fetch?: typeof fetch;
  /** How long a server may stay silent (no answer, no download progress). */
  timeoutMs: number;
  /** The imputation workflow every run executes (`workflow_url`, `workflow_type`, `workflow_type_version`). */
  workflow: { url: string; type: string; typeVersion: string };
  /** Pages of `GET /runs` (100 runs each) `find` walks. Default 20. */
  findPages?: number;
  /** Runs whose list entry carries no tags (WES 1.0) that `find` opens one by one. Default 50. */
  findDepth?: number;
}

/** The tag carrying `SubmitRequest.externalName`. */
const WES_JOB_TAG = 'fip_job';
const PAGE_SIZE = 100;
const TASK_PAGES = 5;
const STDERR_TAIL_CHARS = 2000;

const TOKEN_HINT = 'Check the access token saved for this WES service in your service credentials; it may have expired.';

/** WES wording of API errors; any 401 or 403 is a refused credential. */
const API_ERRORS: ApiErrorWording = {
  subject: 'this run',
  notOfferedHint: 'Check the base URL in the service catalogue (it ends in /ga4gh/wes/v1).',
  redirectHint: 'Check the base URL in the service catalogue.',
  refusal: (status, text) => (status === 401 || status === 403 ? new AdapterError('auth', `The WES server refused the credential: ${text}`, status, TOKEN_HINT) : null),
};

/** Creates the WES adapter for one configured imputation workflow. */
export function createWesAdapter(deps: WesAdapterDeps): ProtocolAdapter {
  const http: HttpDeps = { fetch: deps.fetch ?? fetch, timeoutMs: deps.timeoutMs, serverLabel: 'WES server' };
  const findPages = deps.findPages ?? 20;
  const findDepth = deps.findDepth ?? 50;

  function authHeaders(credential: ServerCredential): Record<string, string> {
    switch (credential.type) {
      case 'none':
        return {};
      case 'basic':
        return { authorization: `Basic ${Buffer.from(`${credential.username}:${credential.password}`, 'utf8').toString('base64')}` };
      default:
        return credential.token ? { authorization: `Bearer ${credential.token}` } : {};
    }
  }

  const callJson = jsonApi(http, (credential) => ({ accept: 'application/json', ...authHeaders(credential) }), API_ERRORS);

  async function runLog(target: JobTarget, credential: ServerCredential, runId: string): Promise<Record<string, unknown>> {
    const body = await callJson(target, credential, `/runs/${encodeURIComponent(runId)}`, { notFound: 'gone' });
    if (!isRecord(body) || typeof body.state !== 'string') {
      throw new AdapterError('transient', `The WES server's answer for run ${runId} is not a RunLog.`, null, 'The platform will look again later.');
    }
    return body;
  }

  /** Task logs: inline (1.0, deprecated in 1.1) or from the 1.1 `/tasks` pages; a server without `/tasks` gives none. */
  async function taskLogs(target: JobTarget, credential: ServerCredential, runId: string, log: Record<string, unknown>): Promise<Record<string, unknown>[]> {
    if (Array.isArray(log.task_logs)) return log.task_logs.filter(isRecord);
    if (typeof log.task_logs_url !== 'string') return [];
    const tasks: Record<string, unknown>[] = [];
    let token = '';
    for (let page = 0; page < TASK_PAGES; page++) {
      let body: unknown;
      try {
        body = await callJson(target, credential, `/runs/${encodeURIComponent(runId)}/tasks?page_size=${PAGE_SIZE}${token ? `&page_token=${encodeURIComponent(token)}` : ''}`, { notFound: 'rejected' });
      } catch (err) {
        // Task logs are optional detail: a server that does not serve them still has a usable status.
        if (err instanceof AdapterError && err.kind === 'rejected') return tasks;
        throw err;
      }
      if (!isRecord(body) || !Array.isArray(body.task_logs)) return tasks;
      tasks.push(...body.task_logs.filter(isRecord));
      token = typeof body.next_page_token === 'string' ? body.next_page_token : '';
      if (!token) break;
    }
    return tasks;
  }

  /** The run's stderr text: inline when the server puts text there, else the tail of the log URL on the server's own origin. */
  async function stderrText(target: JobTarget, credential: ServerCredential, runLogBody: Record<string, unknown>): Promise<string> {
    const stderr = runLogBody.stderr;
    if (typeof stderr !== 'string' || !stderr.trim()) return '';
    if (!/^https?:\/\//i.test(stderr)) return stderr.trim();
    if (!sameOrigin(stderr, target.service.baseUrl)) return '';
    try {
      const spec: RequestSpec = { method: 'GET', url: stderr, headers: authHeaders(credential) };
      const { response, watchdog } = await send(http, spec);
      if (response.status !== 200) {
        await readErrorMessage(response, watchdog);
        return '';
      }
      const text = (await readCapped(response, 256 * 1024, watchdog, true).finally(() => watchdog.stop())) ?? '';
      return text.trim().slice(-STDERR_TAIL_CHARS);
    } catch {
      // The log is a nicety for the message; the state is already known.
      return '';
    }
  }

  return {
    protocol: 'ga4gh-wes',

    async submit(request: SubmitRequest) {
      const { target } = request;
      let inputs: string[];
      try {
        inputs = await Promise.all(request.inputs.map((input) => input.link()));
      } catch (err) {
        if (err instanceof AdapterError) throw err;
        throw new AdapterError('transient', `No download link could be made for the input files: ${err instanceof Error ? err.message : String(err)}`, null, 'The platform will try again.');
      }
      const params = {
        inputs,
        build: request.build,
        phasing: request.phasing,
        population: request.population,
        mode: request.mode,
        r2_filter: request.r2Filter,
        panel: target.panel.externalId,
        password: request.password,
        job_name: request.externalName,
      };
      const form = multipartBody([
        { name: 'workflow_url', value: deps.workflow.url },
        { name: 'workflow_type', value: deps.workflow.type },
        { name: 'workflow_type_version', value: deps.workflow.typeVersion },
        { name: 'workflow_params', value: JSON.stringify(params) },
        { name: 'tags', value: JSON.stringify({ [WES_JOB_TAG]: request.externalName }) },
      ]);
      const body = await callJson(target, request.credential, '/runs', { method: 'POST', notFound: 'rejected', form, signal: request.signal });
      if (isRecord(body) && typeof body.run_id === 'string' && body.run_id) return { externalId: body.run_id };
      throw new AdapterError('transient', "The WES server's answer to the submission carries no run_id.", 200, 'The platform looks the run up by its tag before submitting again.');
    },

    async find(target, credential, externalName) {
      const untagged: string[] = [];
      let token = '';
      for (let page = 0; page < findPages; page++) {
        const body = await callJson(target, credential, `/runs?page_size=${PAGE_SIZE}${token ? `&page_token=${encodeURIComponent(token)}` : ''}`, { notFound: 'rejected' });
        if (!isRecord(body) || !Array.isArray(body.runs)) throw new AdapterError('transient', "The WES server's run list is not understood.", null, 'The platform will look again later.');
        for (const run of body.runs) {
          if (!isRecord(run) || typeof run.run_id !== 'string') continue;
          // 1.1 RunSummary carries the tags; a 1.0 RunStatus does not, and the run must be opened.
          if (isRecord(run.tags)) {
            if (run.tags[WES_JOB_TAG] === externalName) return run.run_id;
          } else untagged.push(run.run_id);
        }
        const next = typeof body.next_page_token === 'string' ? body.next_page_token : '';
        if (!next || next === token) break;
        token = next;
      }
      for (const runId of nearestEnds(untagged, findDepth)) {
        let log: Record<string, unknown>;
        try {
          log = await runLog(target, credential, runId);
        } catch (err) {
          if (err instanceof AdapterError && err.kind === 'gone') continue;
          throw err;
        }
        const tags = isRecord(log.request) && isRecord(log.request.tags) ? log.request.tags : null;
        if (tags?.[WES_JOB_TAG] === externalName) return runId;
      }
      return null;
    },

    async status(target, credential, externalId) {
      const log = await runLog(target, credential, externalId);
      const state = log.state as string;
      if (state === 'UNKNOWN') {
        throw new AdapterError('transient', `The WES server does not know the state of run ${externalId} right now (UNKNOWN).`, null, 'The platform will look again later.');
      }
      const tasks = await taskLogs(target, credential, externalId, log);
      const lines = [...tasks.map(taskLine), ...runLines(log, state)];
      const status = (mapped: JobState, progress: number, error?: ExternalStatus['error']): ExternalStatus => ({
        state: mapped,
        externalState: state,
        progress,
        steps: lines,
        ...(error ? { error } : {}),
      });
      switch (state) {
        case 'QUEUED':
          return status('queued', 0);
        case 'INITIALIZING':
          return status('queued', 5);
        case 'RUNNING':
        case 'PAUSED':
          return status('running', taskProgress(tasks));
        case 'CANCELING':
          // Still occupying the server until it confirms CANCELED.
          return status('running', taskProgress(tasks));
        case 'COMPLETE':
          return status('completed', 100);
        case 'EXECUTOR_ERROR': {
          const runLogBody = isRecord(log.run_log) ? log.run_log : {};
          const exitCode = typeof runLogBody.exit_code === 'number' ? runLogBody.exit_code : null;
          const detail = systemLogs(runLogBody).join('\n') || (await stderrText(target, credential, runLogBody));
          const head = `The workflow failed${exitCode !== null ? ` (exit code ${exitCode})` : ''}.`;
          return status('failed', taskProgress(tasks), {
            code: 'executor_error',
            message: detail ? `${head}\n${detail}` : head,
            hint: 'A workflow step failed on the server; its message above usually says why (often the input files).',
          });
        }
        case 'SYSTEM_ERROR': {
          const detail = systemLogs(isRecord(log.run_log) ? log.run_log : {}).join('\n');
          return status('failed', taskProgress(tasks), {
            code: 'system_error',
            message: detail ? `The WES server failed to run the workflow.\n${detail}` : 'The WES server failed to run the workflow.',
            hint: 'This is a fault of the server, not of the input; try again later or use another service.',
          });
        }
        case 'PREEMPTED':
          return status('failed', taskProgress(tasks), {
            code: 'preempted',
            message: 'The server stopped the run to free its resources (preempted).',
            hint: 'Nothing was wrong with the job; retrying it usually succeeds.',
          });
        case 'CANCELED':
          return status('cancelled', taskProgress(tasks));
        default:
          return status('failed', taskProgress(tasks), {
            code: 'unknown_state',
            message: `The WES server reports state ${state}, which the platform does not know.`,
            hint: 'The server may speak a newer WES version; report this to the platform administrators.',
          });
      }
    },

    async cancel(target, credential, externalId) {
      await callJson(target, credential, `/runs/${encodeURIComponent(externalId)}/cancel`, { method: 'POST', notFound: 'gone' });
    },

    async results(target, credential, externalId) {
      const log = await runLog(target, credential, externalId);
      return outputRefs(log.outputs, target.service.baseUrl);
    },

    async download(target, credential, ref, signal) {
      const url = typeof ref.source.url === 'string' ? ref.source.url : null;
      if (!url) throw new AdapterError('rejected', `The result ${ref.name} has no URL.`);
      if (!/^https?:\/\//i.test(url)) {
        throw new AdapterError('rejected', `The result ${ref.name} is at ${url}, which the platform cannot fetch (only http and https).`, null, 'The WES server must publish its outputs over HTTP(S).');
      }
      // The token only goes back to the server it belongs to, never to a storage host named in an output.
      const own = sameOrigin(url, target.service.baseUrl);
      return downloadFile(http, {
        url,
        name: ref.name,
        signal,
        headersFor: (next) => (own && sameOrigin(next, target.service.baseUrl) ? authHeaders(credential) : {}),
        noLocation: `The download of ${ref.name} was redirected without a location.`,
        goneHint: 'The outputs may have been deleted; run the job again.',
        refusal(status, text, redirected) {
          if (status !== 401 && status !== 403) return null;
          if (own && !redirected) return new AdapterError('auth', `The WES server refused the download of ${ref.name}: ${text}`, status, TOKEN_HINT);
          // A storage host (or a presigned link) that refuses is most often an expired link; the RunLog gives a fresh one.
          return new AdapterError('transient', `The storage host refused the download of ${ref.name}: ${text}`, status, 'The platform will try again.');
        },
      });
    },
  };
}

function sameOrigin(url: string, baseUrl: string): boolean {
  try {
    return new URL(url).origin === new URL(baseUrl).origin;
  } catch {
    return false;
  }
}

/** Up to `limit` ids alternating from the end and the start of the list: servers list runs oldest- or newest-first. */
function nearestEnds(ids: string[], limit: number): string[] {
  const picked: string[] = [];
  for (let i = 0; picked.length < Math.min(limit, ids.length); i++) {
    const fromEnd = ids[ids.length - 1 - i];
    if (fromEnd !== undefined && !picked.includes(fromEnd)) picked.push(fromEnd);
    const fromStart = ids[i];
    if (picked.length < limit && fromStart !== undefined && !picked.includes(fromStart)) picked.push(fromStart);
  }
  return picked;
}

const iso = (value: unknown): string | null => {
  if (typeof value !== 'string') return null;
  const time = new Date(value);
  return Number.isNaN(time.getTime()) ? null : time.toISOString();
};

function systemLogs(log: Record<string, unknown>): string[] {
  return Array.isArray(log.system_logs) ? log.system_logs.filter((l): l is string => typeof l === 'string' && l.trim() !== '').map((l) => l.trim()) : [];
}

function taskLine(task: Record<string, unknown>): StepLine {
  const name = typeof task.name === 'string' && task.name ? task.name : typeof task.id === 'string' ? task.id : 'task';
  const exitCode = typeof task.exit_code === 'number' ? task.exit_code : null;
  const ended = iso(task.end_time);
  const started = iso(task.start_time);
  const logs = systemLogs(task);
  if (exitCode !== null && exitCode !== 0) {
    return { step: name, level: 'error', message: [`Failed with exit code ${exitCode}.`, ...logs].join('\n'), at: ended ?? started };
  }
  if (ended) return { step: name, level: 'info', message: ['Finished.', ...logs].join('\n'), at: ended };
  if (started) return { step: name, level: 'running', message: 'Running.', at: started };
  return { step: name, level: 'info', message: 'Waiting.', at: null };
}

/** Run-level lines: what the server says about the run as a whole. */
function runLines(log: Record<string, unknown>, state: string): StepLine[] {
  const runLogBody = isRecord(log.run_log) ? log.run_log : {};
  const failed = state === 'EXECUTOR_ERROR' || state === 'SYSTEM_ERROR' || state === 'PREEMPTED';
  const at = iso(runLogBody.end_time) ?? iso(runLogBody.start_time);
  const lines: StepLine[] = systemLogs(runLogBody).map((message) => ({ step: 'run', level: failed ? 'error' : 'info', message, at }));
  if (state === 'CANCELING') lines.push({ step: 'run', level: 'warning', message: 'Cancellation requested; the server is stopping the run.', at: null });
  if (state === 'PAUSED') lines.push({ step: 'run', level: 'warning', message: 'The server has paused the run.', at: null });
  return lines;
}

function taskProgress(tasks: Record<string, unknown>[]): number {
  if (tasks.length === 0) return 50;
  const done = tasks.filter((t) => iso(t.end_time) !== null).length;
  return Math.min(95, 10 + Math.round((80 * done) / tasks.length));
}

interface OutputFile {
  output: string;
  url: string;
  basename: string | null;
  size: number | null;
}

const URL_LIKE = /^[a-z][a-z0-9+.-]*:\/\//i;

/**
 * The files among `RunLog.outputs`: `{name: url}` maps, arrays, CWL-style File objects
 * (`location`/`url`/`path`, optional `basename`/`size`) and Directories with a `listing`. Values that
 * are not locations (numbers, plain strings) are outputs of another kind and are skipped.
 */
export function outputRefs(outputs: unknown, baseUrl: string): ResultRef[] {
  const files: OutputFile[] = [];
  const origin = new URL(baseUrl).origin;
  const location = (value: string): string | null => {
    if (URL_LIKE.test(value)) return value;
    // A root-relative location is on the WES server itself.
    if (value.startsWith('/') && !value.startsWith('//')) return origin + value;
    return null;
  };
  const visit = (value: unknown, key: string, depth: number): void => {
    if (depth > 8) return;
    if (typeof value === 'string') {
      const url = location(value);
      if (url) files.push({ output: key, url, basename: null, size: null });
      return;
    }
    if (Array.isArray(value)) {
      for (const item of value) visit(item, key, depth + 1);
      return;
    }
    if (!isRecord(value)) return;
    const where = [value.location, value.url, value.path].find((v): v is string => typeof v === 'string' && v !== '');
    if (where !== undefined && value.class !== 'Directory') {
      const url = location(where);
      if (url) {
        const basename = typeof value.basename === 'string' ? value.basename : typeof value.name === 'string' ? value.name : null;
        const size = typeof value.size === 'number' && Number.isFinite(value.size) && value.size >= 0 ? value.size : null;
        files.push({ output: key, url, basename, size });
      }
      return;
    }
    if (Array.isArray(value.listing)) {
      visit(value.listing, key, depth + 1);
      return;
    }
    for (const [k, v] of Object.entries(value)) visit(v, key ? `${key}.${k}` : k, depth + 1);
  };
  visit(outputs, '', 0);

  const taken = new Set<string>();
  return files.map((file) => {
    const base = file.basename ?? lastSegment(file.url) ?? (file.output || 'output');
    let name = taken.has(base) && file.output ? `${file.output}/${base}` : base;
    for (let i = 2; taken.has(name); i++) name = `${base}.${i}`;
    taken.add(name);
    return { name, sizeBytes: file.size, source: { url: file.url, output: file.output || null } };
  });
}

function lastSegment(url: string): string | null {
  try {
    const segment = new URL(url).pathname.split('/').filter(Boolean).at(-1);
    return segment ? decodeURIComponent(segment) : null;
  } catch {
    return null;
  }
}
