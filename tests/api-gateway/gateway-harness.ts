/**
 * A gateway under test: the real app (`createApp`) served on a loopback port in front of test
 * upstreams, with its own Ed25519 signing key so tests can mint good, expired, forged and `alg:none`
 * tokens, and a recording upstream that counts what reached it.
 */
import { createAuthenticator, SERVICE_AUDIENCE, USER_AUDIENCE, type Authenticator, type IntrospectionResult } from '@shared/auth.ts';
import { createCircuitBreaker, type CircuitBreaker } from '@shared/circuit-breaker.ts';
import { createKv } from '@shared/kv-factory.ts';
import { createMemoryKv } from '@shared/kv-memory.ts';
import type { Kv } from '@shared/kv.ts';
import { createLogger, type Logger } from '@shared/log.ts';
import { generateKeyPair, SignJWT } from 'jose';
import { createApp, type GatewayDeps } from '../../services/api-gateway/src/app.ts';
import type { HealthReport } from '../../services/api-gateway/src/health-fanout.ts';
import { createProxy, type ProxyDeps } from '../../services/api-gateway/src/proxy.ts';
import { createRateLimiter, type KvDownPolicy, type RateLimits } from '../../services/api-gateway/src/rate-limits.ts';
import { UPSTREAM_NAMES, type UpstreamName } from '../../services/api-gateway/src/route-table.ts';

type Server = ReturnType<typeof Bun.serve>;

const ISSUER = 'fip-gateway-test';
const pair = generateKeyPair('EdDSA', { crv: 'Ed25519' });

export interface TokenOptions {
  sub?: string;
  roles?: string[];
  /** Seconds from now; negative for an expired token. */
  expiresIn?: number;
  audience?: string;
}

/** An access token signed with the harness key. */
export async function accessToken(options: TokenOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const expiresIn = options.expiresIn ?? 600;
  return new SignJWT({ roles: options.roles ?? ['researcher'] })
    .setProtectedHeader({ alg: 'EdDSA', kid: 'gw-test' })
    .setIssuer(ISSUER)
    .setAudience(options.audience ?? USER_AUDIENCE)
    .setSubject(options.sub ?? crypto.randomUUID())
    .setIssuedAt(expiresIn < 0 ? now + expiresIn - 60 : now)
    .setExpirationTime(now + expiresIn)
    .setJti(crypto.randomUUID())
    .sign((await pair).privateKey);
}

export const serviceToken = (service: string) => accessToken({ sub: service, roles: ['service'], audience: SERVICE_AUDIENCE });

/** The same claims as a good token, with `alg: none` and no signature. */
export function unsignedToken(sub = crypto.randomUUID()): string {
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: ISSUER, aud: USER_AUDIENCE, sub, roles: ['admin'], iat: now, exp: now + 600, jti: crypto.randomUUID() })}.`;
}

/** A good token whose payload was edited after signing (the signature no longer matches). */
export async function tamperedToken(): Promise<string> {
  const [header, , signature] = (await accessToken()).split('.');
  const now = Math.floor(Date.now() / 1000);
  const payload = Buffer.from(
    JSON.stringify({ iss: ISSUER, aud: USER_AUDIENCE, sub: 'admin-user', roles: ['admin'], iat: now, exp: now + 600, jti: crypto.randomUUID() }),
  ).toString('base64url');
  return `${header}.${payload}.${signature}`;
}

/** API tokens the harness authenticator knows. */
export const API_TOKENS = new Map<string, IntrospectionResult>();

export function harnessAuthenticator(kv: Kv): Authenticator {
  return createAuthenticator({
    keys: async () => (await pair).publicKey,
    issuer: ISSUER,
    kv,
    introspect: async (token) => API_TOKENS.get(token) ?? null,
  });
}

/** The KV tests run on: the real Redis when REDIS_URL is set, else in memory. */
export function testKv(): Promise<Kv> {
  return createKv({ url: process.env.REDIS_URL });
}

/** One request as the recording upstream saw it. */
export interface SeenRequest {
  method: string;
  path: string;
  query: string;
  headers: Record<string, string>;
}

export interface RecordingUpstream {
  url: string;
  port: number;
  seen: SeenRequest[];
  stop(): void;
}

/**
 * An upstream that records every request and answers by path: `/…/echo` echoes the request,
 * `/…/bytes` sends `download`, `/…/hang` never answers, `/…/upload` hashes the body, anything else 200 `{ok}`.
 */
export function startRecordingUpstream(download: Uint8Array = new Uint8Array(0)): RecordingUpstream {
  const seen: SeenRequest[] = [];
  const server: Server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(req) {
      const url = new URL(req.url);
      const headers: Record<string, string> = {};
      req.headers.forEach((value, name) => {
        headers[name] = value;
      });
      const entry = { method: req.method, path: url.pathname, query: url.search, headers };
      seen.push(entry);
      if (url.pathname.endsWith('/hang')) return new Promise<Response>(() => {});
      if (url.pathname.endsWith('/bytes')) return new Response(download, { headers: { 'content-type': 'application/octet-stream' } });
      if (url.pathname.endsWith('/upload') || (req.method === 'POST' && url.pathname === '/files')) {
        const body = new Uint8Array(await req.arrayBuffer());
        return Response.json({ bytes: body.byteLength, sha256: new Bun.CryptoHasher('sha256').update(body).digest('hex') }, { status: 201 });
      }
      if (url.pathname.endsWith('/echo')) return Response.json(entry);
      await req.body?.cancel().catch(() => {});
      return Response.json({ ok: true, path: url.pathname });
    },
  });
  return { url: `http://127.0.0.1:${server.port}`, port: server.port!, seen, stop: () => server.stop(true) };
}

export interface GatewayOptions {
  /** One base for every upstream, or a base per upstream (the rest default to `base`). */
  base: string;
  upstreams?: Partial<Record<UpstreamName, string>>;
  kv?: Kv;
  /** The authenticator's KV (revocation marks); defaults to `kv`. */
  authKv?: Kv;
  limits?: Partial<RateLimits>;
  kvDown?: KvDownPolicy;
  kvTimeoutMs?: number;
  jsonBytes?: number;
  uploadBytes?: number;
  corsOrigins?: string[];
  hstsMaxAgeSeconds?: number;
  trustForwardedFor?: boolean;
  timeoutMs?: ProxyDeps['timeoutMs'];
  breaker?: CircuitBreaker;
  logger?: Logger;
  health?: () => Promise<HealthReport>;
  openapiRefreshMs?: number;
  authenticator?: Authenticator;
}

export interface Gateway {
  url: string;
  deps: GatewayDeps;
  openapi: ReturnType<typeof createApp>['openapi'];
  stop(): void;
}

/** Generous defaults so only the limit a test sets bites. */
const OPEN_LIMITS: RateLimits = {
  user: { limit: 10_000, windowMs: 60_000 },
  anonymous: { limit: 10_000, windowMs: 60_000 },
  auth: { limit: 10_000, windowMs: 60_000 },
  uploads: { limit: 10_000, windowMs: 60_000 },
};

/** Starts the gateway app on a loopback port. */
export function startGateway(options: GatewayOptions): Gateway {
  const kv = options.kv ?? createMemoryKv();
  const logger = options.logger ?? createLogger({ level: 'silent' });
  const upstreams = Object.fromEntries(UPSTREAM_NAMES.map((name) => [name, options.upstreams?.[name] ?? options.base])) as Record<UpstreamName, string>;
  const limits = { ...OPEN_LIMITS, ...options.limits };
  const breaker = options.breaker ?? createCircuitBreaker({ threshold: 1000 });
  const deps: GatewayDeps = {
    logger,
    readyTimeoutMs: 500,
    organization: { name: 'test', url: 'https://example.org' },
    kv,
    authenticator: options.authenticator ?? harnessAuthenticator(options.authKv ?? kv),
    proxy: createProxy({ upstreams, timeoutMs: options.timeoutMs ?? 5_000, breaker, logger }),
    breaker,
    health: options.health ?? (async () => ({ status: 'healthy', services: Object.fromEntries(UPSTREAM_NAMES.map((n) => [n, 'healthy'])) }) as HealthReport),
    rateLimiter: createRateLimiter({ kv, limits, kvDown: options.kvDown ?? 'closed-for-auth', timeoutMs: options.kvTimeoutMs ?? 1_000, logger }),
    limits,
    bodyLimits: { jsonBytes: options.jsonBytes ?? 1024 * 1024, uploadBytes: options.uploadBytes ?? 64 * 1024 * 1024 },
    corsOrigins: options.corsOrigins ?? [],
    hstsMaxAgeSeconds: options.hstsMaxAgeSeconds ?? 0,
    trustForwardedFor: options.trustForwardedFor ?? false,
    openapi: { upstreams, timeoutMs: 1_000, refreshMs: options.openapiRefreshMs ?? 60_000 },
  };
  const { app, openapi } = createApp(deps);
  const server: Server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    fetch: (request, srv) => app.fetch(request, srv),
    maxRequestBodySize: 256 * 1024 * 1024,
  });
  return { url: `http://127.0.0.1:${server.port}`, deps, openapi, stop: () => server.stop(true) };
}

/** A KV whose every call rejects, as when Redis is down. */
export function downKv(): Kv {
  const fail = () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:6379'));
  return {
    kind: 'redis',
    get: fail,
    set: fail,
    del: fail,
    incr: fail,
    expire: fail,
    rateLimit: fail,
    publish: fail,
    subscribe: fail,
    ping: fail,
    close: async () => {},
  };
}

/** A KV whose calls never settle, as when Redis accepts connections but does not answer. */
export function hungKv(): Kv {
  const never = () => new Promise<never>(() => {});
  return { ...downKv(), rateLimit: never, get: never, ping: never };
}

/** A random documentation-range address, so buckets keyed by address never collide across runs on one Redis. */
export function randomIp(): string {
  return `2001:db8::${Math.floor(Math.random() * 0xffff).toString(16)}:${Math.floor(Math.random() * 0xffff).toString(16)}`;
}
