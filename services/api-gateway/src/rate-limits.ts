/**
 * Rate limits at the edge, counted in the KV with its atomic GCRA (`kv.rateLimit`: one round trip,
 * shared by every gateway replica). Each request is charged to exactly one bucket:
 * - `auth`: login and register, per client address (the password-guessing surface);
 * - `uploads`: `POST /api/files`, per user;
 * - `user`: everything else a signed-in user sends, per user id;
 * - `anonymous`: everything else, per client address (public routes, signed links, refused tokens).
 *
 * When the KV fails or does not answer within `timeoutMs`, the policy decides: `open` admits the
 * request (a warning is logged at most every 30 s and a counter grows), `closed` answers 503, and
 * `closed-for-auth` (the default) answers 503 only on the auth bucket — guessing
 * passwords must not get cheaper because Redis is down, while the rest of the API stays up.
 */
import type { AppEnv } from '@shared/app.ts';
import type { Identity } from '@shared/auth.ts';
import { HttpProblem } from '@shared/errors.ts';
import type { Kv, RateLimitResult } from '@shared/kv.ts';
import type { Logger } from '@shared/log.ts';
import type { Context, MiddlewareHandler } from 'hono';
import { isCredentialRoute } from './edge-auth.ts';
import { isUploadRoute } from './body-limits.ts';
import { setHeaders } from './response-headers.ts';

export const BUCKETS = ['auth', 'uploads', 'user', 'anonymous'] as const;
export type BucketName = (typeof BUCKETS)[number];

export interface Limit {
  limit: number;
  windowMs: number;
}

/** One limit per bucket; null switches the bucket off. */
export type RateLimits = Record<BucketName, Limit | null>;

export const KV_DOWN_POLICIES = ['open', 'closed-for-auth', 'closed'] as const;
export type KvDownPolicy = (typeof KV_DOWN_POLICIES)[number];

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parses a limit written as `<requests>/<window>` (`600/1m`, `20/30s`, `100/1h`, `5/500ms`; a bare
 * window number is seconds) or `off`. Returns undefined when the text is not a limit.
 */
export function parseLimit(text: string): Limit | null | undefined {
  const value = text.trim().toLowerCase();
  if (value === 'off') return null;
  const match = /^(\d+)\s*\/\s*(\d+)?\s*(ms|s|m|h|d)?$/.exec(value);
  if (!match) return undefined;
  const limit = Number(match[1]);
  const windowMs = Number(match[2] ?? 1) * UNIT_MS[match[3] ?? 's']!;
  if (!Number.isSafeInteger(limit) || limit < 1 || !Number.isSafeInteger(windowMs) || windowMs < 1) return undefined;
  return { limit, windowMs };
}

export type RateDecision =
  | { outcome: 'allowed' | 'limited'; result: RateLimitResult }
  /** The bucket is switched off. */
  | { outcome: 'unlimited' }
  /** The KV failed; `failClosed` says whether the policy refuses the request. */
  | { outcome: 'store-down'; failClosed: boolean };

export interface RateLimiterStats {
  /** KV calls that failed or timed out since start. */
  storeFailures: number;
  /** Requests refused with 429, by bucket, since start. */
  limited: Record<BucketName, number>;
}

export interface RateLimiter {
  check(bucket: BucketName, subject: string): Promise<RateDecision>;
  readonly stats: RateLimiterStats;
}

export interface RateLimiterDeps {
  kv: Kv;
  limits: RateLimits;
  kvDown: KvDownPolicy;
  /** How long a KV answer may take before it counts as a failure; a hung Redis must not hang the API. */
  timeoutMs: number;
  logger: Logger;
  now?: () => number;
}

const WARN_EVERY_MS = 30_000;

/** Builds the limiter over the KV. `check` never rejects. */
export function createRateLimiter(deps: RateLimiterDeps): RateLimiter {
  const now = deps.now ?? Date.now;
  const stats: RateLimiterStats = { storeFailures: 0, limited: { auth: 0, uploads: 0, user: 0, anonymous: 0 } };
  let lastWarnAt = -Infinity;
  let failuresSinceWarn = 0;

  const failClosed = (bucket: BucketName) => deps.kvDown === 'closed' || (deps.kvDown === 'closed-for-auth' && bucket === 'auth');

  function storeFailed(bucket: BucketName, err: unknown): RateDecision {
    stats.storeFailures += 1;
    failuresSinceWarn += 1;
    if (now() - lastWarnAt >= WARN_EVERY_MS) {
      deps.logger.warn('rate-limit store unavailable', {
        kv: deps.kv.kind,
        policy: deps.kvDown,
        failures: failuresSinceWarn,
        error: err instanceof Error ? err.message.slice(0, 200) : String(err),
      });
      lastWarnAt = now();
      failuresSinceWarn = 0;
    }
    return { outcome: 'store-down', failClosed: failClosed(bucket) };
  }

  return {
    stats,
    async check(bucket, subject) {
      const limit = deps.limits[bucket];
      if (!limit) return { outcome: 'unlimited' };
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        const counted = deps.kv.rateLimit(`gw:rl:${bucket}:${subject}`, limit.limit, limit.windowMs);
        // An adapter that answered synchronously (the in-memory one) hands back a settled promise:
        // its result is read at once, without arming a timer that could never fire.
        const result =
          Bun.peek.status(counted) === 'fulfilled'
            ? (Bun.peek(counted) as RateLimitResult)
            : await Promise.race([
                counted,
                new Promise<never>((_, reject) => {
                  timer = setTimeout(() => reject(new Error(`rate-limit store did not answer within ${deps.timeoutMs} ms`)), deps.timeoutMs);
                }),
              ]);
        if (!result.allowed) stats.limited[bucket] += 1;
        return { outcome: result.allowed ? 'allowed' : 'limited', result };
      } catch (err) {
        return storeFailed(bucket, err);
      } finally {
        if (timer !== undefined) clearTimeout(timer);
      }
    },
  };
}

/**
 * The bucket and subject a request is charged to. `clientIp` may be a function, asked only when the
 * subject is the address (a signed-in user's requests are charged to the user).
 */
export function bucketFor(
  method: string,
  pathname: string,
  identity: Identity | undefined,
  clientIp: string | (() => string),
): { bucket: BucketName; subject: string } {
  const address = () => (typeof clientIp === 'function' ? clientIp() : clientIp);
  if (isCredentialRoute(method, pathname)) return { bucket: 'auth', subject: address() };
  if (identity) return { bucket: isUploadRoute(method, pathname) ? 'uploads' : 'user', subject: identity.subject };
  return { bucket: 'anonymous', subject: address() };
}

/** The `RateLimit-*` headers (draft-ietf-httpapi-ratelimit-headers) for one decision; reset in whole seconds. */
export function rateLimitHeaders(result: RateLimitResult, limit: Limit): Record<string, string> {
  return {
    'ratelimit-limit': String(result.limit),
    'ratelimit-remaining': String(Math.max(0, result.remaining)),
    'ratelimit-reset': String(Math.ceil(result.resetMs / 1000)),
    'ratelimit-policy': `${limit.limit};w=${Math.max(1, Math.round(limit.windowMs / 1000))}`,
  };
}

/** The 429 problem for a refused request, with its headers and `Retry-After`. */
export function rateLimitedProblem(bucket: BucketName, result: RateLimitResult, limit: Limit): HttpProblem {
  const retryAfter = Math.max(1, Math.ceil(result.retryAfterMs / 1000));
  return new HttpProblem(429, 'rate_limited', `Too many requests; try again in ${retryAfter} s.`, {
    headers: { ...rateLimitHeaders(result, limit), 'retry-after': String(retryAfter) },
    extensions: { bucket },
  });
}

function storeDownProblem(): HttpProblem {
  return new HttpProblem(503, 'rate_limit_unavailable', 'Requests to this route cannot be counted right now; try again shortly.', {
    headers: { 'retry-after': '5' },
  });
}

export interface RateLimitMiddlewareOptions {
  limiter: RateLimiter;
  limits: RateLimits;
  clientIp: (c: Context<AppEnv>) => string;
}

/**
 * Middleware for `/api/*`, after `edgeAuth` (it reads `identity`): charges the request's bucket,
 * answers 429 with `Retry-After` once it is empty, and adds the `RateLimit-*` headers to every
 * response it counted.
 */
export function rateLimits(options: RateLimitMiddlewareOptions): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const { bucket, subject } = bucketFor(c.req.method, c.req.path, c.get('identity'), () => options.clientIp(c));
    const decision = await options.limiter.check(bucket, subject);
    if (decision.outcome === 'store-down' && decision.failClosed) throw storeDownProblem();
    if (decision.outcome === 'limited') throw rateLimitedProblem(bucket, decision.result, options.limits[bucket]!);
    await next();
    if (decision.outcome === 'allowed') setHeaders(c, rateLimitHeaders(decision.result, options.limits[bucket]!));
  };
}

/**
 * Charges a refused token to the anonymous bucket of the client's address, so guessing tokens is
 * throttled: throws the 429 once the bucket is empty. A KV failure never turns a 401 into anything else.
 */
export function chargeRefusedToken(options: RateLimitMiddlewareOptions): (c: Context<AppEnv>) => Promise<void> {
  return async (c) => {
    const decision = await options.limiter.check('anonymous', options.clientIp(c));
    if (decision.outcome === 'limited') throw rateLimitedProblem('anonymous', decision.result, options.limits.anonymous!);
  };
}
