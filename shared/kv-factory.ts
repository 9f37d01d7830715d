import type { Kv } from './kv.ts';
import { createMemoryKv } from './kv-memory.ts';

/**
 * Picks the KV adapter from a URL: none → in-memory (standalone mode), `redis://`/`rediss://` →
 * Bun's Redis client, `http://`/`https://` → Upstash REST (needs `token`). Opens no connection;
 * the caller passes values it read from its parsed env. The network adapters are imported only when
 * chosen: loading @upstash/redis costs ~17 ms of every start that never uses it.
 */
export async function createKv(options: { url?: string; token?: string }): Promise<Kv> {
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
      return (await import('./kv-redis.ts')).createRedisKv(url);
    case 'http:':
    case 'https:':
      if (!token) throw new Error('KV URL is an Upstash REST endpoint (http/https) but no token was given');
      return (await import('./kv-upstash.ts')).createUpstashKv({ url, token });
    default:
      throw new Error(`KV URL scheme "${protocol}" is not supported; use redis://, rediss://, http:// or https://`);
  }
}
