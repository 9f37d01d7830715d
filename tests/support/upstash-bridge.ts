import { RedisClient } from 'bun';

/**
 * A local stand-in for Upstash's REST API over a real Redis, so the Upstash adapter is tested against
 * the same server as the Redis adapter. Implements what @upstash/redis 1.39 uses: `POST /` (one
 * command), `/pipeline`, `/multi-exec`, `/subscribe/<channel>` (server-sent events), Bearer auth and
 * `Upstash-Encoding: base64`.
 */
export interface UpstashBridge {
  url: string;
  token: string;
  stop(): Promise<void>;
}

type Command = (string | number | boolean)[];

/** Starts the bridge on 127.0.0.1 (an ephemeral port by default); rejects if Redis is unreachable. */
export async function startUpstashBridge(options: { redisUrl: string; token: string; port?: number }): Promise<UpstashBridge> {
  const { redisUrl, token } = options;
  const redis = new RedisClient(redisUrl);
  // MULTI/EXEC and SUBSCRIBE change a connection's state, so each gets its own connection.
  const txClient = new RedisClient(redisUrl);
  const subscriber = new RedisClient(redisUrl);
  await redis.connect();
  let txQueue: Promise<unknown> = Promise.resolve();

  const run = (client: RedisClient, command: Command) => {
    const [name, ...args] = command.map(String);
    if (!name) throw new Error('ERR empty command');
    return client.send(name.toUpperCase(), args);
  };

  async function multiExec(commands: Command[]): Promise<unknown[]> {
    await txClient.send('MULTI', []);
    try {
      for (const command of commands) await run(txClient, command);
    } catch (error) {
      await txClient.send('DISCARD', []);
      throw error;
    }
    return txClient.send('EXEC', []);
  }

  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: options.port ?? 0,
    // Subscriptions are long-lived streams that may stay silent.
    idleTimeout: 0,
    async fetch(req) {
      if (req.headers.get('authorization') !== `Bearer ${token}`) return Response.json({ error: 'Unauthorized' }, { status: 401 });
      if (req.method !== 'POST') return Response.json({ error: 'Method not allowed' }, { status: 405 });
      const base64 = req.headers.get('upstash-encoding')?.toLowerCase() === 'base64';
      const path = new URL(req.url).pathname;
      if (path.startsWith('/subscribe/')) return subscribe(decodeURIComponent(path.slice('/subscribe/'.length)), req.signal);
      try {
        const body = (await req.json()) as unknown;
        if (path === '/') return Response.json(resultReply(await run(redis, body as Command), base64));
        if (path === '/pipeline') {
          const replies = (body as Command[]).map((command) =>
            Promise.try(() => run(redis, command)).then((result) => resultReply(result, base64), errorReply),
          );
          return Response.json(await Promise.all(replies));
        }
        if (path === '/multi-exec') {
          const replies = txQueue.then(() => multiExec(body as Command[]));
          txQueue = replies.catch(() => {});
          return Response.json((await replies).map((r) => (r instanceof Error ? errorReply(r) : resultReply(r, base64))));
        }
        return Response.json({ error: `Not found: ${path}` }, { status: 404 });
      } catch (error) {
        return Response.json(errorReply(error), { status: 400 });
      }
    },
  });

  function subscribe(channel: string, signal: AbortSignal): Response {
    const encoder = new TextEncoder();
    let open = true;
    let listener: ((message: string) => void) | undefined;
    const stop = () => {
      open = false;
      if (listener) void subscriber.unsubscribe(channel, listener).catch(() => {});
      listener = undefined;
    };
    const stream = new ReadableStream<Uint8Array>({
      async start(controller) {
        const send = (data: string) => {
          if (open) controller.enqueue(encoder.encode(`data: ${data}\n\n`));
        };
        listener = (message) => send(`message,${channel},${message}`);
        const count = await subscriber.subscribe(channel, listener);
        send(`subscribe,${channel},${count}`);
        // The client unsubscribes by aborting its request.
        const onAbort = () => {
          if (open) controller.close();
          stop();
        };
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort);
      },
      cancel: stop,
    });
    return new Response(stream, { headers: { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' } });
  }

  return {
    url: `http://127.0.0.1:${server.port}`,
    token,
    async stop() {
      await server.stop(true);
      redis.close();
      txClient.close();
      subscriber.close();
    },
  };
}

const resultReply = (result: unknown, base64: boolean) => ({ result: toUpstash(result, base64) });
const errorReply = (error: unknown) => ({ error: error instanceof Error ? error.message : String(error) });

/** RESP3 replies as Upstash (RESP2) would send them: maps flattened, booleans as 0/1, doubles as strings. */
function toUpstash(value: unknown, base64: boolean): unknown {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return base64 ? Buffer.from(value).toString('base64') : value;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'number') return Number.isInteger(value) ? value : toUpstash(String(value), base64);
  if (Array.isArray(value)) return value.map((item) => toUpstash(item, base64));
  if (typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => [toUpstash(k, base64), toUpstash(v, base64)]);
  return value;
}
