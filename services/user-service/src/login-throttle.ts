/**
 * Login throttling in the KV, shared by every replica: a per-IP attempt rate, and per-account failure
 * counting with a temporary lockout after `maxFailures` within the window.
 */
import { HttpProblem } from '@shared/errors.ts';
import type { Kv } from '@shared/kv.ts';

export interface LoginThrottle {
  /** Throws 429 when the IP is over its rate or the account is locked. */
  check(login: string, ip: string): Promise<void>;
  recordFailure(login: string): Promise<void>;
  recordSuccess(login: string): Promise<void>;
}

export interface LoginThrottleOptions {
  maxFailures: number;
  lockoutMs: number;
  ipAttemptsPerMinute: number;
}

export function createLoginThrottle(kv: Kv, options: LoginThrottleOptions, now: () => number = Date.now): LoginThrottle {
  const failuresKey = (login: string) => `login:failures:${login.toLowerCase()}`;
  const lockKey = (login: string) => `login:locked:${login.toLowerCase()}`;
  const retryAfter = (ms: number) => ({ 'retry-after': String(Math.max(1, Math.ceil(ms / 1000))) });
  return {
    async check(login, ip) {
      const rate = await kv.rateLimit(`login:ip:${ip}`, options.ipAttemptsPerMinute, 60_000);
      if (!rate.allowed) {
        throw new HttpProblem(429, 'too_many_attempts', 'Too many login attempts from your address; wait a minute and try again.', {
          headers: retryAfter(rate.retryAfterMs),
        });
      }
      const lockedUntil = Number((await kv.get(lockKey(login))) ?? 0);
      if (lockedUntil > now()) {
        const minutes = Math.max(1, Math.ceil((lockedUntil - now()) / 60_000));
        throw new HttpProblem(429, 'account_locked', `This account is locked for ${minutes} more minute(s) after repeated failed logins.`, {
          headers: retryAfter(lockedUntil - now()),
        });
      }
    },
    async recordFailure(login) {
      const failures = await kv.incr(failuresKey(login));
      if (failures === 1) await kv.expire(failuresKey(login), options.lockoutMs);
      if (failures >= options.maxFailures) {
        await kv.set(lockKey(login), String(now() + options.lockoutMs), { ttlMs: options.lockoutMs });
        await kv.del(failuresKey(login));
      }
    },
    async recordSuccess(login) {
      await kv.del(failuresKey(login));
    },
  };
}
