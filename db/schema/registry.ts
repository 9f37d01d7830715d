/** service-registry tables: the catalogue of external imputation services and their panels. */
import { sql } from 'drizzle-orm';
import { boolean, doublePrecision, integer, jsonb, pgSchema, text, timestamp, unique, uuid } from 'drizzle-orm/pg-core';

export const registrySchema = pgSchema('registry');

export const services = registrySchema.table('services', {
  id: uuid('id').primaryKey(),
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
  limits: jsonb('limits').notNull().default(sql`'{}'::jsonb`),
  supportedBuilds: text('supported_builds').array().notNull().default(sql`ARRAY[]::text[]`),
  credentialType: text('credential_type').notNull(),
  isActive: boolean('is_active').notNull().default(true),
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
    /** The id the server knows (for Cloudgene the bare panel id). */
    externalId: text('external_id').notNull(),
    displayName: text('display_name').notNull(),
    build: text('build').notNull(),
    populations: jsonb('populations').notNull().default(sql`'[]'::jsonb`),
    samples: integer('samples'),
    variants: integer('variants'),
    retiredAt: timestamp('retired_at', { withTimezone: true }),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [unique('panels_service_external_id').on(t.serviceId, t.externalId)],
);
