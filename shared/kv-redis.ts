import { RedisClient, type RedisOptions } from 'bun';
import { GCRA_SCRIPT, assertRateLimitArgs, toRateLimitResult } from './kv-gcra.ts';
import type { Kv, Unsubscribe } from './kv.ts';

// Bun's defaults retry a dead server for ~30 s while commands queue; readiness checks need an answer
// within a couple of seconds, so give up after a few quick attempts (~350 ms) or a 2 s handshake.
const CLIENT_OPTIONS: RedisOptions = { connectionTimeout: 2_000, maxRetries: 3 };
const REVIVE_SUBSCRIBER_MS = 1_000;

type Handler = { onMessage: (message: string) => void };
type Channel = { handlers: Set<Handler>; subscribed: Promise<unknown> };

/**
 * KV adapter over Bun's built-in RESP3 client. Commands share one connection; pub/sub uses a second
 * connection opened on the first `subscribe`, shared by every channel. Nothing connects until used.
 */
export function createRedisKv(url: string): Kv {
  const client = new RedisClient(url, CLIENT_OPTIONS);
  const channels = new Map<string, Channel>();
  const scriptSha = new Bun.CryptoHasher('sha1').update(GCRA_SCRIPT).digest('hex');
  let subscriber: RedisClient | null = null;
  let closed = false;

  // Once Bun's client has given up reconnecting it fails every call until `connect()` is called
  // again; a closed adapter must not reopen its connections.
  const connected = async (redis: RedisClient) => {
    if (closed) throw new Error('KV adapter is closed');
    if (!redis.connected) await redis.connect();
  };

  const dispatch = (message: string, channel: string) => {
    for (const handler of channels.get(channel)?.handlers ?? []) handler.onMessage(message);
  };

  function createSubscriber(): RedisClient {
    const sub = new RedisClient(url, CLIENT_OPTIONS);
    let connectedBefore = false;
    // Bun does not restore subscriptions after reconnecting; re-issuing SUBSCRIBE through `send`
    // restores them server-side without registering the listener twice.
    sub.onconnect = () => {
      if (connectedBefore && channels.size > 0) sub.send('SUBSCRIBE', [...channels.keys()]).catch(() => {});
      connectedBefore = true;
    };
    // Nobody calls a subscriber after an outage, so keep trying in the background while it has
    // channels (a failed `connect()` lands here again); `onconnect` then resubscribes.
    sub.onclose = () => {
      if (closed || channels.size === 0) return;
      setTimeout(() => {
        if (!closed && channels.size > 0 && !sub.connected) sub.connect().catch(() => {});
      }, REVIVE_SUBSCRIBER_MS).unref();
    };
    return sub;
  }

  async function remove(channel: string, handler: Handler): Promise<void> {
    const entry = channels.get(channel);
    if (!entry?.handlers.delete(handler) || entry.handlers.size > 0) return;
    channels.delete(channel);
    if (subscriber && !closed) await subscriber.unsubscribe(channel, dispatch);
  }

  return {
    kind: 'redis',
    async get(key) {
      await connected(client);
      return client.get(key);
    },
    async set(key, value, options) {
      await connected(client);
      if (options?.ttlMs !== undefined) await client.set(key, value, 'PX', options.ttlMs);
      else await client.set(key, value);
    },
    async del(...keys) {
      if (keys.length === 0) return 0;
      await connected(client);
      return client.del(...keys);
    },
    async incr(key) {
      await connected(client);
      return client.incr(key);
    },
    async expire(key, ttlMs) {
      await connected(client);
      return (await client.pexpire(key, ttlMs)) === 1;
    },
    async rateLimit(key, limit, windowMs) {
      assertRateLimitArgs(limit, windowMs);
      await connected(client);
      const args = ['1', key, String(limit), String(windowMs)];
      const reply = await client.send('EVALSHA', [scriptSha, ...args]).catch((error: unknown) => {
        if (error instanceof Error && error.message.startsWith('NOSCRIPT')) return client.send('EVAL', [GCRA_SCRIPT, ...args]);
        throw error;
      });
      return toRateLimitResult(reply, limit);
    },
    async publish(channel, message) {
      await connected(client);
      await client.publish(channel, message);
    },
    async subscribe(channel, onMessage): Promise<Unsubscribe> {
      const sub = (subscriber ??= createSubscriber());
      const handler: Handler = { onMessage };
      let entry = channels.get(channel);
      if (!entry) {
        entry = { handlers: new Set(), subscribed: connected(sub).then(() => sub.subscribe(channel, dispatch)) };
        channels.set(channel, entry);
      }
      entry.handlers.add(handler);
      try {
        await entry.subscribed;
      } catch (error) {
        await remove(channel, handler).catch(() => {});
        throw error;
      }
      return () => remove(channel, handler);
    },
    async ping() {
      await connected(client);
      await client.send('PING', []);
    },
    async close() {
      closed = true;
      channels.clear();
      client.close();
      subscriber?.close();
    },
  };
}
