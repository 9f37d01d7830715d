/**
 * One GET to an external imputation server (Cloudgene, WES), shared by the health probes and the
 * panel sync: a timed request under the caller's signal, redirects refused, a capped body read,
 * JSON parsing, and every failure classified into a result instead of thrown. Each caller maps the
 * result to its own vocabulary (a probe outcome, a problem for the sync route).
 */

/** What one GET found. Only `json` carries a body; nothing here is ever thrown. */
export type UpstreamAnswer =
  /** A 2xx answer whose body parsed as JSON. */
  | { kind: 'json'; httpStatus: number; latencyMs: number; body: unknown }
  /** A non-2xx answer (3xx included: redirects are never followed). */
  | {
      kind: 'http_error';
      httpStatus: number;
      latencyMs: number;
      /** The server's own message from a JSON error body (`message`, `msg`, `detail`, `title` or `error`). */
      message?: string;
      /** The start of an error body that is not JSON (an HTML error page, plain text). */
      snippet?: string;
      /** Where a 3xx answer points. */
      location?: string;
    }
  /** The caller's signal timed out (`AbortSignal.timeout`) before the answer was read in full. */
  | { kind: 'timeout'; elapsedMs: number }
  /** The caller's signal was aborted for another reason (a stop). */
  | { kind: 'aborted' }
  /** No answer: refused, DNS failure, connection closed. `code` is the runtime's (`ECONNREFUSED`, `ConnectionRefused`). */
  | { kind: 'network'; code: string; message: string }
  /** The host answered but its certificate is unacceptable. */
  | { kind: 'tls'; code: string; message: string }
  /** A 2xx answer whose body is longer than `maxBytes` (the rest was not read). */
  | { kind: 'too_large'; httpStatus: number; latencyMs: number; maxBytes: number }
  /** A 2xx answer whose body is not JSON. */
  | { kind: 'malformed'; httpStatus: number; latencyMs: number; snippet: string };

export interface UpstreamGetOptions {
  /** Ends the request; a timeout reason (`AbortSignal.timeout`) gives `timeout`, any other `aborted`. */
  signal: AbortSignal;
  headers?: Record<string, string>;
  fetch?: typeof fetch;
  /** Largest 2xx body read; a longer one is `too_large` (its size says something else answered). */
  maxBytes: number;
}

/** An error body is read only for the server's message. */
const MAX_ERROR_BODY_BYTES = 4096;

/** Joins a base URL and a path without doubling or dropping the slash. */
export function joinUrl(baseUrl: string, path: string): string {
  return baseUrl.replace(/\/+$/, '') + path;
}

/** GETs `url` asking for JSON and classifies what came back. Never throws. */
export async function upstreamGet(url: string, options: UpstreamGetOptions): Promise<UpstreamAnswer> {
  const { signal, maxBytes } = options;
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  let response: Response;
  try {
    // Redirects are not followed: a redirect could leave the hosts the outbound policy allowed, and a
    // base URL that redirects (http → https, moved host) is a catalogue entry to fix.
    response = await (options.fetch ?? fetch)(url, {
      method: 'GET',
      headers: { accept: 'application/json', ...options.headers },
      signal,
      redirect: 'manual',
    });
  } catch (err) {
    return failure(err, signal, elapsed());
  }

  const httpStatus = response.status;
  if (httpStatus < 200 || httpStatus >= 300) {
    // The status is the answer; an error body that cannot be read only costs the server's message.
    const text = (await readCapped(response, MAX_ERROR_BODY_BYTES, signal).catch(() => '')) ?? '';
    const location = httpStatus >= 300 && httpStatus < 400 ? response.headers.get('location') : null;
    return { kind: 'http_error', httpStatus, latencyMs: elapsed(), ...errorBodyFields(text), ...(location ? { location } : {}) };
  }

  let text: string | undefined;
  try {
    text = await readCapped(response, maxBytes, signal);
  } catch (err) {
    return failure(err, signal, elapsed());
  }
  const latencyMs = elapsed();
  if (text === undefined) return { kind: 'too_large', httpStatus, latencyMs, maxBytes };
  try {
    return { kind: 'json', httpStatus, latencyMs, body: JSON.parse(text) };
  } catch {
    return { kind: 'malformed', httpStatus, latencyMs, snippet: snippet(text) };
  }
}

/**
 * The server's own message in a parsed error body: Cloudgene sends `{message}`, WES `{msg}`, problem
 * details `{title, detail}`. Undefined when there is none.
 */
export function serverMessage(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  for (const key of ['message', 'msg', 'detail', 'title', 'error']) {
    const value = (body as Record<string, unknown>)[key];
    if (typeof value === 'string' && value.trim()) return value.trim();
  }
  return undefined;
}

function errorBodyFields(text: string): { message?: string; snippet?: string } {
  if (!text) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { snippet: snippet(text) };
  }
  const message = serverMessage(parsed);
  return message ? { message } : {};
}

/** The start of a body, whitespace collapsed, for an error text. */
function snippet(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 80 ? `${flat.slice(0, 80)}…` : flat || '(empty body)';
}

/** Classifies a rejected fetch or body read; the signal tells a timeout from a stop. */
function failure(err: unknown, signal: AbortSignal, elapsedMs: number): UpstreamAnswer {
  const name = (signal.aborted ? (signal.reason as { name?: unknown } | undefined)?.name : (err as { name?: unknown } | undefined)?.name) ?? '';
  if (signal.aborted || name === 'TimeoutError' || name === 'AbortError') {
    return name === 'TimeoutError' ? { kind: 'timeout', elapsedMs } : { kind: 'aborted' };
  }
  const code = String((err as { code?: unknown } | undefined)?.code ?? '');
  const message = err instanceof Error ? err.message : String(err);
  if (/CERT|TLS|SSL|SELF_SIGNED|UNABLE_TO_VERIFY/i.test(code)) return { kind: 'tls', code, message };
  return { kind: 'network', code, message };
}

/**
 * Reads at most `maxBytes` of the body as text; undefined when it is longer (the rest is cancelled).
 * Rejects when the signal aborts mid-body.
 */
async function readCapped(response: Response, maxBytes: number, signal: AbortSignal): Promise<string | undefined> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const onAbort = () => void reader.cancel().catch(() => {});
  signal.addEventListener('abort', onAbort, { once: true });
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      signal.throwIfAborted();
      const { done, value } = await reader.read();
      signal.throwIfAborted();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel().catch(() => {});
        return undefined;
      }
      chunks.push(value);
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  return Buffer.concat(chunks).toString('utf8');
}
