/**
 * monitoring's event intake (DESIGN §5 "Events"): producers' outbox relays post every event here at
 * least once. The ones alert rules read (external server health, job outcomes) are stored once by id
 * in monitor.received_events and evaluated once; a redelivery is acknowledged without a second
 * evaluation. Other types are acknowledged and dropped, so job-processor's chatter does not pile up.
 */
import { OpenAPIHono, z } from '@hono/zod-openapi';
import { receivedEvents } from '@db/schema/monitor.ts';
import type { AppEnv } from '@shared/app.ts';
import type { Db } from '@shared/db.ts';
import { assertEventSource, receiveEventRoute } from '@shared/event-intake.ts';
import { eq } from 'drizzle-orm';
import { MONITORED_EVENT_TYPES, type AlertEngine } from '../alert-engine.ts';

const EventAcceptedSchema = z
  .object({
    id: z.uuid(),
    duplicate: z.boolean().openapi({ description: 'True when this event id had been received before' }),
    ignored: z.boolean().openapi({ description: 'True for event types no alert rule reads (acknowledged, not stored)' }),
  })
  .openapi('MonitoringEventAccepted');

const receive = receiveEventRoute({
  schema: EventAcceptedSchema,
  description: 'Stored and evaluated, already stored (`duplicate`), or not of interest (`ignored`).',
});

export interface EventIntakeDeps {
  db: Db;
  engine: Pick<AlertEngine, 'onEvent'>;
  /** Stamps `received_at`, which the job failure-rate window reads; pass the engine's clock. */
  now?: () => Date;
}

export function internalEventRoutes(deps: EventIntakeDeps) {
  const app = new OpenAPIHono<AppEnv>();
  const clock = deps.now ?? (() => new Date());

  app.openapi(receive, async (c) => {
    const envelope = c.req.valid('json');
    assertEventSource(c.get('identity'), envelope);
    if (!MONITORED_EVENT_TYPES.has(envelope.type)) return c.json({ id: envelope.id, duplicate: false, ignored: true }, 202);

    const stored = await deps.db
      .insert(receivedEvents)
      .values({ id: envelope.id, type: envelope.type, source: envelope.source, payload: envelope, receivedAt: clock() })
      .onConflictDoNothing({ target: receivedEvents.id })
      .returning({ id: receivedEvents.id });
    if (stored.length === 0) return c.json({ id: envelope.id, duplicate: true, ignored: false }, 202);

    try {
      await deps.engine.onEvent(envelope);
    } catch (err) {
      // Forget the event so the relay's retry evaluates it again instead of being taken for a duplicate.
      await deps.db.delete(receivedEvents).where(eq(receivedEvents.id, envelope.id));
      throw err;
    }
    return c.json({ id: envelope.id, duplicate: false, ignored: false }, 202);
  });

  return app;
}
