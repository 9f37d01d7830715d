/**
 * The gateway's streaming reverse proxy: one `/api/*` request in, one upstream request out, bodies
 * streamed both ways without buffering. Failures the gateway itself causes or observes (no route,
 * body too large, upstream silent, upstream unreachable, circuit open) are answered as RFC 9457
 * problems naming the service; anything the upstream answered, including its 5xx, is passed through
 * untouched.
 */
import type { CircuitBreaker } from '@shared/circuit-breaker.ts';
import { problemBody, problemResponse } from '@shared/errors.ts';
import type { Logger } from '@shared/log.ts';
import { formatBytes } from '@shared/format-bytes.ts';
import { limitedBody } from './body-limits.ts';
import { errorName } from './log-safe.ts';
import { resolveRoute, type UpstreamName } from './route-table.ts';

/**
 * Connection-scoped headers (RFC 9110 §7.6.1) that must not cross a proxy in either direction.
 * `proxy-connection` is not standard but old clients still send it with the same meaning.
 */
export const HOP_BY_HOP_HEADERS: readonly string[] = [
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
];

/**
 * Identity headers a client might send to impersonate someone; services must only trust identity
 * they verified themselves, so the gateway removes every client-sent copy. Whole families go by
 * prefix (`UNTRUSTED_HEADER_PREFIXES`); these are the exact names outside them.
 */
export const UNTRUSTED_IDENTITY_HEADERS: readonly string[] = [
  'x-forwarded-user',
  'x-authenticated-user',
  'x-remote-user',
  'remote-user',
  'x-client-ip',
  'x-real-ip',
  'true-client-ip',
  'cf-connecting-ip',
  'forwarded',
  // Framework conventions for overriding the method or path behind a proxy's back.
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
  'x-original-url',
  'x-rewrite-url',
];

/**
 * Header families a backend might read identity, roles or routing from: user and identity claims,
 * auth results, service identity, internal markers, and every `X-Forwarded-*` (the gateway sets its own).
 */
export const UNTRUSTED_HEADER_PREFIXES: readonly string[] = [
  'x-user',
  'x-identity',
  'x-auth-',
  'x-authenticated-',
  'x-service-',
  'x-internal-',
  'x-forwarded-',
  'x-original-',
];

/** Time allowed for an upstream to send its response headers; a function so it can vary per route. */
export type TimeoutPolicy = (service: UpstreamName, method: string, path: string) => number;

/** What happened to one proxied request, for metrics and access logs. */
export interface ProxyOutcome {
  service: UpstreamName;
  method: string;
  /** Path on the upstream (without the query string). */
  path: string;
  /** 'response': the upstream answered (any status); the other kinds are gateway-generated answers. */
  kind: 'response' | 'timeout' | 'unreachable' | 'client_aborted' | 'circuit_open' | 'body_too_large';
  status: number;
  /** Time to upstream response headers (or to the failure), in ms. */
  durationMs: number;
}

export interface ProxyDeps {
  /** Base URL of each upstream, e.g. `http://127.0.0.1:8003`; a path prefix on the base is kept. */
  upstreams: Record<UpstreamName, string>;
  /**
   * Maximum time to upstream response headers, or a policy per request; a response body that is
   * already streaming is never cut. Uploads need a long one: their headers come after the whole body.
   */
  timeoutMs: number | TimeoutPolicy;
  fetch?: typeof fetch;
  /** Monotonic clock in ms for `ProxyOutcome.durationMs`. */
  now?: () => number;
  /** Called once per routed request when its outcome is known (headers received or failure); must not throw. */
  onOutcome?: (outcome: ProxyOutcome) => void;
  /**
   * One circuit per upstream: timeouts and unreachable upstreams count as failures, any answer as a
   * success; while a circuit is open requests to that upstream fail fast with 503.
   */
  breaker?: CircuitBreaker;
  /** Receives upstream failures and circuit changes; lines carry the upstream path, never the query or headers. */
  logger?: Logger;
}

export interface ProxyOptions {
  requestId: string;
  /**
   * The client's address as the gateway determined it (the socket peer, or the trusted proxy's
   * `X-Forwarded-For` hop); sent as the only `X-Forwarded-For` value, since backends take the last hop.
   */
  clientIp?: string;
  /** Largest request body to forward: a larger declared length is refused with 413, a longer stream cut with 413. */
  maxBodyBytes?: number;
}

export type Proxy = (request: Request, options: ProxyOptions) => Promise<Response>;

const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);

/**
 * Builds the gateway's reverse proxy over the given upstreams. The returned function never throws
 * and never answers 500: a missing route is a 404 problem, a body over the limit a 413, a silent
 * upstream a 504, an unreachable one a 502, an upstream whose circuit is open a 503.
 */
export function createProxy(deps: ProxyDeps): Proxy {
  const doFetch = deps.fetch ?? fetch;
  const now = deps.now ?? (() => performance.now());
  const policy = deps.timeoutMs;
  const timeoutFor: TimeoutPolicy = typeof policy === 'number' ? () => policy : policy;
  const bases = Object.fromEntries(
    Object.entries(deps.upstreams).map(([name, base]) => [name, base.replace(/\/+$/, '')]),
  ) as Record<UpstreamName, string>;

  return async (request, options) => {
    const incoming = splitUrl(request.url);
    const route = resolveRoute(incoming.pathname);
    if (!route) {
      return problemResponse(
        problemBody({
          status: 404,
          code: 'route_not_found',
          detail: `No service serves ${incoming.pathname}.`,
          instance: incoming.pathname,
          requestId: options.requestId,
        }),
      );
    }

    const { service, path } = route;
    const method = request.method;
    const started = now();
    const report = (kind: ProxyOutcome['kind'], status: number) =>
      deps.onOutcome?.({ service, method, path, kind, status, durationMs: now() - started });

    const maxBytes = options.maxBodyBytes;
    const declared = request.headers.get('content-length');
    if (maxBytes !== undefined && declared !== null && Number(declared) > maxBytes) {
      report('body_too_large', 413);
      return bodyTooLarge(maxBytes);
    }

    const breaker = deps.breaker;
    if (breaker && !breaker.allow(service)) {
      report('circuit_open', 503);
      const retryAfter = Math.max(1, Math.ceil(breaker.retryInMs(service) / 1000));
      return gatewayProblem(503, 'upstream_circuit_open', `${service} is failing; the gateway is not calling it for ${retryAfter} s.`, {
        'retry-after': String(retryAfter),
      });
    }

    // The timer only guards the wait for headers; it is cleared as soon as they arrive, so a long
    // download keeps streaming. The client's own signal is joined so a client that goes away
    // releases the upstream request and its body too (a listener instead of AbortSignal.any, which
    // allocates a composite signal per request; the listener stays, like the composite did).
    const timeoutMs = timeoutFor(service, method, path);
    const upstreamAbort = new AbortController();
    let timedOut = false;
    let overLimit = false;
    const handle = setTimeout(() => {
      timedOut = true;
      upstreamAbort.abort();
    }, timeoutMs);
    const clientSignal = request.signal;
    if (clientSignal.aborted) upstreamAbort.abort(clientSignal.reason);
    else clientSignal.addEventListener('abort', () => upstreamAbort.abort(clientSignal.reason), { once: true });

    // A declared length is enforced by HTTP framing; only a chunked body has to be counted on the way.
    const body =
      request.body && maxBytes !== undefined && declared === null
        ? limitedBody(request.body, maxBytes, () => {
            overLimit = true;
            upstreamAbort.abort();
          })
        : request.body;

    let upstream: Response;
    try {
      upstream = await doFetch(bases[service] + path + incoming.query, {
        method,
        headers: forwardedRequestHeaders(request, incoming, options),
        body,
        duplex: 'half',
        redirect: 'manual',
        // Bun's fetch would otherwise inflate the body yet keep Content-Encoding and Content-Length,
        // handing the client a body that contradicts its own headers.
        decompress: false,
        signal: upstreamAbort.signal,
      });
    } catch (err) {
      if (overLimit) {
        report('body_too_large', 413);
        return bodyTooLarge(maxBytes!);
      }
      if (timedOut) {
        report('timeout', 504);
        failed('timeout', err);
        return gatewayProblem(504, 'upstream_timeout', `${service} did not answer within ${timeoutMs} ms.`);
      }
      if (clientSignal.aborted) {
        // Nobody is left to read this; the status only tells logs and metrics what happened.
        report('client_aborted', 499);
        return gatewayProblem(499, 'client_closed_request', 'The client closed the request.');
      }
      report('unreachable', 502);
      failed('unreachable', err);
      return gatewayProblem(502, 'upstream_unreachable', `${service} could not be reached.`);
    } finally {
      clearTimeout(handle);
    }

    if (breaker && breaker.state(service) !== 'closed') {
      deps.logger?.info('upstream circuit closed', { service });
    }
    breaker?.success(service);
    report('response', upstream.status);
    if (method === 'HEAD' || NULL_BODY_STATUSES.has(upstream.status)) {
      await upstream.body?.cancel().catch(() => {});
      return new Response(null, { status: upstream.status, statusText: upstream.statusText, headers: withoutHopByHop(upstream.headers) });
    }
    return passThrough(upstream);

    function failed(kind: 'timeout' | 'unreachable', err: unknown): void {
      const before = breaker?.state(service);
      breaker?.failure(service);
      // The upstream path only: the query may hold a download link's signature.
      deps.logger?.warn('upstream failed', { service, method, path, kind, requestId: options.requestId, error: errorName(err) });
      if (breaker && before !== 'open' && breaker.state(service) === 'open') {
        deps.logger?.warn('upstream circuit opened', { service, retryInMs: breaker.retryInMs(service) });
      }
    }

    function bodyTooLarge(limit: number): Response {
      return gatewayProblem(413, 'body_too_large', `This route accepts bodies of at most ${formatBytes(limit)}.`, {}, { limitBytes: limit });
    }

    function gatewayProblem(status: number, code: string, detail: string, headers: Record<string, string> = {}, extra: Record<string, unknown> = {}): Response {
      return problemResponse(
        problemBody({
          status,
          code,
          detail,
          instance: incoming.pathname,
          requestId: options.requestId,
          extensions: { service, ...extra },
        }),
        headers,
      );
    }
  };
}

/** What the proxy reads from the request URL. */
interface IncomingUrl {
  /** `http` or `https`. */
  scheme: string;
  /** `host[:port]` as in the URL. */
  host: string;
  pathname: string;
  /** The raw query string including '?', exactly as the client sent it so repeated and odd params survive; '' when none. */
  query: string;
}

/**
 * Splits a request URL without a full parse. A Request's `url` is already a serialized WHATWG URL
 * (Bun.serve and `new Request` both normalize it: dot segments resolved, backslashes turned, unsafe
 * characters escaped), and in a serialized http(s) URL the authority holds no '/', '?' or '#', so
 * the pathname is exactly the text from the first '/' after it up to '?' or '#', which is what
 * `new URL(url).pathname` returns. Anything else takes the full parse.
 */
function splitUrl(url: string): IncomingUrl {
  const scheme = url.startsWith('http://') ? 'http' : url.startsWith('https://') ? 'https' : '';
  const authorityStart = scheme.length + 3;
  const pathStart = scheme ? url.indexOf('/', authorityStart) : -1;
  if (pathStart === -1) {
    const parsed = new URL(url);
    return { scheme: parsed.protocol.replace(/:$/, ''), host: parsed.host, pathname: parsed.pathname, query: parsed.search };
  }
  const authority = url.slice(authorityStart, pathStart);
  const q = url.indexOf('?', pathStart);
  const hash = url.indexOf('#', pathStart);
  const queryStart = q !== -1 && (hash === -1 || q < hash) ? q : -1;
  const pathEnd = queryStart !== -1 ? queryStart : hash !== -1 ? hash : url.length;
  return {
    scheme,
    host: authority.slice(authority.lastIndexOf('@') + 1),
    pathname: url.slice(pathStart, pathEnd),
    query: queryStart === -1 ? '' : url.slice(queryStart, hash === -1 ? url.length : hash),
  };
}

/**
 * The upstream's response as the client's: hop-by-hop headers removed in place and the same
 * Response returned, so Bun hands the body from the upstream socket to the client's natively.
 * Building a new Response around `upstream.body` would route every chunk through a JS
 * ReadableStream. Should a runtime make fetch() response headers immutable, it falls back to a copy.
 */
function passThrough(upstream: Response): Response {
  try {
    stripHopByHop(upstream.headers);
    return upstream;
  } catch {
    return new Response(upstream.body, { status: upstream.status, statusText: upstream.statusText, headers: withoutHopByHop(upstream.headers) });
  }
}

const HOP_BY_HOP = new Set(HOP_BY_HOP_HEADERS);
const UNTRUSTED_EXACT = new Set(UNTRUSTED_IDENTITY_HEADERS);

/** The header names a `Connection` header value lists (lower-case); they are hop-by-hop too. */
function connectionOptions(value: string | null): string[] {
  if (!value) return [];
  const names: string[] = [];
  for (const token of value.split(',')) {
    const name = token.trim().toLowerCase();
    if (name) names.push(name);
  }
  return names;
}

/** Removes hop-by-hop headers, including any the `Connection` header names, from `headers` itself. */
function stripHopByHop(headers: Headers): void {
  for (const name of connectionOptions(headers.get('connection'))) headers.delete(name);
  for (const name of HOP_BY_HOP_HEADERS) headers.delete(name);
}

/** A copy of `headers` without hop-by-hop headers, including any the `Connection` header names. */
function withoutHopByHop(headers: Headers): Headers {
  const out = new Headers(headers);
  stripHopByHop(out);
  return out;
}

/** Whether a client-sent request header must not reach a backend (see `UNTRUSTED_IDENTITY_HEADERS`). */
export function isUntrustedHeader(name: string): boolean {
  const lower = name.toLowerCase();
  if (UNTRUSTED_EXACT.has(lower)) return true;
  for (const prefix of UNTRUSTED_HEADER_PREFIXES) if (lower.startsWith(prefix)) return true;
  return false;
}

/**
 * The headers sent upstream, built in one pass over the client's: hop-by-hop headers (and those
 * `Connection` names), `Host` (fetch would send a caller-supplied one verbatim; the upstream must see
 * its own) and untrusted identity headers are left out; the gateway's own are set.
 */
function forwardedRequestHeaders(request: Request, incoming: IncomingUrl, options: ProxyOptions): Headers {
  const source = request.headers;
  const named = connectionOptions(source.get('connection'));
  const out = new Headers();
  let acceptEncoding = false;
  for (const [name, value] of source) {
    // Names come lower-case from Headers iteration.
    if (HOP_BY_HOP.has(name) || name === 'host' || isUntrustedHeader(name) || (named.length > 0 && named.includes(name))) continue;
    if (name === 'accept-encoding') acceptEncoding = true;
    out.append(name, value);
  }

  out.set('x-request-id', options.requestId);
  // Only the address the gateway vouches for: a client-sent chain is unverified and backends read the last hop.
  if (options.clientIp) out.set('x-forwarded-for', options.clientIp);
  out.set('x-forwarded-proto', incoming.scheme);
  out.set('x-forwarded-host', source.get('host') ?? incoming.host);

  // Bun's fetch adds `Accept-Encoding: gzip, deflate, br, zstd` when none is given; with
  // decompression off, a client that never asked for compression would get compressed bytes.
  if (!acceptEncoding) out.set('accept-encoding', 'identity');
  return out;
}
