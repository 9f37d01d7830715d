/** The GCRA rate limit shared by the KV adapters: one atomic Lua script and its argument/reply handling. */
import type { RateLimitResult } from './kv.ts';

/**
 * GCRA in one atomic script, shared by the Redis and Upstash adapters. KEYS[1] holds the theoretical
 * arrival time (TAT); ARGV = limit, windowMs. It reads the server's clock so replicas with skewed
 * clocks agree, and works in whole microseconds so every value stays an exact integer in Lua's
 * doubles (the emission interval is floored, which is exact for limits up to about
 * sqrt(windowMs * 1000) per window and within a fraction of a percent beyond).
 * Returns {allowed, remaining, resetMs, retryAfterMs}.
 */
export const GCRA_SCRIPT = `
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2]) * 1000
local interval = math.max(1, math.floor(window / limit))
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
local newTat = math.max(tat, now) + interval
if newTat - window <= now then
  redis.call('SET', KEYS[1], string.format('%.0f', newTat), 'PX', math.ceil((newTat - now) / 1000))
  return {1, math.floor((window - (newTat - now)) / interval), math.ceil((newTat - now) / 1000), 0}
end
return {0, 0, math.ceil((tat - now) / 1000), math.ceil((tat + interval - window - now) / 1000)}
`;

/** Rejects arguments the script would turn into nonsense (a zero interval, a NaN TAT). */
export function assertRateLimitArgs(limit: number, windowMs: number): void {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`rateLimit: limit must be a positive integer, got ${limit}`);
  if (!Number.isInteger(windowMs) || windowMs < 1) {
    throw new RangeError(`rateLimit: windowMs must be a positive integer, got ${windowMs}`);
  }
}

/** Turns the script's reply into the interface's shape. */
export function toRateLimitResult(reply: unknown, limit: number): RateLimitResult {
  if (!Array.isArray(reply) || reply.length !== 4) throw new Error(`rateLimit: unexpected script reply ${JSON.stringify(reply)}`);
  const [allowed, remaining, resetMs, retryAfterMs] = reply.map(Number) as [number, number, number, number];
  return { allowed: allowed === 1, limit, remaining, resetMs, retryAfterMs };
}
