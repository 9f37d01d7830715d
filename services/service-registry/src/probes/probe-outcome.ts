/**
 * What one health probe of an external server found, and the one mapping of a GET's result
 * (../upstream-get.ts) to a status that both protocol probes share: a refused credential is never
 * healthy; no answer at all is `unreachable`.
 */
import type { HealthStatus } from '@shared/schemas/registry.ts';
import { upstreamGet, type UpstreamAnswer } from '../upstream-get.ts';

export type { HealthStatus };
export { joinUrl } from '../upstream-get.ts';

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

/**
 * GETs `url` and reads a JSON body. Never throws: network failures, timeouts and aborts become
 * `unreachable`; 401/403, other non-2xx, redirects, oversized or malformed bodies, TLS failures
 * become `unhealthy`.
 */
export async function getJson(
  url: string,
  init: { signal: AbortSignal; headers?: Record<string, string>; fetch?: typeof fetch },
): Promise<JsonAnswer | FailedAnswer> {
  const answer = await upstreamGet(url, { ...init, maxBytes: MAX_BODY_BYTES });
  if (answer.kind === 'json') return { ok: true, httpStatus: answer.httpStatus, latencyMs: answer.latencyMs, body: answer.body };
  return { ok: false, outcome: failedOutcome(answer) };
}

/** The outcome of a GET that produced no JSON answer. */
function failedOutcome(answer: Exclude<UpstreamAnswer, { kind: 'json' }>): ProbeOutcome {
  switch (answer.kind) {
    case 'http_error':
      return outcome('unhealthy', { latencyMs: answer.latencyMs, httpStatus: answer.httpStatus, error: httpErrorText(answer) });
    case 'too_large':
      return outcome('unhealthy', { latencyMs: answer.latencyMs, httpStatus: answer.httpStatus, error: `response larger than ${answer.maxBytes} bytes` });
    case 'malformed':
      return outcome('unhealthy', { latencyMs: answer.latencyMs, httpStatus: answer.httpStatus, error: `malformed JSON: ${answer.snippet}` });
    case 'timeout':
      return outcome('unreachable', { error: `no answer within ${answer.elapsedMs} ms` });
    case 'aborted':
      return outcome('unreachable', { error: 'probe aborted' });
    case 'tls':
      // The host answered but its certificate is unacceptable: reachable, not usable.
      return outcome('unhealthy', { error: `TLS: ${answer.message}` });
    case 'network':
      return outcome('unreachable', { error: networkErrorText(answer.code, answer.message) });
  }
}

/** The error text for a non-2xx answer, with the server's own message when its body has one. */
function httpErrorText(answer: Extract<UpstreamAnswer, { kind: 'http_error' }>): string {
  const status = answer.httpStatus;
  const message = answer.message ?? answer.snippet;
  const suffix = message ? `: ${message}` : '';
  if (status === 401) return `credential rejected (HTTP 401)${suffix}`;
  if (status === 403) return `access denied (HTTP 403)${suffix}`;
  if (status >= 300 && status < 400) return `HTTP ${status}${answer.location ? ` redirect to ${answer.location}` : ''}`;
  return `HTTP ${status}${suffix}`;
}

function networkErrorText(code: string, message: string): string {
  if (code === 'ECONNREFUSED' || code === 'ConnectionRefused') return 'connection refused';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `DNS lookup failed: ${message}`;
  if (code === 'ECONNRESET' || code === 'ConnectionClosed') return 'connection closed by the server';
  return message || code || 'fetch failed';
}
