/**
 * The event envelope every producer's outbox relay posts to consumers' `POST /internal/events`
 * (DESIGN §5). Delivery is at least once; consumers deduplicate by `id`.
 */
import { z } from '@hono/zod-openapi';

/** Every platform event type; notification's `NOTIFIABLE` gives each its channel defaults. */
export const EVENT_TYPES = [
  'job.created',
  'job.status_changed',
  'job.completed',
  'job.failed',
  'job.cancelled',
  'service.health_changed',
  'credential.expiring',
  'alert.raised',
  'alert.resolved',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export const EventEnvelopeSchema = z
  .object({
    id: z.uuid().openapi({ description: 'Unique per event; redelivery repeats it' }),
    type: z.string().regex(/^[a-z]+(\.[a-z_]+)+$/).max(100).openapi({ example: 'service.health_changed' }),
    source: z.string().min(1).max(100).openapi({ example: 'service-registry' }),
    occurredAt: z.iso.datetime({ offset: true }),
    /** The user the event concerns, when it concerns one (jobs, credentials); null for platform events. */
    userId: z.uuid().nullable(),
    data: z.record(z.string(), z.unknown()),
  })
  .openapi('EventEnvelope');

export type EventEnvelope = z.infer<typeof EventEnvelopeSchema>;

/** `data` of `service.health_changed`. */
export const ServiceHealthChangedSchema = z
  .object({
    serviceId: z.uuid(),
    slug: z.string(),
    name: z.string(),
    previous: z.string().openapi({ example: 'healthy' }),
    current: z.string().openapi({ example: 'unreachable' }),
    error: z.string().nullable(),
    checkedAt: z.string(),
  })
  .openapi('ServiceHealthChanged');
