/**
 * The GET both panel-sync fetchers make (Cloudgene app form, WES service-info) and the one mapping
 * of its result (../upstream-get.ts) to the problems the sync route answers with: timeout → 504
 * `upstream_timeout`; no answer → 502 `upstream_unreachable`; a status the protocol gives a meaning
 * → the caller's problem; any other non-200 → 502 `upstream_error`; a 200 that is not JSON → the
 * caller's `upstream_malformed` problem.
 */
import { HttpProblem } from '@shared/errors.ts';
import { serverMessage, upstreamGet } from '../upstream-get.ts';

/** An app form or a service-info is far smaller; the cap stops a runaway body, not a real one. */
const MAX_SYNC_BODY_BYTES = 8 * 1024 * 1024;
/** Longest piece of server-supplied text (message, redirect target) put in a problem's detail. */
const MAX_QUOTED_LENGTH = 300;

export interface SyncGetRequest {
  url: string;
  headers: Record<string, string>;
  /** The server's base URL, named in the unreachable problem. */
  baseUrl: string;
  /** The problem for a status the protocol gives a meaning (401/403, 404); undefined → `upstream_error`. */
  statusProblem: (httpStatus: number) => HttpProblem | undefined;
  /** The protocol's problem for a 200 that is not what was asked for (an `upstream_malformed`). */
  malformed: (detail: string) => HttpProblem;
}

/** GETs `request.url` within `deps.timeoutMs` and returns the parsed 200 body; throws an HttpProblem otherwise. */
export async function syncGetJson(deps: { fetch?: typeof fetch; timeoutMs: number }, request: SyncGetRequest): Promise<unknown> {
  const answer = await upstreamGet(request.url, {
    headers: request.headers,
    fetch: deps.fetch,
    signal: AbortSignal.timeout(deps.timeoutMs),
    maxBytes: MAX_SYNC_BODY_BYTES,
  });
  switch (answer.kind) {
    case 'timeout':
    case 'aborted':
      throw new HttpProblem(504, 'upstream_timeout', `The server did not answer within ${deps.timeoutMs} ms.`);
    case 'network':
    case 'tls':
      throw new HttpProblem(502, 'upstream_unreachable', `The server at ${request.baseUrl} could not be reached.`);
    case 'http_error':
      throw request.statusProblem(answer.httpStatus) ?? upstreamError(answer.httpStatus, answer.message, answer.location);
  }
  // Only a 200 is the document; another 2xx (204, 206) is not an answer the sync can use.
  if (answer.httpStatus !== 200) throw upstreamError(answer.httpStatus, answer.kind === 'json' ? serverMessage(answer.body) : undefined);
  if (answer.kind === 'malformed') throw request.malformed('The server answered 200 with a body that is not JSON.');
  if (answer.kind === 'too_large') throw request.malformed(`The server answered 200 with a body larger than ${answer.maxBytes} bytes.`);
  return answer.body;
}

function upstreamError(httpStatus: number, message?: string, location?: string): HttpProblem {
  const quoted = message ? `: ${message.slice(0, MAX_QUOTED_LENGTH)}` : '';
  // Redirects are not followed (the target may be a host the outbound policy never approved).
  const hint = location ? ` (a redirect to ${location.slice(0, MAX_QUOTED_LENGTH)}, not followed: check the base URL)` : '';
  return new HttpProblem(502, 'upstream_error', `The server answered HTTP ${httpStatus}${quoted}${hint}.`, { extensions: { upstreamStatus: httpStatus } });
}
