/**
 * The HTTP side of event delivery (DESIGN §5 "Events"): posts one envelope to a consumer's
 * `/internal/events` with this service's credential. The outbox relay owns retries and backoff, so a
 * call is made once per attempt; any answer other than 2xx throws. `platformOutboxRelay` wires a
 * producer's relay to its consumers this way.
 */
import type { ServiceCredential } from './auth.ts';
import { createHttpClient, type HttpClient } from './http-client.ts';
import { createOutboxRelay, type OutboxRelay, type OutboxRelayDeps } from './outbox-relay.ts';
import type { EventEnvelope } from './schemas/events.ts';

export interface HttpEventSinkDeps {
  /** A client for the consuming service (`createHttpClient({ service: 'notification', baseUrl })`). */
  client: HttpClient;
  credential: ServiceCredential;
  path?: string;
}

/** A `deliver` function for `createOutboxRelay` that posts each envelope as JSON. */
export function httpEventSink(deps: HttpEventSinkDeps): (event: EventEnvelope) => Promise<void> {
  const path = deps.path ?? '/internal/events';
  return async (event) => {
    // Not marked idempotent: a failed attempt goes back to the relay, whose backoff spaces the retries
    // and whose lease would be outlasted by the client's own retry loop.
    await deps.client.call({
      method: 'POST',
      path,
      body: event,
      headers: { authorization: await deps.credential.authorization() },
    });
  };
}

/**
 * Delivers each envelope to every consumer. One failing consumer fails the attempt, so the relay
 * retries it for all of them; consumers deduplicate by event id, so the others see a repeat, never a loss.
 */
export function eachSink(...sinks: ((event: EventEnvelope) => Promise<void>)[]): (event: EventEnvelope) => Promise<void> {
  return async (event) => {
    const outcomes = await Promise.allSettled(sinks.map((deliver) => deliver(event)));
    const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (failed) throw failed.reason;
  };
}

/** `logger` is the service's own: the relay logs under `worker: 'outbox-relay'`. */
export interface PlatformOutboxRelayDeps extends Pick<OutboxRelayDeps, 'db' | 'table' | 'logger'> {
  /** The producing service's credential, sent with every delivery. */
  credential: ServiceCredential;
  /**
   * The consuming services by name, each with its base URL, e.g. `{ notification: env.NOTIFICATION_URL,
   * monitoring: env.MONITORING_URL }` (the consumers of job and registry events).
   */
  consumers: Record<string, string>;
  /** Per delivery attempt; default 5 s. */
  timeoutMs?: number;
}

/**
 * The outbox relay of a producing service (started with the service, woken after it commits an
 * event): its outbox table delivered over HTTP to each of `consumers`' `/internal/events`.
 */
export function platformOutboxRelay(deps: PlatformOutboxRelayDeps): OutboxRelay {
  const timeoutMs = deps.timeoutMs ?? 5_000;
  const sinks = Object.entries(deps.consumers).map(([service, baseUrl]) =>
    httpEventSink({ client: createHttpClient({ service, baseUrl, timeoutMs }), credential: deps.credential }),
  );
  return createOutboxRelay({
    db: deps.db,
    table: deps.table,
    logger: deps.logger.child({ worker: 'outbox-relay' }),
    deliver: eachSink(...sinks),
  });
}
