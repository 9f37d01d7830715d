/** monitoring tables: stored probe results of every platform service. */
import { bigserial, doublePrecision, index, integer, pgSchema, text, timestamp } from 'drizzle-orm/pg-core';

export const monitorSchema = pgSchema('monitor');

export const probes = monitorSchema.table(
  'probes',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    service: text('service').notNull(),
    /** healthy | degraded | unhealthy | unreachable */
    status: text('status').notNull(),
    latencyMs: doublePrecision('latency_ms'),
    httpStatus: integer('http_status'),
    failedCheck: text('failed_check'),
    checkedAt: timestamp('checked_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('probes_service_checked').on(t.service, t.checkedAt)],
);
