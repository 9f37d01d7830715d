import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'bun:test';
import type { Kv } from '@shared/kv.ts';
import { createKv } from '@shared/kv-factory.ts';
import { createMemoryKv } from '@shared/kv-memory.ts';
import { createRedisKv } from '@shared/kv-redis.ts';
import { createUpstashKv } from '@shared/kv-upstash.ts';
import { startUpstashBridge, type UpstashBridge } from '../support/upstash-bridge.ts';

const REDIS_URL = process.env.REDIS_URL;

/** Polls until `check` passes; real backends deliver asynchronously. */
async function eventually(check: () => void, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await Bun.sleep(10);
    }
  }
}

/** The behaviour every adapter must share; `makeKv` runs once per suite, after outer hooks. */
function describeKvContract(name: string, makeKv: () => Kv | Promise<Kv>) {
  describe(`Kv contract: ${name}`, () => {
    let kv: Kv;
    let prefix: string;
    let made: string[] = [];
    const key = (suffix: string) => {
      const k = `${prefix}${suffix}`;
      made.push(k);
      return k;
    };
    const channel = (suffix: string) => `${prefix}${suffix}`;

    beforeAll(async () => {
      kv = await makeKv();
    });
    afterAll(async () => {
      await kv.close();
    });
    // A fresh prefix per test keeps parallel runs against one Redis apart.
    beforeEach(() => {
      prefix = `test:${crypto.randomUUID()}:`;
    });
    afterEach(async () => {
      await kv.del(...made);
      made = [];
    });

    it('ping resolves', async () => {
      await kv.ping();
    });

    it('get returns what set stored and null for a missing key', async () => {
      await kv.set(key('a'), 'héllo wörld {"json":1}');
      expect(await kv.get(key('a'))).toBe('héllo wörld {"json":1}');
      expect(await kv.get(key('missing'))).toBeNull();
    });

    it('stores numeric-looking strings as strings', async () => {
      await kv.set(key('n'), '42');
      expect(await kv.get(key('n'))).toBe('42');
    });

    it('del removes keys and counts only those that existed', async () => {
      await kv.set(key('a'), '1');
      await kv.set(key('b'), '2');
      expect(await kv.del(key('a'), key('b'), key('never'))).toBe(2);
      expect(await kv.get(key('a'))).toBeNull();
      expect(await kv.del(key('a'))).toBe(0);
    });

    it('a value set with ttlMs is gone after the ttl', async () => {
      await kv.set(key('t'), 'v', { ttlMs: 100 });
      await kv.set(key('keep'), 'v');
      expect(await kv.get(key('t'))).toBe('v');
      await Bun.sleep(250);
      expect(await kv.get(key('t'))).toBeNull();
      expect(await kv.get(key('keep'))).toBe('v');
    });

    it('incr counts from zero and loses no update under 200 concurrent calls', async () => {
      expect(await kv.incr(key('c'))).toBe(1);
      const results = await Promise.all(Array.from({ length: 200 }, () => kv.incr(key('c'))));
      expect(await kv.get(key('c'))).toBe('201');
      expect(new Set(results).size).toBe(200);
      expect(Math.max(...results)).toBe(201);
    });

    it('expire sets a ttl on an existing key and reports false for a missing one', async () => {
      await kv.set(key('e'), 'v');
      expect(await kv.expire(key('e'), 100)).toBe(true);
      expect(await kv.expire(key('nope'), 100)).toBe(false);
      expect(await kv.get(key('e'))).toBe('v');
      await Bun.sleep(250);
      expect(await kv.get(key('e'))).toBeNull();
    });

    it('rateLimit admits a burst of exactly `limit`, then denies with a retry hint', async () => {
      const results = [];
      for (let i = 0; i < 6; i++) results.push(await kv.rateLimit(key('rl'), 5, 60_000));
      expect(results.map((r) => r.allowed)).toEqual([true, true, true, true, true, false]);
      expect(results.map((r) => r.remaining)).toEqual([4, 3, 2, 1, 0, 0]);
      expect(results.every((r) => r.limit === 5)).toBe(true);
      expect(results[0]!.retryAfterMs).toBe(0);
      const denied = results[5]!;
      expect(denied.retryAfterMs).toBeGreaterThan(0);
      expect(denied.retryAfterMs).toBeLessThanOrEqual(12_000);
      expect(denied.resetMs).toBeGreaterThan(48_000);
      expect(denied.resetMs).toBeLessThanOrEqual(60_000);
    });

    it('rateLimit never over-admits concurrent callers', async () => {
      const results = await Promise.all(Array.from({ length: 50 }, () => kv.rateLimit(key('rl'), 10, 60_000)));
      expect(results.filter((r) => r.allowed)).toHaveLength(10);
      expect(results.filter((r) => !r.allowed).every((r) => r.remaining === 0 && r.retryAfterMs > 0)).toBe(true);
    });

    it('rateLimit admits again once retryAfterMs has passed', async () => {
      expect((await kv.rateLimit(key('rl'), 2, 600)).allowed).toBe(true);
      expect((await kv.rateLimit(key('rl'), 2, 600)).allowed).toBe(true);
      const denied = await kv.rateLimit(key('rl'), 2, 600);
      expect(denied.allowed).toBe(false);
      await Bun.sleep(denied.retryAfterMs + 30);
      expect((await kv.rateLimit(key('rl'), 2, 600)).allowed).toBe(true);
    });

    it('rateLimit rejects a non-positive limit', async () => {
      await expect(kv.rateLimit(key('rl'), 0, 1_000)).rejects.toThrow(RangeError);
    });

    it('a subscriber receives messages published after subscribe resolves, in order', async () => {
      const received: string[] = [];
      const unsubscribe = await kv.subscribe(channel('ch'), (m) => received.push(m));
      try {
        for (const m of ['one', '{"n":2}', 'drei ü']) await kv.publish(channel('ch'), m);
        await eventually(() => expect(received).toEqual(['one', '{"n":2}', 'drei ü']));
      } finally {
        await unsubscribe();
      }
    });

    it('two subscribers on one channel both receive; unsubscribing one stops only its delivery', async () => {
      const first: string[] = [];
      const second: string[] = [];
      const unsubscribeFirst = await kv.subscribe(channel('ch'), (m) => first.push(m));
      const unsubscribeSecond = await kv.subscribe(channel('ch'), (m) => second.push(m));
      try {
        await kv.publish(channel('ch'), 'both');
        await eventually(() => {
          expect(first).toEqual(['both']);
          expect(second).toEqual(['both']);
        });
        await unsubscribeFirst();
        await kv.publish(channel('ch'), 'only-second');
        await eventually(() => expect(second).toEqual(['both', 'only-second']));
        expect(first).toEqual(['both']);
      } finally {
        await unsubscribeFirst();
        await unsubscribeSecond();
      }
    });

    it('unsubscribing the last subscriber stops delivery', async () => {
      const received: string[] = [];
      const unsubscribe = await kv.subscribe(channel('ch'), (m) => received.push(m));
      await kv.publish(channel('ch'), 'before');
      await eventually(() => expect(received).toEqual(['before']));
      await unsubscribe();
      await kv.publish(channel('ch'), 'after');
      // A fresh subscriber proves 'after' has been delivered to whoever was listening.
      const witness: string[] = [];
      const unsubscribeWitness = await kv.subscribe(channel('ch'), (m) => witness.push(m));
      try {
        await kv.publish(channel('ch'), 'sentinel');
        await eventually(() => expect(witness).toEqual(['sentinel']));
        expect(received).toEqual(['before']);
      } finally {
        await unsubscribeWitness();
      }
    });

    it('a subscriber does not receive messages published on other channels', async () => {
      const received: string[] = [];
      const unsubscribe = await kv.subscribe(channel('mine'), (m) => received.push(m));
      try {
        await kv.publish(channel('other'), 'not for me');
        await kv.publish(channel('mine'), 'for me');
        await eventually(() => expect(received).toEqual(['for me']));
      } finally {
        await unsubscribe();
      }
    });
  });
}

describeKvContract('memory', () => createMemoryKv());

describe.skipIf(!REDIS_URL)('with REDIS_URL', () => {
  describeKvContract('redis', () => createRedisKv(REDIS_URL!));

  describe('through the Upstash REST bridge', () => {
    let bridge: UpstashBridge;
    beforeAll(async () => {
      bridge = await startUpstashBridge({ redisUrl: REDIS_URL!, token: `token-${crypto.randomUUID()}` });
    });
    afterAll(async () => {
      await bridge.stop();
    });

    describeKvContract('upstash', () => createUpstashKv({ url: bridge.url, token: bridge.token }));

    it('the bridge refuses a wrong token with 401', async () => {
      const res = await fetch(bridge.url, { method: 'POST', headers: { authorization: 'Bearer wrong' }, body: '["ping"]' });
      expect(res.status).toBe(401);
    });
  });
});

describe('createRedisKv against a dead server', () => {
  it('ping rejects within a couple of seconds instead of hanging', async () => {
    const kv = createRedisKv('redis://127.0.0.1:1');
    const started = performance.now();
    try {
      await expect(kv.ping()).rejects.toThrow();
      // A second call must fail fast too, not wait on a client that gave up.
      await expect(kv.ping()).rejects.toThrow();
      expect(performance.now() - started).toBeLessThan(5_000);
    } finally {
      await kv.close();
    }
  }, 10_000);
});

describe('createMemoryKv with an injected clock', () => {
  it('expires values by the injected clock', async () => {
    let now = 1_000_000;
    const kv = createMemoryKv({ now: () => now });
    await kv.set('k', 'v', { ttlMs: 100 });
    now += 99;
    expect(await kv.get('k')).toBe('v');
    now += 2;
    expect(await kv.get('k')).toBeNull();
  });

  it('replenishes one request per windowMs/limit', async () => {
    let now = 1_000_000;
    const kv = createMemoryKv({ now: () => now });
    for (let i = 0; i < 3; i++) expect((await kv.rateLimit('rl', 3, 900)).allowed).toBe(true);
    const denied = await kv.rateLimit('rl', 3, 900);
    expect(denied).toEqual({ allowed: false, limit: 3, remaining: 0, resetMs: 900, retryAfterMs: 300 });
    now += 299;
    expect((await kv.rateLimit('rl', 3, 900)).allowed).toBe(false);
    now += 1;
    expect(await kv.rateLimit('rl', 3, 900)).toEqual({ allowed: true, limit: 3, remaining: 0, resetMs: 900, retryAfterMs: 0 });
  });
});

describe('createKv', () => {
  const cases: [string, { url?: string; token?: string }, Kv['kind']][] = [
    ['no url', {}, 'memory'],
    ['redis://', { url: 'redis://127.0.0.1:6379' }, 'redis'],
    ['rediss://', { url: 'rediss://user:secret@redis.example.invalid:6380' }, 'redis'],
    ['https:// with a token', { url: 'https://kv.example.invalid', token: 't' }, 'upstash'],
    ['http:// with a token', { url: 'http://127.0.0.1:8079', token: 't' }, 'upstash'],
  ];
  for (const [label, options, kind] of cases) {
    it(`picks the ${kind} adapter for ${label}`, async () => {
      const kv = await createKv(options);
      expect(kv.kind).toBe(kind);
      await kv.close();
    });
  }

  it('rejects an https URL without a token', async () => {
    await expect(createKv({ url: 'https://kv.example.invalid' })).rejects.toThrow(/token/);
  });

  it('rejects an unsupported scheme', async () => {
    await expect(createKv({ url: 'memcached://127.0.0.1:11211' })).rejects.toThrow(/not supported/);
  });
});
