/**
 * Event intake (DESIGN §5 "Events"): producers' outbox relays post envelopes here at least once; each
 * event is stored once, keyed by its id, and fanned out to inboxes, emails and webhooks in the same
 * transaction, so a redelivery is acknowledged without a second row or a second message.
 */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '@shared/app.ts';
import { requireRole } from '@shared/auth.ts';
import { HttpProblem } from '@shared/errors.ts';
import { jsonBody, jsonContent } from '@shared/openapi.ts';
import { EventEnvelopeSchema } from '@shared/schemas/events.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { fanOut, type FanOutDeps, type FanOutResult } from '../fan-out.ts';
import { bodyLimit } from 'hono/body-limit';

/** Envelopes carry ids and small summaries, never genomic data; anything near this is a bug upstream. */
const MAX_EVENT_BYTES = 256 * 1024;

const EventAcceptedSchema = z
  .object({
    id: z.uuid(),
    duplicate: z.boolean().openapi({ description: 'True when this event id had been received before' }),
  })
  .openapi('EventAccepted');

const receive = createRoute({
  method: 'post',
  path: '/internal/events',
  tags: ['Internal'],
  security: [{ bearerAuth: [] }],
  middleware: [requireRole('service'), bodyLimit({ maxSize: MAX_EVENT_BYTES })] as const,
  summary: 'Receive an event from a producer’s outbox relay (idempotent by event id)',
  description: 'Only service tokens are accepted, and `source` must name the calling service.',
  request: jsonBody(EventEnvelopeSchema),
  responses: {
    202: { description: 'Stored, or already stored (`duplicate`).', ...jsonContent(EventAcceptedSchema) },
    ...problemResponses(400, 401, 403, 413, 422),
  },
});

export interface EventIntakeDeps extends FanOutDeps {
  /** Called with what one event produced, after it is committed (live stream, send-queue wake-ups). */
  delivered?: (result: FanOutResult) => void | Promise<void>;
}

export function internalEventRoutes(deps: EventIntakeDeps) {
  const app = new OpenAPIHono<AppEnv>();

  app.openapi(receive, async (c) => {
    const envelope = c.req.valid('json');
    const caller = c.get('identity').subject;
    // A service may only speak for itself: otherwise one compromised service could forge another's events.
    if (envelope.source !== caller) {
      throw new HttpProblem(403, 'source_mismatch', `The event's source "${envelope.source}" is not the calling service (${caller}).`);
    }
    const result = await fanOut(deps, envelope);
    if (!result.duplicate) await deps.delivered?.(result);
    return c.json({ id: envelope.id, duplicate: result.duplicate }, 202);
  });

  return app;
}
