/** service-registry tables: the catalogue of external imputation services and their panels, probe results, and the outbox. */
import { sql } from 'drizzle-orm';
import { boolean, doublePrecision, index, integer, jsonb, pgSchema, text, timestamp, unique, uuid } from 'drizzle-orm/pg-core';
import { outboxTable } from './outbox.ts';

export const registrySchema = pgSchema('registry');

export const services = registrySchema.table('services', {
  id: uuid('id').primaryKey(),
  /** Stable human key (never changes once created); the vault stores users' credentials under it. */
  slug: text('slug').notNull().unique(),
  name: text('name').notNull(),
  /** `cloudgene` | `ga4gh-wes` */
  protocol: text('protocol').notNull(),
  baseUrl: text('base_url').notNull(),
  appId: text('app_id').notNull().default('imputationserver2'),
  description: text('description'),
  homepage: text('homepage'),
  locationCountry: text('location_country'),
  locationCity: text('location_city'),
  latitude: doublePrecision('latitude'),
  longitude: doublePrecision('longitude'),
  /** `{maxFileSizeBytes?, minSamples?, maxSamples?, maxActiveJobsPerUser?}` */
  limits: jsonb('limits').notNull().default(sql`'{}'::jsonb`),
  supportedBuilds: text('supported_builds').array().notNull().default(sql`ARRAY[]::text[]`),
  credentialType: text('credential_type').notNull(),
  isActive: boolean('is_active').notNull().default(true),
  /** What the last sync learned from the server itself (app version, options, WES versions, workflow types). */
  protocolInfo: jsonb('protocol_info').notNull().default(sql`'{}'::jsonb`),
  syncedAt: timestamp('synced_at', { withTimezone: true }),
  /** Retired services stay resolvable by id (jobs and vault entries refer to them) but leave the catalogue. */
  retiredAt: timestamp('retired_at', { withTimezone: true }),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

export const panels = registrySchema.table(
  'panels',
  {
    id: uuid('id').primaryKey(),
    serviceId: uuid('service_id')
      .notNull()
      .references(() => services.id),
    /** The id the server knows (for Cloudgene the bare panel id, e.g. `hapmap-2`). */
    externalId: text('external_id').notNull(),
    /** Cloudgene's full app key `apps@<id>@<version>`; null for WES nodes. */
    externalKey: text('external_key'),
    version: text('version'),
    displayName: text('display_name').notNull(),
    description: text('description'),
    build: text('build').notNull(),
    /** `[{id, name, samples|null}]` */
    populations: jsonb('populations').notNull().default(sql`'[]'::jsonb`),
    samples: integer('samples'),
    variants: integer('variants'),
    /** Cloudgene `qcFilter` keys: `{overlap?, minSnps?, sampleCallrate?, mixedGenotypeschrX?, strandFlips?}` */
    qcThresholds: jsonb('qc_thresholds').notNull().default(sql`'{}'::jsonb`),
    retiredAt: timestamp('retired_at', { withTimezone: true }),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [unique('panels_service_external_id').on(t.serviceId, t.externalId)],
);

/** The latest probe outcome per service. */
export const serviceHealth = registrySchema.table('service_health', {
  serviceId: uuid('service_id')
    .primaryKey()
    .references(() => services.id),
  /** healthy | degraded | unhealthy | unreachable */
  status: text('status').notNull(),
  /** When the service entered its current status. */
  statusSince: timestamp('status_since', { withTimezone: true }).notNull(),
  checkedAt: timestamp('checked_at', { withTimezone: true }).notNull(),
  latencyMs: integer('latency_ms'),
  httpStatus: integer('http_status'),
  error: text('error'),
  /** Jobs waiting on the server (Cloudgene `queue.size`, WES QUEUED+INITIALIZING), when it reports them. */
  queueSize: integer('queue_size'),
  /** Jobs running on the server, when it reports them. */
  runningJobs: integer('running_jobs'),
  consecutiveFailures: integer('consecutive_failures').notNull().default(0),
});

/** Every probe outcome, pruned to a retention limit. */
export const healthChecks = registrySchema.table(
  'health_checks',
  {
    id: uuid('id').primaryKey(),
    serviceId: uuid('service_id')
      .notNull()
      .references(() => services.id),
    checkedAt: timestamp('checked_at', { withTimezone: true }).notNull(),
    status: text('status').notNull(),
    latencyMs: integer('latency_ms'),
    httpStatus: integer('http_status'),
    error: text('error'),
    queueSize: integer('queue_size'),
  },
  (t) => [index('health_checks_service_checked').on(t.serviceId, t.checkedAt), index('health_checks_checked').on(t.checkedAt)],
);

export const outbox = outboxTable(registrySchema);
