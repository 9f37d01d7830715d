/**
 * The gateway's streaming reverse proxy: one `/api/*` request in, one upstream request out, bodies
 * streamed both ways without buffering. Failures the gateway itself causes or observes (no route,
 * upstream silent, upstream unreachable) are answered as RFC 9457 problems; anything the upstream
 * answered, including its 5xx, is passed through untouched.
 */
import { problemBody, problemResponse } from '@shared/errors.ts';
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
 * they verified themselves, so the gateway removes every client-sent copy.
 */
export const UNTRUSTED_IDENTITY_HEADERS: readonly string[] = [
  'x-user-id',
  'x-user-email',
  'x-user-roles',
  'x-user-name',
  'x-forwarded-user',
  'x-authenticated-user',
  'x-service-identity',
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
  kind: 'response' | 'timeout' | 'unreachable' | 'client_aborted';
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
}

export interface ProxyOptions {
  requestId: string;
  /** Address of the connecting client, appended to `X-Forwarded-For`. */
  clientIp?: string;
}

export type Proxy = (request: Request, options: ProxyOptions) => Promise<Response>;

const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);

/**
 * Builds the gateway's reverse proxy over the given upstreams. The returned function never throws
 * and never answers 500: a missing route is a 404 problem, a silent upstream a 504, an unreachable
 * one a 502.
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
    const incoming = new URL(request.url);
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

    // The timer only guards the wait for headers; it is cleared as soon as they arrive, so a long
    // download keeps streaming. The client's own signal is joined so a client that goes away
    // releases the upstream request and its body too.
    const timeoutMs = timeoutFor(service, method, path);
    const timer = new AbortController();
    let timedOut = false;
    const handle = setTimeout(() => {
      timedOut = true;
      timer.abort();
    }, timeoutMs);

    let upstream: Response;
    try {
      upstream = await doFetch(bases[service] + path + rawQuery(request.url), {
        method,
        headers: forwardedRequestHeaders(request, incoming, options),
        body: request.body,
        duplex: 'half',
        redirect: 'manual',
        // Bun's fetch would otherwise inflate the body yet keep Content-Encoding and Content-Length,
        // handing the client a body that contradicts its own headers.
        decompress: false,
        signal: AbortSignal.any([timer.signal, request.signal]),
      });
    } catch {
      if (timedOut) {
        report('timeout', 504);
        return gatewayProblem(504, 'upstream_timeout', `${service} did not answer within ${timeoutMs} ms.`);
      }
      if (request.signal.aborted) {
        // Nobody is left to read this; the status only tells logs and metrics what happened.
        report('client_aborted', 499);
        return gatewayProblem(499, 'client_closed_request', 'The client closed the request.');
      }
      report('unreachable', 502);
      return gatewayProblem(502, 'upstream_unreachable', `${service} could not be reached.`);
    } finally {
      clearTimeout(handle);
    }

    report('response', upstream.status);
    const noBody = method === 'HEAD' || NULL_BODY_STATUSES.has(upstream.status);
    if (noBody) await upstream.body?.cancel().catch(() => {});
    return new Response(noBody ? null : upstream.body, {
      status: upstream.status,
      statusText: upstream.statusText,
      headers: withoutHopByHop(upstream.headers),
    });

    function gatewayProblem(status: number, code: string, detail: string): Response {
      return problemResponse(
        problemBody({
          status,
          code,
          detail,
          instance: incoming.pathname,
          requestId: options.requestId,
          extensions: { service },
        }),
      );
    }
  };
}

/** The query string exactly as the client sent it (including '?'), so repeated and odd params survive. */
function rawQuery(url: string): string {
  const q = url.indexOf('?');
  if (q === -1) return '';
  const hash = url.indexOf('#', q);
  return hash === -1 ? url.slice(q) : url.slice(q, hash);
}

/** A copy of `headers` without hop-by-hop headers, including any the `Connection` header names. */
function withoutHopByHop(headers: Headers): Headers {
  const out = new Headers(headers);
  for (const token of (headers.get('connection') ?? '').split(',')) {
    const name = token.trim();
    if (name) out.delete(name);
  }
  for (const name of HOP_BY_HOP_HEADERS) out.delete(name);
  return out;
}

function forwardedRequestHeaders(request: Request, incoming: URL, options: ProxyOptions): Headers {
  const out = withoutHopByHop(request.headers);
  // fetch would send a caller-supplied Host verbatim; the upstream must see its own.
  out.delete('host');
  for (const name of UNTRUSTED_IDENTITY_HEADERS) out.delete(name);

  out.set('x-request-id', options.requestId);
  const priorFor = request.headers.get('x-forwarded-for');
  if (options.clientIp) out.set('x-forwarded-for', priorFor ? `${priorFor}, ${options.clientIp}` : options.clientIp);
  out.set('x-forwarded-proto', incoming.protocol.replace(/:$/, ''));
  out.set('x-forwarded-host', request.headers.get('host') ?? incoming.host);

  // Bun's fetch adds `Accept-Encoding: gzip, deflate, br, zstd` when none is given; with
  // decompression off, a client that never asked for compression would get compressed bytes.
  if (!request.headers.has('accept-encoding')) out.set('accept-encoding', 'identity');
  return out;
}
