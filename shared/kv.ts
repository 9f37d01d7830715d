/**
 * The platform's one small key-value interface (cache, counters, rate limits, live fan-out).
 * Adapters: in-memory (standalone), Bun's RedisClient (`redis://`), @upstash/redis (REST).
 * Every adapter passes the same contract suite in tests/shared/kv.contract.test.ts.
 */
export interface RateLimitResult {
  /** Whether this request is admitted (and counted). */
  allowed: boolean;
  /** The configured limit for the window. */
  limit: number;
  /** Requests still admissible right now after this one. */
  remaining: number;
  /** Milliseconds until the bucket is fully replenished. */
  resetMs: number;
  /** When denied: milliseconds until one more request would be admitted; 0 when allowed. */
  retryAfterMs: number;
}

export type Unsubscribe = () => Promise<void>;

export interface Kv {
  /** Which adapter this is, for logs and readiness output. */
  readonly kind: 'memory' | 'redis' | 'upstash';
  get(key: string): Promise<string | null>;
  /** Sets a string value, optionally expiring after `ttlMs` milliseconds. */
  set(key: string, value: string, options?: { ttlMs?: number }): Promise<void>;
  /** Deletes keys; resolves to how many existed. */
  del(...keys: string[]): Promise<number>;
  /** Atomically increments an integer counter (missing = 0) and returns the new value. */
  incr(key: string): Promise<number>;
  /** Sets a TTL on an existing key; false if the key does not exist. */
  expire(key: string, ttlMs: number): Promise<boolean>;
  /**
   * Atomic GCRA limit: at most `limit` requests per `windowMs`, admitted smoothly.
   * One round trip; safe under concurrency across processes.
   */
  rateLimit(key: string, limit: number, windowMs: number): Promise<RateLimitResult>;
  publish(channel: string, message: string): Promise<void>;
  /** Delivers every message published on `channel` after the returned promise resolves. */
  subscribe(channel: string, onMessage: (message: string) => void): Promise<Unsubscribe>;
  /** Round trip to the backend; rejects when it is unreachable. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
