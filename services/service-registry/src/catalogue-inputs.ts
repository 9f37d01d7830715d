/** What admins send to create and change catalogue entries; also the shape of the initial catalogue file. */
import { z } from '@hono/zod-openapi';
import {
  BaseUrlSchema,
  BUILDS,
  PopulationSchema,
  PROTOCOLS,
  QcThresholdsSchema,
  SERVICE_CREDENTIAL_TYPES,
  ServiceLimitsSchema,
  SlugSchema,
} from '@shared/schemas/registry.ts';

const CLOUDGENE_KEY = /^apps@([^@\s]+)@([^@\s]+)$/;
const text = (max: number) => z.string().trim().min(1).max(max);

const PanelFields = {
  externalKey: z.string().regex(CLOUDGENE_KEY, 'must look like apps@<panel id>@<version>').nullable().optional(),
  version: text(50).nullable().optional(),
  displayName: text(200),
  description: z.string().max(2000).nullable().optional(),
  build: z.enum(BUILDS),
  populations: z
    .array(PopulationSchema)
    .max(100)
    .refine((list) => new Set(list.map((p) => p.id)).size === list.length, 'population ids must be unique')
    .default([]),
  samples: z.number().int().min(0).nullable().optional(),
  variants: z.number().int().min(0).max(2_147_483_647).nullable().optional(),
  qcThresholds: QcThresholdsSchema.default({}),
};

const keyMatchesId = (p: { externalId?: string; externalKey?: string | null; version?: string | null }) => {
  if (!p.externalKey || !p.externalId) return true;
  const [, id, version] = CLOUDGENE_KEY.exec(p.externalKey)!;
  return id === p.externalId && (p.version == null || p.version === version);
};
const keyMismatch = { message: 'externalKey must name the same panel id (and version) as externalId/version', path: ['externalKey'] };

export const PanelCreateSchema = z
  .object({ externalId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, 'letters, digits, dot, underscore, hyphen'), ...PanelFields })
  .strict()
  .refine(keyMatchesId, keyMismatch)
  .openapi('PanelCreate');

export const PanelPatchSchema = z
  .object({
    externalKey: PanelFields.externalKey,
    version: PanelFields.version,
    displayName: PanelFields.displayName.optional(),
    description: PanelFields.description,
    build: PanelFields.build.optional(),
    populations: PanelFields.populations.optional(),
    samples: PanelFields.samples,
    variants: PanelFields.variants,
    qcThresholds: QcThresholdsSchema.optional(),
    /** `false` brings a retired panel back. */
    retired: z.literal(false).optional(),
  })
  .strict()
  .openapi('PanelPatch');

const LocationInput = z
  .object({
    country: text(100).nullable().optional(),
    city: text(100).nullable().optional(),
    latitude: z.number().min(-90).max(90).nullable().optional(),
    longitude: z.number().min(-180).max(180).nullable().optional(),
  })
  .strict()
  .refine((l) => (l.latitude == null) === (l.longitude == null), { message: 'give both latitude and longitude, or neither', path: ['latitude'] });

const ServiceFields = {
  name: text(200),
  baseUrl: BaseUrlSchema,
  appId: z.string().regex(/^[A-Za-z0-9._-]{1,100}(@[A-Za-z0-9._-]{1,50})?$/, 'a Cloudgene app id such as imputationserver2').optional(),
  description: z.string().max(4000).nullable().optional(),
  homepage: BaseUrlSchema.nullable().optional(),
  location: LocationInput.optional(),
  limits: ServiceLimitsSchema.default({}),
  supportedBuilds: z
    .array(z.enum(BUILDS))
    .min(1)
    .refine((b) => new Set(b).size === b.length, 'builds must be unique'),
  credentialType: z.enum(SERVICE_CREDENTIAL_TYPES).optional(),
  isActive: z.boolean().default(true),
};

export const ServiceCreateSchema = z
  .object({
    slug: SlugSchema,
    protocol: z.enum(PROTOCOLS),
    ...ServiceFields,
    panels: z.array(PanelCreateSchema).max(200).default([]),
  })
  .strict()
  .refine((s) => s.protocol === 'cloudgene' || s.appId === undefined, { message: 'appId is only for Cloudgene servers', path: ['appId'] })
  .refine((s) => new Set(s.panels.map((p) => p.externalId)).size === s.panels.length, { message: 'panel externalIds must be unique', path: ['panels'] })
  .openapi('ServiceCreate');

export const ServicePatchSchema = z
  .object({
    name: ServiceFields.name.optional(),
    baseUrl: ServiceFields.baseUrl.optional(),
    appId: ServiceFields.appId,
    description: ServiceFields.description,
    homepage: ServiceFields.homepage,
    location: ServiceFields.location,
    limits: ServiceLimitsSchema.optional(),
    supportedBuilds: ServiceFields.supportedBuilds.optional(),
    credentialType: ServiceFields.credentialType,
    isActive: z.boolean().optional(),
  })
  .strict()
  .openapi('ServicePatch');

/** The initial catalogue file: the services (with panels) loaded on a first start. */
export const CatalogueFileSchema = z.object({ services: z.array(ServiceCreateSchema).min(1) });

export type PanelCreate = z.infer<typeof PanelCreateSchema>;
export type PanelPatch = z.infer<typeof PanelPatchSchema>;
export type ServiceCreate = z.infer<typeof ServiceCreateSchema>;
export type ServicePatch = z.infer<typeof ServicePatchSchema>;

/** `apps@<id>@<version>` → its parts; a bare id passes through. */
export function parsePanelReference(reference: string): { externalId: string; version: string | null } {
  const match = CLOUDGENE_KEY.exec(reference);
  return match ? { externalId: match[1]!, version: match[2]! } : { externalId: reference, version: null };
}
