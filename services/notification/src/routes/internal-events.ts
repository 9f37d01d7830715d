/**
 * Event intake (DESIGN §5 "Events"): producers' outbox relays post envelopes here at least once; each
 * event is stored once, keyed by its id, and fanned out to inboxes, emails and webhooks in the same
 * transaction, so a redelivery is acknowledged without a second row or a second message.
 */
import { OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '@shared/app.ts';
import { assertEventSource, receiveEventRoute } from '@shared/event-intake.ts';
import { fanOut, type FanOutDeps, type FanOutResult } from '../fan-out.ts';

const EventAcceptedSchema = z
  .object({
    id: z.uuid(),
    duplicate: z.boolean().openapi({ description: 'True when this event id had been received before' }),
  })
  .openapi('EventAccepted');

const receive = receiveEventRoute({ schema: EventAcceptedSchema, description: 'Stored, or already stored (`duplicate`).' });

export interface EventIntakeDeps extends FanOutDeps {
  /** Called with what one event produced, after it is committed (live stream, send-queue wake-ups). */
  delivered?: (result: FanOutResult) => void | Promise<void>;
}

export function internalEventRoutes(deps: EventIntakeDeps) {
  const app = new OpenAPIHono<AppEnv>();

  app.openapi(receive, async (c) => {
    const envelope = c.req.valid('json');
    assertEventSource(c.get('identity'), envelope);
    const result = await fanOut(deps, envelope);
    if (!result.duplicate) await deps.delivered?.(result);
    return c.json({ id: envelope.id, duplicate: result.duplicate }, 202);
  });

  return app;
}
