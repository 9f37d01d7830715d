/**
 * The consuming side of event delivery (DESIGN §5 "Events"): every consumer (notification,
 * monitoring) answers `POST /internal/events`, where producers' outbox relays post each envelope at
 * least once. The route's contract is the same everywhere — service tokens only, a small body limit,
 * and an envelope whose `source` is the calling service; what a consumer does with the event, and
 * what its 202 body says, is its own.
 */
import { createRoute, type z } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import { requireRole, type Identity } from './auth.ts';
import { HttpProblem } from './errors.ts';
import { jsonBody, jsonContent } from './openapi.ts';
import { EventEnvelopeSchema, type EventEnvelope } from './schemas/events.ts';
import { problemResponses } from './schemas/problem.ts';

/** Envelopes carry ids and small summaries, never genomic data; anything near this is a bug upstream. */
export const MAX_EVENT_BYTES = 256 * 1024;

/**
 * The route definition of a consumer's event intake; `accepted` is the consumer's 202 answer (its
 * schema, and a description of when it is given). Register it with `app.openapi(route, handler)`,
 * calling `assertEventSource` first in the handler.
 */
export function receiveEventRoute<S extends z.ZodType>(accepted: { schema: S; description: string }) {
  return createRoute({
    method: 'post',
    path: '/internal/events',
    tags: ['Internal'],
    security: [{ bearerAuth: [] }],
    middleware: [requireRole('service'), bodyLimit({ maxSize: MAX_EVENT_BYTES })] as const,
    summary: 'Receive an event from a producer’s outbox relay (idempotent by event id)',
    description: 'Only service tokens are accepted, and `source` must name the calling service.',
    request: jsonBody(EventEnvelopeSchema),
    responses: {
      202: { description: accepted.description, ...jsonContent(accepted.schema) },
      ...problemResponses(400, 401, 403, 413, 422),
    },
  });
}

/**
 * Throws a 403 `source_mismatch` unless the envelope's `source` is the calling service: a service may
 * only speak for itself, otherwise one compromised service could forge another's events.
 */
export function assertEventSource(caller: Pick<Identity, 'subject'>, envelope: Pick<EventEnvelope, 'source'>): void {
  if (envelope.source !== caller.subject) {
    throw new HttpProblem(403, 'source_mismatch', `The event's source "${envelope.source}" is not the calling service (${caller.subject}).`);
  }
}
