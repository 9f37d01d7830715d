/**
 * The Cloudgene 3 / Michigan Imputation Server 2 adapter (protocol reference §1): raw
 * `X-Auth-Token` (a `Bearer` prefix is refused by the server), one multipart submit carrying the
 * files, numeric job states mapped one by one (§1.6), cancel by GET, and results fetched anonymously
 * from `/share/results/{hash}/{name}` — each GET spends one of the file's limited downloads.
 */
import type { JobState, JobTarget, StepLine } from '../domain.ts';
import { AdapterError, type ExternalStatus, type ProtocolAdapter, type ResultRef, type ServerCredential, type SubmitRequest } from './adapter.ts';
import { downloadFile, isRecord, joinUrl, jsonApi, stripHtml, type ApiErrorWording, type HttpDeps } from './adapter-http.ts';
import { multipartBody, type MultipartPart } from './multipart-body.ts';

export interface CloudgeneAdapterDeps {
  fetch?: typeof fetch;
  /** How long a server may stay silent (no answer, no upload/download progress). */
  timeoutMs: number;
  /** Sent on every call; Cloudgene records it on the job. */
  userAgent?: string;
  /** Pages of `GET /api/v2/jobs` (15 jobs each, newest first) `find` looks through. Default 5. */
  findPages?: number;
}

/** Cloudgene's answer when the per-user active-job limit is reached (§1.5). */
const BUSY_MESSAGE = /jobs per user can be executed simultaneously/i;
/** `/share/results` answer once a file's download counter is used up (§1.7). */
const DOWNLOADS_EXHAUSTED = /max(imum)? downloads exceeded/i;
/** MIS2 step groups (§1.6); the progress estimate counts against them. */
const EXPECTED_STEPS = 4;

const TOKEN_HINT =
  'Create a new API token on the imputation server (tokens expire after 30 days, and creating a new one invalidates the previous one) and save it in your service credentials.';

/** Cloudgene's wording of API errors; 401, 403 and the busy 400 are its own. */
const API_ERRORS: ApiErrorWording = {
  subject: 'this job',
  notOfferedHint: 'Check the service catalogue entry (base URL and app id).',
  redirectHint: 'Check the base URL in the service catalogue (http vs https, moved host).',
  unavailableHint: 'The server is in maintenance or overloaded; the platform will try again.',
  refusal(status, text) {
    if (status === 401) return new AdapterError('auth', `The Cloudgene server refused the API token: ${text}`, status, TOKEN_HINT);
    if (status === 403) {
      return new AdapterError('auth', `The Cloudgene server denied access: ${text}`, status, 'The token belongs to an account that may not see this job, or lacks the rights for this call.');
    }
    if (status === 400 && BUSY_MESSAGE.test(text)) {
      return new AdapterError('busy', text, status, 'The server limits how many jobs one account may run at once; the job waits until one of them ends.');
    }
    return null;
  },
};

interface CloudgeneMessage {
  message: string;
  type: number;
  time: number | null;
}
interface CloudgeneStep {
  name: string;
  messages: CloudgeneMessage[];
}

/** Creates the Cloudgene adapter; `deps.fetch` lets tests and the outbound policy wrap the transport. */
export function createCloudgeneAdapter(deps: CloudgeneAdapterDeps): ProtocolAdapter {
  const http: HttpDeps = { fetch: deps.fetch ?? fetch, timeoutMs: deps.timeoutMs, serverLabel: 'Cloudgene server' };
  const userAgent = deps.userAgent ?? 'federated-imputation-platform/job-processor';
  const findPages = deps.findPages ?? 5;

  function apiHeaders(credential: ServerCredential): Record<string, string> {
    if (credential.type !== 'cloudgene-token') {
      throw new AdapterError('auth', `A Cloudgene server needs an API token; the stored credential is of type '${credential.type}'.`, null, TOKEN_HINT);
    }
    // The raw token: Cloudgene reads `X-Auth-Token` with an empty prefix and answers 401 to `Bearer …`.
    return { 'x-auth-token': credential.token, 'user-agent': userAgent, accept: 'application/json' };
  }

  const callJson = jsonApi(http, apiHeaders, API_ERRORS);

  async function getJob(target: JobTarget, credential: ServerCredential, externalId: string, path: '' | '/status'): Promise<Record<string, unknown>> {
    const body = await callJson(target, credential, `/api/v2/jobs/${encodeURIComponent(externalId)}${path}`, { notFound: 'gone' });
    if (!isRecord(body) || typeof body.state !== 'number') {
      throw new AdapterError('transient', `The Cloudgene server's answer for job ${externalId} is not a job document.`, null, 'The platform will look again later.');
    }
    return body;
  }

  return {
    protocol: 'cloudgene',

    async submit(request: SubmitRequest) {
      const { target } = request;
      const appId = target.service.appId;
      if (!appId) throw new AdapterError('rejected', `The service ${target.service.name} has no Cloudgene app id in the catalogue.`, null, 'An administrator must set the app id (e.g. imputationserver2).');
      if (request.inputs.length === 0) throw new AdapterError('rejected', 'A Cloudgene job needs at least one input file.');
      const fields: [string, string][] = [
        // The full `apps@<panel>@<version>` key when the panel sync learned it; the server also resolves a bare id.
        ['refpanel', target.panel.externalKey ?? target.panel.externalId],
        ['build', request.build],
        ['phasing', request.phasing],
        ['population', request.population.trim() || 'off'],
        ['mode', request.mode],
        ['r2Filter', String(request.r2Filter)],
        ['job-name', request.externalName],
      ];
      if (request.password) fields.push(['password', request.password]);
      const parts: MultipartPart[] = [
        ...fields.map(([name, value]) => ({ name, value })),
        // One `files` part per input, under its own name (the pipeline globs `*.vcf.gz`).
        ...request.inputs.map((input) => ({
          name: 'files',
          filename: input.name,
          contentType: contentTypeFor(input.name),
          size: input.sizeBytes,
          open: () => input.open(),
        })),
      ];
      const form = multipartBody(parts);
      const body = await callJson(target, request.credential, `/api/v2/jobs/submit/${encodeURIComponent(appId)}`, { method: 'POST', notFound: 'rejected', form, signal: request.signal });
      if (isRecord(body) && body.success !== false && typeof body.id === 'string' && body.id) return { externalId: body.id };
      const message = isRecord(body) && typeof body.message === 'string' ? body.message : 'the answer carries no job id';
      if (isRecord(body) && body.success === false) throw new AdapterError('rejected', message, 200, null);
      throw new AdapterError('transient', `The Cloudgene server's answer to the submission is not understood: ${message}`, 200, 'The platform looks the job up by name before submitting again.');
    },

    async find(target, credential, externalName) {
      for (let page = 1; page <= findPages; page++) {
        const body = await callJson(target, credential, `/api/v2/jobs?page=${page}`, { notFound: 'rejected' });
        // Cloudgene 3 answers `{data:[…], next}`; very old servers a bare array of every job.
        const list = Array.isArray(body) ? body : isRecord(body) && Array.isArray(body.data) ? body.data : null;
        if (!list) throw new AdapterError('transient', "The Cloudgene server's job list is not understood.", null, 'The platform will look again later.');
        for (const job of list) {
          if (!isRecord(job) || typeof job.id !== 'string' || typeof job.name !== 'string') continue;
          // The server HTML-escapes job names; ours are plain, but compare both forms.
          if (job.name === externalName || stripHtml(job.name) === externalName) return job.id;
        }
        if (!isRecord(body) || list.length === 0) return null;
        const next = body.next;
        if (typeof next !== 'number' || next <= page) return null;
      }
      return null;
    },

    async status(target, credential, externalId) {
      return mapJob(await getJob(target, credential, externalId, '/status'));
    },

    async cancel(target, credential, externalId) {
      // Cancel is a GET on Cloudgene (a DELETE would remove the job and its results).
      await callJson(target, credential, `/api/v2/jobs/${encodeURIComponent(externalId)}/cancel`, { notFound: 'gone' });
    },

    async results(target, credential, externalId) {
      const job = await getJob(target, credential, externalId, '');
      if (job.state === 7) throw new AdapterError('gone', `The server has deleted the results of job ${externalId} (retired).`, null, 'Run the job again to get results.');
      const refs: ResultRef[] = [];
      const taken = new Set<string>();
      for (const param of Array.isArray(job.outputParams) ? job.outputParams : []) {
        if (!isRecord(param) || param.download === false || !Array.isArray(param.files)) continue;
        const paramName = typeof param.name === 'string' ? param.name : 'output';
        for (const file of param.files) {
          if (!isRecord(file) || typeof file.name !== 'string' || typeof file.hash !== 'string') continue;
          // `files[].name` is already relative to the output folder; only a clash between two outputs needs the output's name.
          const name = taken.has(file.name) ? `${paramName}/${file.name}` : file.name;
          taken.add(name);
          refs.push({
            name,
            sizeBytes: parseSize(file.size),
            source: {
              hash: file.hash,
              fileName: file.name,
              downloadUrl: shareUrl(target.service.baseUrl, file.hash, file.name),
              count: typeof file.count === 'number' ? file.count : null,
              output: paramName,
              // Cloudgene rounds sizes ("17 KB"); sizeBytes is a hint, the download's length is the truth.
              sizeText: typeof file.size === 'string' ? file.size : null,
            },
          });
        }
      }
      return refs;
    },

    async download(target, _credential, ref, signal) {
      const hash = typeof ref.source.hash === 'string' ? ref.source.hash : null;
      const fileName = typeof ref.source.fileName === 'string' ? ref.source.fileName : ref.name;
      const url = hash ? shareUrl(target.service.baseUrl, hash, fileName) : typeof ref.source.downloadUrl === 'string' ? ref.source.downloadUrl : null;
      if (!url) throw new AdapterError('rejected', `The result ${ref.name} has no Cloudgene file hash.`);
      // The hash is the capability: no token goes with a download (imputationbot sends none either).
      // S3-backed instances answer 302 to a presigned URL: followed once, still without credentials.
      const headers = { 'user-agent': userAgent };
      return downloadFile(http, {
        url,
        name: ref.name,
        signal,
        headersFor: () => headers,
        noLocation: `The Cloudgene server redirected the download of ${ref.name} without a location.`,
        goneHint: 'The results may have been deleted; run the job again.',
        refusal: (status, text, redirected) => downloadRefusal(status, text, ref.name, redirected),
      });
    },
  };
}

/** `{base}/share/results/{hash}/{name}`; a name's folders stay path segments (`statistics/snps-excluded.txt`). */
function shareUrl(baseUrl: string, hash: string, name: string): string {
  return joinUrl(baseUrl, `/share/results/${encodeURIComponent(hash)}/${name.split('/').map(encodeURIComponent).join('/')}`);
}

/** Cloudgene's own download refusals: a spent download counter, an expired storage link, a refused token. */
function downloadRefusal(status: number, text: string, name: string, redirected: boolean): AdapterError | null {
  if (status === 400 && DOWNLOADS_EXHAUSTED.test(text)) {
    return new AdapterError(
      'gone',
      `The server's download limit for ${name} is used up ("${text}"); the file can no longer be fetched.`,
      status,
      'Ask the server administrators to reset the download counter, or run the job again.',
    );
  }
  // A presigned storage URL that is refused has usually expired; asking Cloudgene again mints a new one.
  if (redirected && status === 403) return new AdapterError('transient', `The storage link for ${name} was refused: ${text}`, status, 'The platform will try again.');
  if (status === 401 || status === 403) return new AdapterError('auth', `The server refused the download of ${name}: ${text}`, status, null);
  return null;
}

/** MIME type of an input by its extension (the original sent `application/gzip` for everything). */
function contentTypeFor(name: string): string {
  const lower = name.toLowerCase();
  if (lower.endsWith('.gz') || lower.endsWith('.bgz')) return 'application/gzip';
  if (lower.endsWith('.vcf')) return 'text/plain';
  return 'application/octet-stream';
}

/** Cloudgene's rounded human size ("17 KB", "1.2 GB", "512 bytes") in bytes; null when it does not parse. */
export function parseSize(value: unknown): number | null {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return Math.round(value);
  if (typeof value !== 'string') return null;
  const match = /^\s*(\d+(?:[.,]\d+)?)\s*(bytes?|b|kb|mb|gb|tb)?\s*$/i.exec(value);
  if (!match) return null;
  const amount = Number(match[1]!.replace(',', '.'));
  const unit = (match[2] ?? 'b').toLowerCase();
  const factor = unit.startsWith('b') ? 1 : 1024 ** (['kb', 'mb', 'gb', 'tb'].indexOf(unit) + 1);
  return Math.round(amount * factor);
}

// ---------------------------------------------------------------------------------------------
// Job JSON → ExternalStatus (§1.6)

/** The password message MIS2 shows when mail is off; the platform escrows the password, so step lines never repeat it. */
const PASSWORD_IN_MESSAGE = /(password\s*:\s*)(<b>[\s\S]*?<\/b>|\S+)/gi;

function readSteps(job: Record<string, unknown>): CloudgeneStep[] {
  if (!Array.isArray(job.steps)) return [];
  return job.steps.filter(isRecord).map((step) => ({
    name: typeof step.name === 'string' ? step.name : 'Step',
    messages: (Array.isArray(step.logMessages) ? step.logMessages : []).filter(isRecord).map((m) => ({
      message: typeof m.message === 'string' ? m.message : '',
      type: typeof m.type === 'number' ? m.type : 0,
      time: typeof m.time === 'number' && m.time > 0 ? m.time : null,
    })),
  }));
}

const LEVELS: Record<number, StepLine['level']> = { 0: 'info', 1: 'error', 2: 'warning', 3: 'running' };

function stepLines(steps: CloudgeneStep[]): StepLine[] {
  return steps.flatMap((step) =>
    step.messages.map((m) => ({
      step: step.name,
      level: LEVELS[m.type] ?? 'info',
      message: stripHtml(m.message.replace(PASSWORD_IN_MESSAGE, '$1[kept by the platform]')),
      at: m.time === null ? null : new Date(m.time).toISOString(),
    })),
  );
}

/** Running progress: steps that finished (an info/warning line and no running line) out of the app's groups. */
function runningProgress(steps: CloudgeneStep[]): number {
  const finished = steps.filter((s) => s.messages.some((m) => m.type === 0 || m.type === 2) && !s.messages.some((m) => m.type === 3)).length;
  return Math.min(85, 10 + Math.round((75 * finished) / Math.max(EXPECTED_STEPS, steps.length)));
}

/** Why a failed job failed: the error lines (type 1) of its steps, classified QC vs pipeline. */
function failureOf(steps: CloudgeneStep[]): NonNullable<ExternalStatus['error']> {
  const errors = steps.flatMap((s) => s.messages.filter((m) => m.type === 1).map((m) => ({ step: s.name, text: stripHtml(m.message) }))).filter((e) => e.text);
  const message = [...new Set(errors.map((e) => e.text))].join('\n') || 'The server reported the job as failed without an error message.';
  const failing = errors[0]?.step ?? '';
  const qc = /quality control|\bqc\b/i.test(failing) || /strand flip|no chunks passed|allele switch|call rate/i.test(message);
  if (qc) {
    return {
      code: 'qc_failed',
      message,
      hint: "The input did not pass the server's quality control. The QC report (qc_report.txt, statistics/snps-excluded.txt) is among the job's files when the server published it. Common causes: strand flips (align the input to the panel's strand), the wrong build, or too little overlap with the panel.",
    };
  }
  const validation = /validation/i.test(failing);
  return {
    code: 'pipeline_failed',
    message,
    hint: validation
      ? 'The server rejected the input files; check the build, chromosome naming (20 for hg19, chr20 for hg38), one chromosome per file and the sample count.'
      : "The server's pipeline failed; the step messages say where. If it looks like a server fault, try again or use another service.",
  };
}

const num = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null);

/** Maps Cloudgene Job JSON onto the platform lifecycle exactly per the §1.6 table. */
function mapJob(job: Record<string, unknown>): ExternalStatus {
  const state = job.state as number;
  const steps = readSteps(job);
  const deletedOn = num(job.deletedOn);
  const resultsExpireAt = deletedOn !== null && deletedOn > 0 ? new Date(deletedOn) : null;
  const base = { externalState: String(state), steps: stepLines(steps), resultsExpireAt, queuePosition: null as number | null };
  const status = (mapped: JobState, progress: number, error?: ExternalStatus['error']): ExternalStatus => ({ ...base, state: mapped, progress, ...(error ? { error } : {}) });
  switch (state) {
    case 1: {
      const position = num(job.positionInQueue);
      return { ...status('queued', 0), queuePosition: position !== null && position >= 0 ? position : null };
    }
    case 2:
      return status('running', runningProgress(steps));
    case 3:
      // EXPORTING: the pipeline is done but results are still being written; not yet downloadable.
      return status('exporting', 90);
    case 4:
    case 8: // success, retire notice sent: results remain until deletedOn
      return status('completed', 100);
    case 5:
      return status('failed', runningProgress(steps), failureOf(steps));
    case 6:
      return status('cancelled', runningProgress(steps));
    case 7:
      return status('expired', 100, {
        code: 'results_expired',
        message: 'The server has deleted the results of this job (retired).',
        hint: 'Results are kept only for a limited time on the server; run the job again to get them.',
      });
    case 9: {
      // FAILED or CANCELED with a retire date: the state no longer says which; the step lines do.
      const cancelled = steps.some((s) => s.messages.some((m) => /\bcancell?ed\b/i.test(m.message)));
      return cancelled ? status('cancelled', runningProgress(steps)) : status('failed', runningProgress(steps), failureOf(steps));
    }
    case 10:
      return status('failed', runningProgress(steps), {
        code: 'deleted_upstream',
        message: 'The job was deleted on the server.',
        hint: 'Someone removed the job in the server’s web interface; run it again if it is still needed.',
      });
    case -1:
      return status('failed', runningProgress(steps), {
        code: 'server_restarted',
        message: 'The server restarted while the job was running; the job is dead there.',
        hint: 'An administrator of the server can restart the job; otherwise run it again.',
      });
    default:
      return status('failed', runningProgress(steps), {
        code: 'unknown_state',
        message: `The server reports state ${state}, which the platform does not know.`,
        hint: 'The server may run a newer Cloudgene version; report this to the platform administrators.',
      });
  }
}
