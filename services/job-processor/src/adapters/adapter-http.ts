/**
 * HTTP plumbing shared by the protocol adapters: one request with an idle timeout (reset by upload
 * and download progress, so a multi-gigabyte transfer is not cut off while a silent server is),
 * network failures and timeouts turned into `AdapterError('transient')`, capped body reads, the
 * server's own message pulled out of an error body of any shape, and the HTTP status → AdapterError
 * rules of API calls and downloads (each protocol passes in its wording and its own refusals).
 */
import type { JobTarget } from '../domain.ts';
import { AdapterError, type ServerCredential } from './adapter.ts';
import type { MultipartBody } from './multipart-body.ts';

/** A JSON body larger than this is not a job document (a Cloudgene job list is a few hundred KB). */
const MAX_JSON_BYTES = 16 * 1024 * 1024;
/** Error bodies are read only for the server's message. */
const MAX_ERROR_BYTES = 8 * 1024;
/** The hint on every fault the worker retries on its own. */
/** The hint of a transient failure: true while retries remain, not once the job gives up. */
export const RETRY_HINT = 'The platform will try again.';

export interface HttpDeps {
  fetch: typeof fetch;
  /** How long the server may stay silent: no answer, no upload or download progress. */
  timeoutMs: number;
  /** Named in error messages (`Cloudgene server`, `WES server`). */
  serverLabel: string;
}

export interface RequestSpec {
  method: string;
  url: string;
  headers?: Record<string, string>;
  body?: ReadableStream<Uint8Array> | string;
  /** The caller's cancellation; an abort is rethrown as is, never classified as a server fault. */
  signal?: AbortSignal;
}

/** An idle timer: fires `timeoutMs` after the last `poke()`. */
export interface Watchdog {
  readonly signal: AbortSignal;
  poke(): void;
  stop(): void;
  readonly timedOut: boolean;
}

function startWatchdog(timeoutMs: number, outer?: AbortSignal): Watchdog {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new DOMException(`no answer within ${timeoutMs} ms`, 'TimeoutError'));
    }, timeoutMs);
  };
  arm();
  return {
    signal: outer ? AbortSignal.any([outer, controller.signal]) : controller.signal,
    poke: () => {
      if (!controller.signal.aborted) arm();
    },
    stop: () => clearTimeout(timer),
    get timedOut() {
      return timedOut;
    },
  };
}

/**
 * Passes `stream` through, poking the watchdog on every chunk (upload or download progress).
 * `mapError` turns a read failure (the watchdog's own abort, a dropped connection) into what the
 * consumer should see.
 */
function withProgress(
  stream: ReadableStream<Uint8Array>,
  watchdog: Watchdog,
  options: { onEnd?: () => void; mapError?: (err: unknown) => unknown } = {},
): ReadableStream<Uint8Array> {
  const { onEnd, mapError } = options;
  const reader = stream.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        watchdog.poke();
        if (done) {
          onEnd?.();
          controller.close();
        } else controller.enqueue(value);
      } catch (err) {
        onEnd?.();
        controller.error(mapError ? mapError(err) : err);
      }
    },
    async cancel(reason) {
      onEnd?.();
      await reader.cancel(reason).catch(() => undefined);
    },
  });
}

/** What a failed fetch means: the caller's abort is rethrown, anything else is transient. */
export function transportError(err: unknown, spec: RequestSpec, watchdog: Watchdog, deps: HttpDeps): unknown {
  // Already classified (the outbound policy refusing a host, an input stream that failed with one).
  if (err instanceof AdapterError) return err;
  if (spec.signal?.aborted && !watchdog.timedOut) return spec.signal.reason ?? err;
  const where = `${spec.method} ${new URL(spec.url).pathname}`;
  if (watchdog.timedOut) {
    return new AdapterError('transient', `The ${deps.serverLabel} did not answer ${where} within ${deps.timeoutMs} ms.`, null, 'The server may be overloaded or down; the platform will try again.');
  }
  const detail = err instanceof Error ? err.message : String(err);
  return new AdapterError('transient', `The ${deps.serverLabel} could not be reached (${where}): ${detail}`, null, RETRY_HINT);
}

/**
 * Sends one request and returns the response with its watchdog still running (the caller reads the
 * body under it and stops it). Redirects are never followed here: each adapter decides whether one
 * is acceptable (a Cloudgene download may redirect to a presigned URL; an API call may not).
 */
export async function send(deps: HttpDeps, spec: RequestSpec, contentLength?: number | null): Promise<{ response: Response; watchdog: Watchdog }> {
  const watchdog = startWatchdog(deps.timeoutMs, spec.signal);
  const headers: Record<string, string> = { ...spec.headers };
  let body: RequestInit['body'] = spec.body;
  if (spec.body instanceof ReadableStream) {
    body = withProgress(spec.body, watchdog);
    if (contentLength !== null && contentLength !== undefined) headers['content-length'] = String(contentLength);
  }
  try {
    const response = await deps.fetch(spec.url, {
      method: spec.method,
      headers,
      body,
      signal: watchdog.signal,
      redirect: 'manual',
      // Required by the fetch standard for a streamed request body.
      ...(spec.body instanceof ReadableStream ? { duplex: 'half' } : {}),
    } as RequestInit);
    watchdog.poke();
    return { response, watchdog };
  } catch (err) {
    watchdog.stop();
    throw transportError(err, spec, watchdog, deps);
  }
}

/** Reads at most `maxBytes` of a body as text; null when it is longer. */
export async function readCapped(response: Response, maxBytes: number, watchdog: Watchdog, truncate = false): Promise<string | null> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    watchdog.poke();
    if (done) break;
    total += value.length;
    if (total > maxBytes) {
      await reader.cancel().catch(() => undefined);
      if (!truncate) return null;
      chunks.push(value.subarray(0, value.length - (total - maxBytes)));
      break;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The server's own message in an error body: JSON `message`/`msg`/`detail`/`title`/`error`, or the text. */
export function serverMessage(text: string): string {
  const trimmed = text.trim();
  try {
    const parsed: unknown = JSON.parse(trimmed);
    if (typeof parsed === 'string') return clip(parsed);
    if (parsed && typeof parsed === 'object') {
      for (const key of ['message', 'msg', 'detail', 'title', 'error']) {
        const value = (parsed as Record<string, unknown>)[key];
        if (typeof value === 'string' && value.trim()) return clip(value.trim());
      }
    }
  } catch {
    /* not JSON: a plain-text or HTML body */
  }
  return clip(/<[a-z!/]/i.test(trimmed) ? stripHtml(trimmed) : trimmed);
}

const clip = (s: string, max = 1000) => (s.length > max ? `${s.slice(0, max)}…` : s);

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

/** Server messages are HTML fragments (`<b>Error:</b> …<br>`): line breaks kept, tags dropped, entities decoded. */
export function stripHtml(html: string): string {
  return html
    .replace(/<\s*br\s*\/?\s*>/gi, '\n')
    .replace(/<\/\s*(p|div|li|tr|h[1-6])\s*>/gi, '\n')
    .replace(/<[^>]*>/g, '')
    .replace(/&(#x[0-9a-f]+|#\d+|[a-z]+\d*);/gi, (match, entity: string) => {
      const lower = entity.toLowerCase();
      if (lower.startsWith('#')) {
        const code = lower.startsWith('#x') ? Number.parseInt(lower.slice(2), 16) : Number.parseInt(lower.slice(1), 10);
        return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : match;
      }
      return ENTITIES[lower] ?? match;
    })
    .replace(/[ \t]+\n/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

/** Reads a 2xx JSON body; a body that is not JSON is a transient fault (a proxy page, a cut-off answer). */
async function readJson(response: Response, watchdog: Watchdog, spec: RequestSpec, deps: HttpDeps): Promise<unknown> {
  let text: string | null;
  try {
    text = await readCapped(response, MAX_JSON_BYTES, watchdog);
  } catch (err) {
    throw transportError(err, spec, watchdog, deps);
  } finally {
    watchdog.stop();
  }
  const where = `${spec.method} ${new URL(spec.url).pathname}`;
  if (text === null) throw new AdapterError('transient', `The ${deps.serverLabel} answered ${where} with more than ${MAX_JSON_BYTES} bytes.`, response.status);
  try {
    return JSON.parse(text);
  } catch {
    throw new AdapterError('transient', `The ${deps.serverLabel} answered ${where} with a body that is not JSON: ${clip(text.trim(), 200)}`, response.status, RETRY_HINT);
  }
}

/** Reads an error body for its message (never throws; a body that cannot be read gives ''). */
export async function readErrorMessage(response: Response, watchdog: Watchdog): Promise<string> {
  try {
    return serverMessage((await readCapped(response, MAX_ERROR_BYTES, watchdog, true)) ?? '');
  } catch {
    return '';
  } finally {
    watchdog.stop();
  }
}

export const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Joins a base URL and a path without doubling or dropping the slash. */
export const joinUrl = (base: string, path: string) => base.replace(/\/+$/, '') + path;

/**
 * A download body handed to the caller: the watchdog keeps guarding it (a server that stops sending
 * mid-file ends the stream with a transient error instead of hanging the worker) and stops when the
 * stream ends or is cancelled.
 */
function guardedBody(response: Response, watchdog: Watchdog, spec: RequestSpec, deps: HttpDeps): ReadableStream<Uint8Array> {
  if (!response.body) {
    watchdog.stop();
    return new ReadableStream<Uint8Array>({ start: (controller) => controller.close() });
  }
  return withProgress(response.body, watchdog, { onEnd: () => watchdog.stop(), mapError: (err) => transportError(err, spec, watchdog, deps) });
}

/** A Content-Length header as a number, or null. */
function contentLengthOf(response: Response): number | null {
  const raw = response.headers.get('content-length');
  if (raw === null || !/^\d+$/.test(raw.trim())) return null;
  return Number(raw.trim());
}

// ---------------------------------------------------------------------------------------------
// API calls and downloads: the status → AdapterError rules both protocols follow, with the wording
// and the protocol's own answers (credential refusals, Cloudgene's busy 400) passed in.

/** What a 404 means for a call: the job (run) is gone, or the server does not offer the path at all. */
export type NotFound = 'gone' | 'rejected';

/** How one protocol words the errors of its API calls. */
export interface ApiErrorWording {
  /** What a 404 on a job's own URL says the server no longer has (`this job`, `this run`). */
  subject: string;
  /** The hint for a 404 on a path the server should offer (a wrong base URL or app id). */
  notOfferedHint: string;
  /** The hint for a redirected API call (calls never follow redirects). */
  redirectHint: string;
  /** The hint for a 503 (Cloudgene's maintenance answer); other retryable answers get the generic one. */
  unavailableHint?: string;
  /** The protocol's own answers (credential refusals, a busy server), checked first; null falls through to the shared rules. */
  refusal(status: number, text: string): AdapterError | null;
}

/** The AdapterError for a non-2xx API answer; `message` is the server's own ('' when it sent none). */
function apiError(deps: HttpDeps, wording: ApiErrorWording, status: number, message: string, notFound: NotFound, location: string | null): AdapterError {
  const text = message || `HTTP ${status}`;
  const own = wording.refusal(status, text);
  if (own) return own;
  if (status === 404) {
    return notFound === 'gone'
      ? new AdapterError('gone', `The ${deps.serverLabel} no longer has ${wording.subject}: ${text}`, status, null)
      : new AdapterError('rejected', `The ${deps.serverLabel} does not offer this: ${text}`, status, wording.notOfferedHint);
  }
  if (status === 408 || status === 429 || status >= 500) {
    const hint = status === 503 && wording.unavailableHint ? wording.unavailableHint : RETRY_HINT;
    return new AdapterError('transient', `The ${deps.serverLabel} answered HTTP ${status}: ${text}`, status, hint);
  }
  if (status >= 300 && status < 400) {
    return new AdapterError('rejected', `The ${deps.serverLabel} redirected the call${location ? ` to ${location}` : ''}.`, status, wording.redirectHint);
  }
  return new AdapterError('rejected', text, status, null);
}

export interface ApiCallOptions {
  method?: string;
  notFound: NotFound;
  /** A streamed multipart body (a submission), sent with its content type and, when known, its length. */
  form?: MultipartBody;
  signal?: AbortSignal;
}

/** One JSON call to a server's API: `path` below the service's base URL, with the credential's headers. */
export type ApiCall = (target: JobTarget, credential: ServerCredential, path: string, options: ApiCallOptions) => Promise<unknown>;

/**
 * Creates a protocol's API caller: `headers` turns a credential into the request headers (and throws
 * an `auth` AdapterError for a credential the protocol cannot use), a non-2xx answer becomes the
 * AdapterError `apiError` classifies under `wording`, and a 2xx body is read as JSON.
 */
export function jsonApi(deps: HttpDeps, headers: (credential: ServerCredential) => Record<string, string>, wording: ApiErrorWording): ApiCall {
  return async (target, credential, path, options) => {
    const { form } = options;
    const requestHeaders = { ...headers(credential), ...(form ? { 'content-type': form.contentType } : {}) };
    const spec: RequestSpec = { method: options.method ?? 'GET', url: joinUrl(target.service.baseUrl, path), headers: requestHeaders, body: form?.body, signal: options.signal };
    const { response, watchdog } = await send(deps, spec, form?.contentLength);
    if (response.status < 200 || response.status >= 300) {
      const message = await readErrorMessage(response, watchdog);
      throw apiError(deps, wording, response.status, message, options.notFound, response.headers.get('location'));
    }
    return readJson(response, watchdog, spec, deps);
  };
}

export interface DownloadRequest {
  url: string;
  /** The result's name, for messages. */
  name: string;
  signal?: AbortSignal;
  /** Headers for a URL: the first one and the one a redirect names (credentials only where they belong). */
  headersFor(url: string): Record<string, string>;
  /** The message for a redirect that names no location. */
  noLocation: string;
  /** The hint for a file the server no longer has (404, 410). */
  goneHint: string;
  /** The protocol's own refusals (credentials, a spent download counter), checked first; null falls through to the shared rules. */
  refusal(status: number, text: string, redirected: boolean): AdapterError | null;
}

/**
 * One GET of a result file, following at most one redirect (storage-backed servers answer with a
 * presigned URL); the body is handed over still guarded by the watchdog. A refusal becomes the
 * AdapterError the request's `refusal` or the shared rules give.
 */
export async function downloadFile(deps: HttpDeps, request: DownloadRequest): Promise<{ body: ReadableStream<Uint8Array>; sizeBytes: number | null }> {
  const { url, name, signal } = request;
  let spec: RequestSpec = { method: 'GET', url, headers: request.headersFor(url), signal };
  let { response, watchdog } = await send(deps, spec);
  let redirected = false;
  if (response.status >= 300 && response.status < 400) {
    const location = response.headers.get('location');
    watchdog.stop();
    await response.body?.cancel().catch(() => undefined);
    if (!location) throw new AdapterError('rejected', request.noLocation, response.status);
    const next = new URL(location, url).toString();
    spec = { method: 'GET', url: next, headers: request.headersFor(next), signal };
    ({ response, watchdog } = await send(deps, spec));
    redirected = true;
    if (response.status >= 300 && response.status < 400) {
      watchdog.stop();
      await response.body?.cancel().catch(() => undefined);
      throw new AdapterError('rejected', `The download of ${name} redirected more than once.`, response.status);
    }
  }
  if (response.status === 200 || response.status === 204) {
    return { body: guardedBody(response, watchdog, spec, deps), sizeBytes: response.status === 204 ? 0 : contentLengthOf(response) };
  }
  const status = response.status;
  const text = (await readErrorMessage(response, watchdog)) || `HTTP ${status}`;
  const own = request.refusal(status, text, redirected);
  if (own) throw own;
  if (status === 404 || status === 410) throw new AdapterError('gone', `The server no longer has ${name}: ${text}`, status, request.goneHint);
  if (status === 408 || status === 429 || status >= 500) throw new AdapterError('transient', `The server answered HTTP ${status} for ${name}: ${text}`, status, RETRY_HINT);
  throw new AdapterError('rejected', `The server refused the download of ${name}: ${text}`, status, null);
}
