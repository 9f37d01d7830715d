/** monitoring tables: probe results of every platform service, host metric samples, alerts, received events and the outbox. */
import { sql } from 'drizzle-orm';
import { bigserial, doublePrecision, index, integer, jsonb, pgSchema, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { outboxTable } from './outbox.ts';

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
  (t) => [index('probes_service_checked').on(t.service, t.checkedAt), index('probes_checked').on(t.checkedAt)],
);

/** One host sample: CPU and memory as percentages, load averages, disk use per watched path, network rates. */
export const hostSamples = monitorSchema.table(
  'host_samples',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    sampledAt: timestamp('sampled_at', { withTimezone: true }).notNull(),
    cpuPercent: doublePrecision('cpu_percent'),
    cpuCount: integer('cpu_count').notNull(),
    load1: doublePrecision('load_1').notNull(),
    load5: doublePrecision('load_5').notNull(),
    load15: doublePrecision('load_15').notNull(),
    memoryTotalBytes: doublePrecision('memory_total_bytes').notNull(),
    memoryAvailableBytes: doublePrecision('memory_available_bytes').notNull(),
    memoryPercent: doublePrecision('memory_percent').notNull(),
    /** `[{path, totalBytes, usedBytes, freeBytes, percent}]` */
    disks: jsonb('disks').notNull().default(sql`'[]'::jsonb`),
    /** Bytes per second since the previous sample, summed over non-loopback interfaces; null on the first. */
    networkRxBytesPerSec: doublePrecision('network_rx_bytes_per_sec'),
    networkTxBytesPerSec: doublePrecision('network_tx_bytes_per_sec'),
  },
  (t) => [index('host_samples_sampled').on(t.sampledAt)],
);

export const alerts = monitorSchema.table(
  'alerts',
  {
    id: uuid('id').primaryKey(),
    /** service_unhealthy | high_cpu | high_memory | high_disk | external_service_unavailable | job_failure_rate | queue_age */
    rule: text('rule').notNull(),
    /** What the alert is about: a service name, a disk path, an external service slug, `host`. */
    subject: text('subject').notNull(),
    /** low | medium | high | critical */
    severity: text('severity').notNull(),
    title: text('title').notNull(),
    message: text('message').notNull(),
    value: doublePrecision('value'),
    threshold: doublePrecision('threshold'),
    details: jsonb('details').notNull().default(sql`'{}'::jsonb`),
    /** active | resolved */
    state: text('state').notNull().default('active'),
    raisedAt: timestamp('raised_at', { withTimezone: true }).notNull(),
    acknowledgedAt: timestamp('acknowledged_at', { withTimezone: true }),
    acknowledgedBy: uuid('acknowledged_by'),
    resolvedAt: timestamp('resolved_at', { withTimezone: true }),
    /** `auto` when the condition cleared, else the admin's id. */
    resolvedBy: text('resolved_by'),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull(),
  },
  (t) => [
    // At most one active alert per rule and subject.
    uniqueIndex('alerts_one_active').on(t.rule, t.subject).where(sql`state = 'active'`),
    index('alerts_state_raised').on(t.state, t.raisedAt),
  ],
);

/** Events received from other services (external server health, job outcomes), stored once by id. */
export const receivedEvents = monitorSchema.table(
  'received_events',
  {
    id: uuid('id').primaryKey(),
    type: text('type').notNull(),
    source: text('source').notNull(),
    payload: jsonb('payload').notNull(),
    receivedAt: timestamp('received_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('received_events_type_received').on(t.type, t.receivedAt)],
);

export const outbox = outboxTable(monitorSchema);
