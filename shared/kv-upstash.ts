import { Redis } from '@upstash/redis';
import type { Kv, Unsubscribe } from './kv.ts';
import { GCRA_SCRIPT, assertRateLimitArgs, toRateLimitResult } from './kv-gcra.ts';

/**
 * KV adapter over an Upstash-style REST endpoint (Upstash itself, SRH, or the test bridge), for
 * deployments that cannot hold a TCP connection to Redis. Every call is an HTTP request; concurrent
 * calls are batched into `/pipeline` by the client. Each `subscribe` holds one streaming request
 * (`POST /subscribe/<channel>`, server-sent events) open until unsubscribed. Messages travel as SSE
 * lines, so they must not contain newlines (JSON.stringify output never does).
 */
export function createUpstashKv(options: { url: string; token: string }): Kv {
  // This interface stores strings; the client's default would JSON-parse replies ("42" becomes 42).
  const redis = new Redis({ url: options.url, token: options.token, automaticDeserialization: false });
  // EVALSHA first, EVAL only when the server has not cached the script yet.
  const gcra = redis.createScript<unknown>(GCRA_SCRIPT);
  const active = new Set<Unsubscribe>();

  return {
    kind: 'upstash',
    async get(key) {
      return redis.get<string>(key);
    },
    async set(key, value, options) {
      if (options?.ttlMs !== undefined) await redis.set(key, value, { px: options.ttlMs });
      else await redis.set(key, value);
    },
    async del(...keys) {
      return keys.length === 0 ? 0 : redis.del(...keys);
    },
    async incr(key) {
      return redis.incr(key);
    },
    async expire(key, ttlMs) {
      return (await redis.pexpire(key, ttlMs)) === 1;
    },
    async rateLimit(key, limit, windowMs) {
      assertRateLimitArgs(limit, windowMs);
      return toRateLimitResult(await gcra.exec([key], [String(limit), String(windowMs)]), limit);
    },
    async publish(channel, message) {
      await redis.publish(channel, message);
    },
    subscribe(channel, onMessage) {
      // The client puts the channel into the URL path unescaped.
      if (/[\s/?#%]/.test(channel)) return Promise.reject(new Error(`Upstash KV cannot subscribe to channel "${channel}"`));
      const subscriber = redis.subscribe<string>(channel);
      let listening = true;
      const unsubscribe: Unsubscribe = async () => {
        if (!listening) return;
        listening = false;
        active.delete(unsubscribe);
        await subscriber.unsubscribe();
      };
      return new Promise<Unsubscribe>((resolve, reject) => {
        subscriber.on('message', ({ message }) => {
          if (listening) onMessage(message);
        });
        // The stream opens before the server confirms SUBSCRIBE; only the confirmation guarantees delivery.
        subscriber.on('subscribe', () => {
          active.add(unsubscribe);
          resolve(unsubscribe);
        });
        subscriber.on('error', (error) => {
          void unsubscribe();
          reject(error);
        });
      });
    },
    async ping() {
      await redis.ping();
    },
    async close() {
      await Promise.all([...active].map((unsubscribe) => unsubscribe()));
    },
  };
}
