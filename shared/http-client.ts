/**
 * Calls between services: a timeout on every call, retries with backoff for idempotent calls on
 * network errors and 5xx, request-id propagation, and responses parsed with the shared schema.
 * Failures surface as `UpstreamError`, an `HttpProblem` that renders as 502/504 naming the service.
 */
import type { z } from '@hono/zod-openapi';
import { HttpProblem } from './errors.ts';

export interface HttpClientOptions {
  /** Name of the service called, used in errors and logs. */
  service: string;
  baseUrl: string;
  timeoutMs?: number;
  /** Extra attempts for idempotent calls. */
  retries?: number;
  retryDelayMs?: number;
  /** Headers added to every call (e.g. a service credential); called per request so it can rotate. */
  headers?: () => Record<string, string> | Promise<Record<string, string>>;
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
}

export interface CallOptions<S extends z.ZodType | undefined> {
  method?: string;
  path: string;
  query?: Record<string, string | number | boolean | undefined | Array<string | number>>;
  /** JSON-encoded unless it is already a BodyInit (FormData, stream, string). */
  body?: unknown;
  headers?: Record<string, string>;
  requestId?: string;
  schema?: S;
  timeoutMs?: number;
  /** Marks a non-GET call as safe to retry (e.g. a PUT or an idempotency-keyed POST). */
  idempotent?: boolean;
}

export class UpstreamError extends HttpProblem {
  readonly service: string;
  /** The upstream's status when it answered; undefined for network failures and timeouts. */
  readonly upstreamStatus: number | undefined;
  /** The upstream's parsed error body, when it sent one. */
  readonly upstreamBody: unknown;

  constructor(service: string, status: number, code: string, detail: string, upstreamStatus?: number, upstreamBody?: unknown) {
    super(status, code, detail, { extensions: { service, ...(upstreamStatus ? { upstreamStatus } : {}) } });
    this.name = 'UpstreamError';
    this.service = service;
    this.upstreamStatus = upstreamStatus;
    this.upstreamBody = upstreamBody;
  }
}

export interface HttpClient {
  readonly service: string;
  call<S extends z.ZodType | undefined = undefined>(
    options: CallOptions<S>,
  ): Promise<S extends z.ZodType ? z.infer<S> : unknown>;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);
const RETRYABLE_STATUS = new Set([500, 502, 503, 504]);

export function createHttpClient(options: HttpClientOptions): HttpClient {
  const doFetch = options.fetch ?? fetch;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const base = options.baseUrl.replace(/\/+$/, '');
  const defaultTimeout = options.timeoutMs ?? 5000;
  const retries = options.retries ?? 2;
  const retryDelayMs = options.retryDelayMs ?? 100;

  async function attempt(call: CallOptions<z.ZodType | undefined>, method: string): Promise<Response> {
    const url = new URL(base + call.path);
    for (const [key, value] of Object.entries(call.query ?? {})) {
      if (value === undefined) continue;
      for (const v of Array.isArray(value) ? value : [value]) url.searchParams.append(key, String(v));
    }
    const headers: Record<string, string> = { accept: 'application/json', ...(await options.headers?.()), ...call.headers };
    if (call.requestId) headers['x-request-id'] = call.requestId;
    let body: RequestInit['body'];
    if (call.body !== undefined) {
      if (isBodyInit(call.body)) body = call.body;
      else {
        body = JSON.stringify(call.body);
        headers['content-type'] ??= 'application/json';
      }
    }
    const timeoutMs = call.timeoutMs ?? defaultTimeout;
    try {
      return await doFetch(url, { method, headers, body, signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
    } catch (err) {
      if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
        throw new UpstreamError(options.service, 504, 'upstream_timeout', `${options.service} did not answer within ${timeoutMs} ms.`);
      }
      throw new UpstreamError(options.service, 502, 'upstream_unreachable', `${options.service} could not be reached.`);
    }
  }

  return {
    service: options.service,
    async call(call) {
      const method = (call.method ?? 'GET').toUpperCase();
      const canRetry = (call.idempotent ?? IDEMPOTENT.has(method)) && !isStream(call.body);
      const maxAttempts = canRetry ? retries + 1 : 1;
      let lastError: unknown;
      for (let i = 0; i < maxAttempts; i++) {
        if (i > 0) await sleep(retryDelayMs * 2 ** (i - 1) * (0.5 + Math.random()));
        let response: Response;
        try {
          response = await attempt(call, method);
        } catch (err) {
          lastError = err;
          continue;
        }
        if (RETRYABLE_STATUS.has(response.status) && i < maxAttempts - 1) {
          await response.body?.cancel();
          continue;
        }
        return (await readResponse(options.service, response, call.schema)) as never;
      }
      throw lastError;
    },
  };
}

async function readResponse(service: string, response: Response, schema: z.ZodType | undefined): Promise<unknown> {
  const text = await response.text();
  let parsed: unknown = undefined;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  if (!response.ok) {
    const detail =
      parsed && typeof parsed === 'object' && 'detail' in parsed && typeof parsed.detail === 'string'
        ? parsed.detail
        : `${service} answered ${response.status}.`;
    // A service that says it is unavailable (its database restarting, say) stays a 503 for the caller's
    // client too: the condition is temporary and a retry may work, unlike a 502.
    if (response.status === 503) throw new UpstreamError(service, 503, 'upstream_unavailable', detail, 503, parsed);
    throw new UpstreamError(service, 502, 'upstream_error', detail, response.status, parsed);
  }
  if (!schema) return parsed;
  const result = schema.safeParse(parsed);
  if (!result.success) {
    throw new UpstreamError(service, 502, 'upstream_invalid_response', `${service} sent a response that does not match its contract.`, response.status);
  }
  return result.data;
}

function isBodyInit(body: unknown): body is NonNullable<RequestInit['body']> {
  return (
    typeof body === 'string' ||
    body instanceof FormData ||
    body instanceof Blob ||
    body instanceof ArrayBuffer ||
    body instanceof Uint8Array ||
    body instanceof URLSearchParams ||
    body instanceof ReadableStream
  );
}

function isStream(body: unknown): boolean {
  return body instanceof ReadableStream;
}
