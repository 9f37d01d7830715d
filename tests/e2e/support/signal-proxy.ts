/**
 * A loopback HTTP proxy in front of a fake imputation server that can hold back the ANSWER to a
 * request it has already delivered: the server has acted on the request (a Cloudgene submission is
 * registered) while the caller is still waiting. The fakes' own `hang` fault stalls a request before
 * the server sees it; this is the other half of an ambiguous call, the one a retry must not repeat.
 * Bodies are small in these tests and are buffered.
 */

export interface HoldRule {
  method: string;
  /** Requests whose path starts with this are forwarded, then held. */
  pathPrefix: string;
}

export interface AnswerHoldingProxy {
  readonly url: string;
  /** From now on, answers to matching requests are held until `releaseAll()`. */
  hold(rule: HoldRule): void;
  /** Stops holding; held answers are dropped (the caller sees a 503), as a lost connection would leave them. */
  releaseAll(): void;
  /** Requests forwarded whose answer is being held right now. */
  readonly held: number;
  stop(): Promise<void>;
}

const HOP_BY_HOP = ['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'content-encoding', 'host'];

/** Starts the proxy on a free loopback port, forwarding everything to `target` (a base URL). */
export function startAnswerHoldingProxy(target: string): AnswerHoldingProxy {
  let rule: HoldRule | null = null;
  const waiting = new Set<() => void>();
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    // A held answer must stay held: no idle cut-off.
    idleTimeout: 0,
    async fetch(request) {
      const url = new URL(request.url);
      const headers = new Headers(request.headers);
      for (const name of HOP_BY_HOP) headers.delete(name);
      const body = request.method === 'GET' || request.method === 'HEAD' ? undefined : await request.arrayBuffer();
      const upstream = await fetch(`${target}${url.pathname}${url.search}`, { method: request.method, headers, body, redirect: 'manual' });
      const payload = await upstream.arrayBuffer();
      const answerHeaders = new Headers(upstream.headers);
      for (const name of HOP_BY_HOP) answerHeaders.delete(name);
      const matched = rule !== null && request.method === rule.method && url.pathname.startsWith(rule.pathPrefix);
      if (matched) {
        await new Promise<void>((resolve) => {
          const release = () => {
            waiting.delete(release);
            resolve();
          };
          waiting.add(release);
        });
        return new Response('answer dropped by the test proxy', { status: 503 });
      }
      return new Response(payload, { status: upstream.status, headers: answerHeaders });
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    hold(next) {
      rule = next;
    },
    releaseAll() {
      rule = null;
      for (const release of [...waiting]) release();
    },
    get held() {
      return waiting.size;
    },
    async stop() {
      for (const release of [...waiting]) release();
      await server.stop(true);
    },
  };
}
