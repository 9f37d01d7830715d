/**
 * Producer side of the transactional outbox (DESIGN §5): the row a service inserts, in the same
 * transaction as the state change it announces. The row's payload is the full event envelope, so the
 * relay posts it unchanged and consumers deduplicate by its id.
 */
import type { EventEnvelope } from './schemas/events.ts';

export interface OutboxRow {
  id: string;
  type: string;
  payload: EventEnvelope;
}

export function outboxRow(event: {
  type: string;
  source: string;
  userId?: string | null;
  data: Record<string, unknown>;
  occurredAt?: Date;
}): OutboxRow {
  const id = Bun.randomUUIDv7();
  return {
    id,
    type: event.type,
    payload: {
      id,
      type: event.type,
      source: event.source,
      occurredAt: (event.occurredAt ?? new Date()).toISOString(),
      userId: event.userId ?? null,
      data: event.data,
    },
  };
}
