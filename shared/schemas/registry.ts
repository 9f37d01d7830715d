/**
 * The catalogue's public shapes: imputation services, their reference panels, health and discovery
 * results. Produced by service-registry; read by job-processor (targets, `"auto"`) and the gateway docs.
 */
import { z } from '@hono/zod-openapi';

export const PROTOCOLS = ['cloudgene', 'ga4gh-wes'] as const;
export const BUILDS = ['hg19', 'hg38'] as const;
/** What a server expects from a user; matches the vault's credential types, plus `none` for open nodes. */
export const SERVICE_CREDENTIAL_TYPES = ['cloudgene-token', 'wes-bearer', 'basic', 'none'] as const;
export const HEALTH_STATUSES = ['healthy', 'degraded', 'unhealthy', 'unreachable'] as const;

export type Protocol = (typeof PROTOCOLS)[number];
export type Build = (typeof BUILDS)[number];
export type HealthStatus = (typeof HEALTH_STATUSES)[number];

export const SlugSchema = z
  .string()
  .regex(/^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/, 'lowercase letters, digits and inner hyphens, at most 64 characters')
  .openapi({ example: 'michigan' });

/** Only http(s) URLs with a host, no credentials in them; trailing slashes are dropped. */
export const BaseUrlSchema = z
  .string()
  .max(2000)
  .refine((value) => {
    try {
      const url = new URL(value);
      return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '' && !url.username && !url.password;
    } catch {
      return false;
    }
  }, 'must be an absolute http:// or https:// URL without user info')
  .transform((value) => value.replace(/\/+$/, ''))
  .openapi({ type: 'string', format: 'uri', example: 'https://imputationserver.sph.umich.edu' });

export const LocationSchema = z
  .object({
    country: z.string().max(100).nullable(),
    city: z.string().max(100).nullable(),
    latitude: z.number().min(-90).max(90).nullable(),
    longitude: z.number().min(-180).max(180).nullable(),
  })
  .openapi('ServiceLocation');

export const ServiceLimitsSchema = z
  .object({
    maxFileSizeBytes: z.number().int().positive().optional(),
    minSamples: z.number().int().min(1).optional(),
    maxSamples: z.number().int().min(1).optional(),
    maxActiveJobsPerUser: z.number().int().min(1).optional(),
  })
  .strict()
  .refine((l) => l.minSamples === undefined || l.maxSamples === undefined || l.minSamples <= l.maxSamples, {
    message: 'minSamples must not exceed maxSamples',
    path: ['minSamples'],
  })
  .openapi('ServiceLimits');

export const PopulationSchema = z
  .object({
    id: z.string().min(1).max(64).openapi({ example: 'afr' }),
    name: z.string().min(1).max(200).openapi({ example: 'African' }),
    samples: z.number().int().min(0).nullable().default(null),
  })
  .openapi('Population');

export const QcThresholdsSchema = z
  .object({
    overlap: z.number().min(0).max(1).optional(),
    minSnps: z.number().int().min(0).optional(),
    sampleCallrate: z.number().min(0).max(1).optional(),
    mixedGenotypeschrX: z.number().min(0).max(1).optional(),
    strandFlips: z.number().int().min(0).optional(),
  })
  .strict()
  .openapi('QcThresholds');

export const ServiceHealthSchema = z
  .object({
    status: z.enum([...HEALTH_STATUSES, 'unknown']).openapi({ description: '`unknown` until the first probe' }),
    statusSince: z.string().nullable(),
    checkedAt: z.string().nullable(),
    latencyMs: z.number().int().nullable(),
    httpStatus: z.number().int().nullable(),
    error: z.string().nullable(),
    queueSize: z.number().int().nullable(),
    runningJobs: z.number().int().nullable(),
    consecutiveFailures: z.number().int(),
  })
  .openapi('ServiceHealth');

export const ServiceSchema = z
  .object({
    id: z.uuid(),
    slug: SlugSchema,
    name: z.string(),
    protocol: z.enum(PROTOCOLS),
    baseUrl: z.string(),
    appId: z.string().nullable().openapi({ description: 'Cloudgene app id (null for WES nodes)' }),
    description: z.string().nullable(),
    homepage: z.string().nullable(),
    location: LocationSchema,
    limits: ServiceLimitsSchema,
    supportedBuilds: z.array(z.enum(BUILDS)),
    credentialType: z.enum(SERVICE_CREDENTIAL_TYPES),
    isActive: z.boolean(),
    protocolInfo: z.record(z.string(), z.unknown()).openapi({ description: 'What the last sync learned from the server' }),
    syncedAt: z.string().nullable(),
    retiredAt: z.string().nullable(),
    health: ServiceHealthSchema,
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('ImputationService');

export const PanelSchema = z
  .object({
    id: z.uuid(),
    serviceId: z.uuid(),
    externalId: z.string().openapi({ example: 'hapmap-2', description: 'The id the server knows' }),
    externalKey: z.string().nullable().openapi({ example: 'apps@hapmap-2@2.0.0', description: 'Cloudgene app key' }),
    version: z.string().nullable(),
    displayName: z.string(),
    description: z.string().nullable(),
    build: z.enum(BUILDS),
    populations: z.array(PopulationSchema),
    samples: z.number().int().nullable(),
    variants: z.number().int().nullable(),
    qcThresholds: QcThresholdsSchema,
    retiredAt: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('ReferencePanel');

export const ServiceWithPanelsSchema = ServiceSchema.extend({ panels: z.array(PanelSchema) }).openapi('ImputationServiceWithPanels');

export const DiscoverReasonSchema = z
  .object({
    code: z.string().openapi({ example: 'panel_missing' }),
    detail: z.string().openapi({ example: 'does not offer panel topmed-r3' }),
  })
  .openapi('DiscoverReason');

export const DiscoverCandidateSchema = z
  .object({
    rank: z.number().int().min(1),
    score: z.number(),
    breakdown: z.object({ health: z.number(), queue: z.number(), latency: z.number(), limits: z.number(), distance: z.number() }),
    distanceKm: z.number().nullable(),
    service: ServiceSchema,
    panel: PanelSchema,
    reasons: z.array(DiscoverReasonSchema),
  })
  .openapi('DiscoverCandidate');

export const DiscoverExcludedSchema = z
  .object({
    serviceId: z.uuid(),
    slug: z.string(),
    name: z.string(),
    reasons: z.array(DiscoverReasonSchema).min(1),
  })
  .openapi('DiscoverExcluded');

export const DiscoverResultSchema = z
  .object({ candidates: z.array(DiscoverCandidateSchema), excluded: z.array(DiscoverExcludedSchema) })
  .openapi('DiscoverResult');

export type ImputationService = z.infer<typeof ServiceSchema>;
export type ReferencePanel = z.infer<typeof PanelSchema>;
export type ServiceHealth = z.infer<typeof ServiceHealthSchema>;
export type ServiceLimits = z.infer<typeof ServiceLimitsSchema>;
export type Population = z.infer<typeof PopulationSchema>;
export type DiscoverReason = z.infer<typeof DiscoverReasonSchema>;
export type DiscoverResult = z.infer<typeof DiscoverResultSchema>;
