/**
 * A user's webhook endpoint on 127.0.0.1: it answers 204 to every POST and keeps each delivery with
 * its raw body and headers, so a test can check it the way the user's server would — the Standard
 * Webhooks signature over the exact bytes received, with the secret the platform showed once at
 * registration (verified with notification's own `verifyWebhook`, which its unit tests pin to the
 * specification's published example).
 */
import type { Server } from 'bun';
import { verifyWebhook } from '../../../services/notification/src/webhook-signing.ts';
import { waitUntil } from './wait.ts';

export interface ReceivedDelivery {
  path: string;
  headers: Headers;
  /** The body exactly as received (what the signature covers). */
  body: string;
  /** The body parsed: `{type, timestamp, data}`. */
  payload: { type: string; timestamp: string; data: Record<string, unknown> };
}

export interface WebhookReceiver {
  /** Where to register the endpoint, e.g. `http://127.0.0.1:4321/hooks/imputation`. */
  readonly url: string;
  readonly deliveries: ReceivedDelivery[];
  /** Waits for a delivery `match` accepts and answers it. */
  waitFor(what: string, match: (delivery: ReceivedDelivery) => boolean, timeoutMs?: number): Promise<ReceivedDelivery>;
  /** Whether `delivery` carries a valid signature under `secret` (timestamp within the spec's 5 minutes). */
  verify(delivery: ReceivedDelivery, secret: string): boolean;
  stop(): Promise<void>;
}

export function startWebhookReceiver(path = '/hooks/imputation'): WebhookReceiver {
  const deliveries: ReceivedDelivery[] = [];
  const server: Server<undefined> = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(req) {
      const url = new URL(req.url);
      if (req.method !== 'POST' || url.pathname !== path) return new Response('not here', { status: 404 });
      const body = await req.text();
      let payload: ReceivedDelivery['payload'];
      try {
        payload = JSON.parse(body);
      } catch {
        return new Response('not JSON', { status: 400 });
      }
      deliveries.push({ path: url.pathname, headers: req.headers, body, payload });
      return new Response(null, { status: 204 });
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}${path}`,
    deliveries,
    waitFor: (what, match, timeoutMs) =>
      waitUntil(
        what,
        async () => deliveries.find(match) ?? deliveries.map((d) => ({ type: d.payload.type, data: d.payload.data })),
        (found): found is ReceivedDelivery => !Array.isArray(found),
        { timeoutMs },
      ) as Promise<ReceivedDelivery>,
    verify: (delivery, secret) => verifyWebhook(secret, delivery.headers, delivery.body),
    stop: () => server.stop(true),
  };
}
