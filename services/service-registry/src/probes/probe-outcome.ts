/**
 * What one health probe of an external server found, and the HTTP plumbing both protocol probes
 * share: a timed GET under the caller's abort signal, a capped body read, and one mapping of
 * failures to statuses (a refused credential is never healthy; no answer at all is `unreachable`).
 */
import type { HealthStatus } from '@shared/schemas/registry.ts';

export type { HealthStatus };

export interface ProbeOutcome {
  status: HealthStatus;
  /** Time until the answer was read in full; null when there was no answer. */
  latencyMs: number | null;
  httpStatus: number | null;
  error: string | null;
  /** Jobs waiting on the server, when it reports them. */
  queueSize: number | null;
  /** Jobs running on the server, when it reports them. */
  runningJobs: number | null;
}

/** Options every protocol probe takes. */
export interface ProbeOptions {
  /** Ends the probe (the prober passes a per-service timeout); an aborted probe is `unreachable`. */
  signal: AbortSignal;
  fetch?: typeof fetch;
  /** The operator's own credential for this server, when one is configured. */
  operatorToken?: string;
}

/** Longest error text stored per check. */
export const MAX_ERROR_LENGTH = 300;
/** Health answers are small; a larger body means something else answered. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Collapses whitespace and caps `text` at MAX_ERROR_LENGTH characters. */
export function errorText(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length <= MAX_ERROR_LENGTH ? flat : `${flat.slice(0, MAX_ERROR_LENGTH - 1)}…`;
}

export function outcome(status: HealthStatus, fields: Partial<Omit<ProbeOutcome, 'status'>> = {}): ProbeOutcome {
  return {
    status,
    latencyMs: fields.latencyMs ?? null,
    httpStatus: fields.httpStatus ?? null,
    error: fields.error == null ? null : errorText(fields.error),
    queueSize: fields.queueSize ?? null,
    runningJobs: fields.runningJobs ?? null,
  };
}

/** A 2xx answer whose body parsed as JSON. */
export interface JsonAnswer {
  ok: true;
  httpStatus: number;
  latencyMs: number;
  body: unknown;
}

/** Anything else, already mapped to an outcome. */
export interface FailedAnswer {
  ok: false;
  outcome: ProbeOutcome;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Joins a base URL and a path without doubling or dropping the slash. */
export function joinUrl(baseUrl: string, path: string): string {
  return baseUrl.replace(/\/+$/, '') + path;
}

/**
 * GETs `url` and reads a JSON body. Never throws: network failures, timeouts and aborts become
 * `unreachable`; 401/403, other non-2xx, redirects, oversized or malformed bodies become `unhealthy`.
 */
export async function getJson(
  url: string,
  init: { signal: AbortSignal; headers?: Record<string, string>; fetch?: typeof fetch },
): Promise<JsonAnswer | FailedAnswer> {
  const doFetch = init.fetch ?? fetch;
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  let response: Response;
  try {
    // Redirects are not followed: a redirect could leave the hosts the outbound policy allowed, and a
    // base URL that redirects (http → https, moved host) is a catalogue entry to fix.
    response = await doFetch(url, {
      method: 'GET',
      headers: { accept: 'application/json', ...init.headers },
      signal: init.signal,
      redirect: 'manual',
    });
  } catch (err) {
    return { ok: false, outcome: failureOutcome(err, init.signal, elapsed()) };
  }

  const httpStatus = response.status;
  if (httpStatus < 200 || httpStatus >= 300) {
    const text = await readCapped(response, 4096, init.signal).catch(() => '');
    const latencyMs = elapsed();
    return { ok: false, outcome: outcome('unhealthy', { latencyMs, httpStatus, error: httpError(response, text ?? '') }) };
  }

  let text: string | undefined;
  try {
    text = await readCapped(response, MAX_BODY_BYTES, init.signal);
  } catch (err) {
    return { ok: false, outcome: failureOutcome(err, init.signal, elapsed()) };
  }
  const latencyMs = elapsed();
  if (text === undefined) {
    return { ok: false, outcome: outcome('unhealthy', { latencyMs, httpStatus, error: `response larger than ${MAX_BODY_BYTES} bytes` }) };
  }
  try {
    return { ok: true, httpStatus, latencyMs, body: JSON.parse(text) };
  } catch {
    return { ok: false, outcome: outcome('unhealthy', { latencyMs, httpStatus, error: `malformed JSON: ${snippet(text)}` }) };
  }
}

/** The error text for a non-2xx answer, with the server's own message when its body has one. */
function httpError(response: Response, body: string): string {
  const status = response.status;
  const message = serverMessage(body);
  const suffix = message ? `: ${message}` : '';
  if (status === 401) return `credential rejected (HTTP 401)${suffix}`;
  if (status === 403) return `access denied (HTTP 403)${suffix}`;
  if (status >= 300 && status < 400) {
    const location = response.headers.get('location');
    return `HTTP ${status}${location ? ` redirect to ${location}` : ''}`;
  }
  return `HTTP ${status}${suffix}`;
}

/** Cloudgene errors are `{message}`, WES errors `{msg}`, registry errors `{title, detail}`. */
function serverMessage(body: string): string | undefined {
  if (!body) return undefined;
  try {
    const parsed = JSON.parse(body) as Record<string, unknown>;
    for (const key of ['message', 'msg', 'detail', 'title', 'error']) {
      const value = parsed?.[key];
      if (typeof value === 'string' && value.trim()) return value;
    }
    return undefined;
  } catch {
    return snippet(body);
  }
}

function snippet(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 80 ? `${flat.slice(0, 80)}…` : flat || '(empty body)';
}

/** Maps a rejected fetch or body read to an outcome; the signal tells a timeout from a stop. */
function failureOutcome(err: unknown, signal: AbortSignal, elapsedMs: number): ProbeOutcome {
  if (signal.aborted) {
    const reason = signal.reason as { name?: string } | undefined;
    const error = reason?.name === 'TimeoutError' ? `no answer within ${elapsedMs} ms` : 'probe aborted';
    return outcome('unreachable', { error });
  }
  const code = String((err as { code?: unknown })?.code ?? '');
  const message = err instanceof Error ? err.message : String(err);
  if (/CERT|TLS|SSL|SELF_SIGNED|UNABLE_TO_VERIFY/i.test(code)) {
    // The host answered but its certificate is unacceptable: reachable, not usable.
    return outcome('unhealthy', { error: `TLS: ${message}` });
  }
  if (code === 'ECONNREFUSED' || code === 'ConnectionRefused') return outcome('unreachable', { error: 'connection refused' });
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return outcome('unreachable', { error: `DNS lookup failed: ${message}` });
  if (code === 'ECONNRESET' || code === 'ConnectionClosed') return outcome('unreachable', { error: 'connection closed by the server' });
  return outcome('unreachable', { error: message || code || 'fetch failed' });
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
