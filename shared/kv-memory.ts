import type { Kv, Unsubscribe } from './kv.ts';
import { assertRateLimitArgs } from './kv-gcra.ts';

type Entry = { value: string; expiresAt: number | null };
type Handler = { onMessage: (message: string) => void };

/**
 * In-process KV for standalone mode and tests. Expiry is checked lazily on access, so no timer keeps
 * the process alive; `now` (ms) drives both TTLs and rate limits so tests can move time by hand.
 * Pub/sub delivers on a later microtask, like a broker would, never inside `publish`.
 */
export function createMemoryKv(options: { now?: () => number } = {}): Kv {
  const now = options.now ?? Date.now;
  const entries = new Map<string, Entry>();
  const channels = new Map<string, Set<Handler>>();

  const live = (key: string): Entry | undefined => {
    const entry = entries.get(key);
    if (entry?.expiresAt != null && now() > entry.expiresAt) {
      entries.delete(key);
      return undefined;
    }
    return entry;
  };

  return {
    kind: 'memory',
    async get(key) {
      return live(key)?.value ?? null;
    },
    async set(key, value, options) {
      entries.set(key, { value, expiresAt: options?.ttlMs === undefined ? null : now() + options.ttlMs });
    },
    async del(...keys) {
      let existed = 0;
      for (const key of new Set(keys)) {
        if (live(key)) existed++;
        entries.delete(key);
      }
      return existed;
    },
    async incr(key) {
      const entry = live(key);
      if (entry && !/^-?\d+$/.test(entry.value)) throw new Error('ERR value is not an integer or out of range');
      const next = (entry ? Number(entry.value) : 0) + 1;
      // Like INCR, an existing TTL survives.
      entries.set(key, { value: String(next), expiresAt: entry?.expiresAt ?? null });
      return next;
    },
    async expire(key, ttlMs) {
      const entry = live(key);
      if (!entry) return false;
      entry.expiresAt = now() + ttlMs;
      return true;
    },
    async rateLimit(key, limit, windowMs) {
      assertRateLimitArgs(limit, windowMs);
      // Same arithmetic as GCRA_SCRIPT (whole microseconds), so both adapters admit the same requests.
      const nowUs = Math.round(now() * 1000);
      const window = windowMs * 1000;
      const interval = Math.max(1, Math.floor(window / limit));
      const stored = live(key);
      const tat = stored ? Number(stored.value) : nowUs;
      const newTat = Math.max(tat, nowUs) + interval;
      if (newTat - window <= nowUs) {
        entries.set(key, { value: String(newTat), expiresAt: now() + Math.ceil((newTat - nowUs) / 1000) });
        const remaining = Math.floor((window - (newTat - nowUs)) / interval);
        return { allowed: true, limit, remaining, resetMs: Math.ceil((newTat - nowUs) / 1000), retryAfterMs: 0 };
      }
      const retryAfterMs = Math.ceil((tat + interval - window - nowUs) / 1000);
      return { allowed: false, limit, remaining: 0, resetMs: Math.ceil((tat - nowUs) / 1000), retryAfterMs };
    },
    async publish(channel, message) {
      for (const handler of channels.get(channel) ?? []) {
        // Checked again at delivery: unsubscribing stops messages that were published but not yet delivered.
        queueMicrotask(() => {
          if (channels.get(channel)?.has(handler)) handler.onMessage(message);
        });
      }
    },
    async subscribe(channel, onMessage): Promise<Unsubscribe> {
      const handler: Handler = { onMessage };
      const handlers = channels.get(channel) ?? new Set<Handler>();
      channels.set(channel, handlers.add(handler));
      return async () => {
        handlers.delete(handler);
        if (handlers.size === 0 && channels.get(channel) === handlers) channels.delete(channel);
      };
    },
    async ping() {},
    async close() {
      channels.clear();
    },
  };
}
