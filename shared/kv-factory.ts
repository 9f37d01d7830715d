import type { Kv } from './kv.ts';
import { createMemoryKv } from './kv-memory.ts';
import { createRedisKv } from './kv-redis.ts';
import { createUpstashKv } from './kv-upstash.ts';

/**
 * Picks the KV adapter from a URL: none → in-memory (standalone mode), `redis://`/`rediss://` →
 * Bun's Redis client, `http://`/`https://` → Upstash REST (needs `token`). Opens no connection;
 * the caller passes values it read from its parsed env.
 */
export function createKv(options: { url?: string; token?: string }): Kv {
  const { url, token } = options;
  if (!url) return createMemoryKv();
  let protocol: string;
  try {
    protocol = new URL(url).protocol;
  } catch {
    throw new Error('KV URL is not a valid URL');
  }
  switch (protocol) {
    case 'redis:':
    case 'rediss:':
      return createRedisKv(url);
    case 'http:':
    case 'https:':
      if (!token) throw new Error('KV URL is an Upstash REST endpoint (http/https) but no token was given');
      return createUpstashKv({ url, token });
    default:
      throw new Error(`KV URL scheme "${protocol}" is not supported; use redis://, rediss://, http:// or https://`);
  }
}
