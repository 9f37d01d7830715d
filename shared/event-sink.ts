/**
 * The HTTP side of event delivery (DESIGN §5 "Events"): posts one envelope to a consumer's
 * `/internal/events` with this service's credential. The outbox relay owns retries and backoff, so a
 * call is made once per attempt; any answer other than 2xx throws.
 */
import type { ServiceCredential } from './auth.ts';
import type { HttpClient } from './http-client.ts';
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

/** The consumers of a producer's events: notification (users) and monitoring (alerts), both over HTTP. */
export function platformEventSinks(deps: { notificationUrl: string; monitoringUrl: string; credential: ServiceCredential; createClient: (service: string, baseUrl: string) => HttpClient }) {
  return eachSink(
    httpEventSink({ client: deps.createClient('notification', deps.notificationUrl), credential: deps.credential }),
    httpEventSink({ client: deps.createClient('monitoring', deps.monitoringUrl), credential: deps.credential }),
  );
}
