/**
 * Authentication for every service. Three kinds of bearer token:
 * - user access tokens: EdDSA JWTs from user-service, verified locally against its JWKS (cached);
 * - personal API tokens (`fip_…`): opaque, checked by user-service introspection, cached here for
 *   `introspectionCacheMs` — so a revoked API token keeps working for at most that long elsewhere;
 * - service tokens: JWTs user-service mints for a service that proved its per-service secret.
 * A user's access tokens are also checked against a revocation mark in the KV (set on logout-all,
 * password change and deactivation), cached for `revocationCacheMs`: the bound for those.
 * The identity goes into the request context; nothing is ever read from client-sent identity headers.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { createRemoteJWKSet, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { HttpProblem } from './errors.ts';
import type { HttpClient } from './http-client.ts';
import type { Kv } from './kv.ts';
import { IntrospectionResponseSchema, ServiceTokenResponseSchema } from './schemas/auth.ts';
import { sha256Hex } from './token-hash.ts';

export const ROLES = ['admin', 'researcher', 'viewer'] as const;
export type Role = (typeof ROLES)[number];

/** Audiences keep user and service tokens from standing in for each other. */
export const USER_AUDIENCE = 'fip';
export const SERVICE_AUDIENCE = 'fip-internal';
export const API_TOKEN_PREFIX = 'fip_';

export interface Identity {
  kind: 'user' | 'service';
  /** User id, or the service name for service tokens. */
  subject: string;
  roles: string[];
  via: 'access-token' | 'api-token' | 'service-token';
  /** The access token's `jti` or the API token's id. */
  tokenId: string;
}

export interface IntrospectionResult {
  userId: string;
  roles: string[];
  tokenId: string;
}

export interface AuthenticatorDeps {
  keys: JWTVerifyGetKey;
  issuer: string;
  kv: Kv;
  /** Resolves an API token to its owner, or null when unknown, expired or revoked. */
  introspect: (token: string) => Promise<IntrospectionResult | null>;
  introspectionCacheMs?: number;
  revocationCacheMs?: number;
  now?: () => number;
}

export interface Authenticator {
  /** Verifies an `Authorization` header value; throws a 401 `HttpProblem` when it is missing or bad. */
  authenticate(authorization: string | undefined): Promise<Identity>;
}

const MAX_CACHE_ENTRIES = 10_000;

export function revocationKey(userId: string): string {
  return `auth:revoked-before:${userId}`;
}

/**
 * Invalidates every access token of `userId` issued before now. The mark outlives the longest
 * access token (`ttlMs`), after which expiry alone does the job.
 */
export async function revokeUserAccessTokens(kv: Kv, userId: string, ttlMs: number, now = Date.now()): Promise<void> {
  await kv.set(revocationKey(userId), String(now), { ttlMs });
}

/** When a token was issued, in ms: the `iat_ms` claim user-service adds (`iat` has only seconds). */
function issuedAtMs(payload: JWTPayload): number {
  return typeof payload.iat_ms === 'number' ? payload.iat_ms : (payload.iat ?? 0) * 1000;
}

export function createAuthenticator(deps: AuthenticatorDeps): Authenticator {
  const now = deps.now ?? Date.now;
  const introspectionCacheMs = deps.introspectionCacheMs ?? 10_000;
  const revocationCacheMs = deps.revocationCacheMs ?? 5_000;
  const introspected = new Map<string, { at: number; result: IntrospectionResult | null }>();
  const revocations = new Map<string, { at: number; before: number }>();
  // A signature verified once stays verified: an EdDSA check costs ~100–150 µs, a lookup ~1 µs.
  // Expiry and the revocation mark are still checked on every request.
  const verified = new Map<string, JWTPayload>();

  const unauthorized = (detail: string) =>
    new HttpProblem(401, 'unauthorized', detail, { headers: { 'www-authenticate': 'Bearer realm="federated-imputation"' } });

  async function revokedBefore(userId: string): Promise<number> {
    const cached = revocations.get(userId);
    if (cached && now() - cached.at < revocationCacheMs) return cached.before;
    const before = Number((await deps.kv.get(revocationKey(userId))) ?? 0);
    remember(revocations, userId, { at: now(), before });
    return before;
  }

  async function viaApiToken(token: string): Promise<Identity> {
    const key = sha256Hex(token);
    let entry = introspected.get(key);
    if (!entry || now() - entry.at >= introspectionCacheMs) {
      entry = { at: now(), result: await deps.introspect(token) };
      remember(introspected, key, entry);
    }
    if (!entry.result) throw unauthorized('The API token is unknown, expired or revoked.');
    return { kind: 'user', subject: entry.result.userId, roles: entry.result.roles, via: 'api-token', tokenId: entry.result.tokenId };
  }

  async function viaJwt(token: string): Promise<Identity> {
    let payload = verified.get(token);
    if (payload && (payload.exp ?? 0) * 1000 <= now() - 5_000) payload = undefined;
    if (!payload) payload = await verifySignature(token);
    const roles = Array.isArray(payload.roles) ? payload.roles.filter((r): r is string => typeof r === 'string') : [];
    const audiences = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if (audiences.includes(SERVICE_AUDIENCE)) {
      return { kind: 'service', subject: payload.sub!, roles: ['service'], via: 'service-token', tokenId: payload.jti! };
    }
    if (issuedAtMs(payload) < (await revokedBefore(payload.sub!))) throw unauthorized('The access token has been revoked.');
    return { kind: 'user', subject: payload.sub!, roles, via: 'access-token', tokenId: payload.jti! };
  }

  async function verifySignature(token: string): Promise<JWTPayload> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, deps.keys, {
        issuer: deps.issuer,
        audience: [USER_AUDIENCE, SERVICE_AUDIENCE],
        algorithms: ['EdDSA'],
        requiredClaims: ['sub', 'exp', 'iat', 'jti'],
        clockTolerance: 5,
        currentDate: new Date(now()),
      }));
    } catch {
      throw unauthorized('The access token is invalid or expired.');
    }
    remember(verified, token, payload);
    return payload;
  }

  return {
    async authenticate(authorization) {
      const match = authorization ? /^Bearer\s+(\S+)\s*$/i.exec(authorization) : null;
      if (!match) throw unauthorized('Send a bearer token: an access token from /auth/login or a personal API token.');
      const token = match[1]!;
      return token.startsWith(API_TOKEN_PREFIX) ? viaApiToken(token) : viaJwt(token);
    },
  };
}

function remember<V>(cache: Map<string, V>, key: string, value: V): void {
  // Bounded: a flood of distinct bad tokens must not grow memory without limit.
  if (cache.size >= MAX_CACHE_ENTRIES) cache.clear();
  cache.set(key, value);
}

export interface AuthMiddlewareOptions {
  authenticator: Authenticator;
  /** Exact paths served without authentication (the kit adds its operational endpoints). */
  publicPaths: Iterable<string>;
  /** Path prefixes where a read-only viewer may still write (their own profile, password, tokens). */
  viewerWritablePrefixes?: string[];
  /** Requests that carry their own proof (e.g. a signed download link); the handler must check it. */
  carriesOwnProof?: (c: Context) => boolean;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Default deny: every path not listed as public needs a verified identity; viewers are read-only
 * outside their self-service paths.
 */
/**
 * The answer when a token could not be checked at all (the KV holding revocation marks, or the key
 * fetch, failed): not a verdict on the token, so a retry soon may work. The gateway and every service
 * give the same one, whichever check ran first.
 */
export function authUnavailable(): HttpProblem {
  return new HttpProblem(503, 'auth_unavailable', 'Tokens cannot be verified right now; try again shortly.', { headers: { 'retry-after': '5' } });
}

export function authMiddleware(options: AuthMiddlewareOptions): MiddlewareHandler<{ Variables: { identity: Identity } }> {
  const publicPaths = new Set(options.publicPaths);
  const viewerWritable = options.viewerWritablePrefixes ?? [];
  return async (c, next) => {
    if (publicPaths.has(c.req.path) || options.carriesOwnProof?.(c)) return next();
    let identity: Identity;
    try {
      identity = await options.authenticator.authenticate(c.req.header('authorization'));
    } catch (err) {
      if (err instanceof HttpProblem) throw err;
      // The cause shows on /ready (the KV check), not in every request's log line.
      throw authUnavailable();
    }
    if (
      identity.kind === 'user' &&
      !SAFE_METHODS.has(c.req.method) &&
      !identity.roles.some((r) => r === 'admin' || r === 'researcher') &&
      !viewerWritable.some((prefix) => c.req.path === prefix || c.req.path.startsWith(`${prefix}/`))
    ) {
      throw new HttpProblem(403, 'read_only', 'Your account can read but not change anything here.');
    }
    c.set('identity', identity);
    return next();
  };
}

/** Allows the request only when the identity holds one of `roles` (services hold `service`). */
export function requireRole(...roles: string[]): MiddlewareHandler<{ Variables: { identity: Identity } }> {
  return async (c, next) => {
    const identity = c.get('identity');
    if (!identity || !identity.roles.some((r) => roles.includes(r))) {
      throw new HttpProblem(403, 'forbidden', `This needs one of these roles: ${roles.join(', ')}.`);
    }
    return next();
  };
}

/**
 * Allows only the service tokens of the named services (`requireRole('service')` says a service is
 * calling; this says which may): an internal route that hands out users' data names its callers.
 */
export function requireService(...services: string[]): MiddlewareHandler<{ Variables: { identity: Identity } }> {
  const allowed = new Set(services);
  return async (c, next) => {
    const identity = c.get('identity');
    if (!identity || !identity.roles.includes('service')) throw new HttpProblem(403, 'forbidden', 'This needs one of these roles: service.');
    if (!allowed.has(identity.subject)) throw new HttpProblem(403, 'forbidden', `Only ${services.join(' and ')} may call this.`);
    return next();
  };
}

/** Keys from user-service's published JWKS, refetched when an unknown `kid` appears (rotation). */
export function remoteKeys(userServiceUrl: string): JWTVerifyGetKey {
  return createRemoteJWKSet(new URL('/.well-known/jwks.json', userServiceUrl), {
    timeoutDuration: 2_000,
    // Short, so a key rotated in by user-service is picked up within seconds.
    cooldownDuration: 5_000,
    cacheMaxAge: 10 * 60_000,
  });
}

/** Introspects API tokens through user-service's internal endpoint with this service's credential. */
export function remoteIntrospection(client: HttpClient, credential: ServiceCredential): AuthenticatorDeps['introspect'] {
  return async (token) => {
    const body = await client.call({
      method: 'POST',
      path: '/internal/introspect',
      body: { token },
      headers: { authorization: await credential.authorization() },
      idempotent: true,
      schema: IntrospectionResponseSchema,
    });
    return body.active && body.userId && body.tokenId ? { userId: body.userId, roles: body.roles ?? [], tokenId: body.tokenId } : null;
  };
}

export interface ServiceCredential {
  /** An `Authorization` header value for calls to other services, refreshed before it expires. */
  authorization(): Promise<string>;
}

/** Caches service tokens from `issue` until a minute before they expire. */
export function createServiceCredential(
  issue: () => Promise<{ token: string; expiresAt: number }>,
  now: () => number = Date.now,
): ServiceCredential {
  let current: { token: string; expiresAt: number } | undefined;
  let pending: Promise<{ token: string; expiresAt: number }> | undefined;
  return {
    async authorization() {
      if (!current || current.expiresAt - 60_000 <= now()) {
        pending ??= issue().finally(() => {
          pending = undefined;
        });
        try {
          current = await pending;
        } catch (err) {
          // An early refresh that fails is not fatal while the current token still works.
          if (!current || current.expiresAt <= now()) throw err;
        }
      }
      return `Bearer ${current.token}`;
    },
  };
}

/** Asks user-service for a service token, proving the service's identity with its secret. */
export function serviceTokenIssuer(client: HttpClient, name: string, secret: string): () => Promise<{ token: string; expiresAt: number }> {
  const basic = `Basic ${Buffer.from(`${name}:${secret}`).toString('base64')}`;
  return async () => {
    const body = await client.call({
      method: 'POST',
      path: '/internal/service-token',
      headers: { authorization: basic },
      idempotent: true,
      schema: ServiceTokenResponseSchema,
    });
    return { token: body.token, expiresAt: Date.now() + body.expiresIn * 1000 };
  };
}
