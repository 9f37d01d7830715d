/** Stored rows → the catalogue's API shapes (shared/schemas/registry.ts). */
import type { Build, ImputationService, Population, ReferencePanel, ServiceHealth, ServiceLimits } from '@shared/schemas/registry.ts';
import type { HealthRow, PanelRow, ServiceRow } from './domain.ts';

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function healthView(row: HealthRow | null | undefined): ServiceHealth {
  if (!row) {
    return { status: 'unknown', statusSince: null, checkedAt: null, latencyMs: null, httpStatus: null, error: null, queueSize: null, runningJobs: null, consecutiveFailures: 0 };
  }
  return {
    status: row.status as ServiceHealth['status'],
    statusSince: row.statusSince.toISOString(),
    checkedAt: row.checkedAt.toISOString(),
    latencyMs: row.latencyMs,
    httpStatus: row.httpStatus,
    error: row.error,
    queueSize: row.queueSize,
    runningJobs: row.runningJobs,
    consecutiveFailures: row.consecutiveFailures,
  };
}

export function serviceView(row: ServiceRow, health: HealthRow | null | undefined): ImputationService {
  return {
    id: row.id,
    slug: row.slug,
    name: row.name,
    protocol: row.protocol as ImputationService['protocol'],
    baseUrl: row.baseUrl,
    appId: row.protocol === 'cloudgene' ? row.appId : null,
    description: row.description,
    homepage: row.homepage,
    location: { country: row.locationCountry, city: row.locationCity, latitude: row.latitude, longitude: row.longitude },
    limits: row.limits as ServiceLimits,
    supportedBuilds: row.supportedBuilds as Build[],
    credentialType: row.credentialType as ImputationService['credentialType'],
    isActive: row.isActive,
    protocolInfo: row.protocolInfo as Record<string, unknown>,
    syncedAt: iso(row.syncedAt),
    retiredAt: iso(row.retiredAt),
    health: healthView(health),
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

export function panelView(row: PanelRow): ReferencePanel {
  return {
    id: row.id,
    serviceId: row.serviceId,
    externalId: row.externalId,
    externalKey: row.externalKey,
    version: row.version,
    displayName: row.displayName,
    description: row.description,
    build: row.build as Build,
    populations: row.populations as Population[],
    samples: row.samples,
    variants: row.variants,
    qcThresholds: row.qcThresholds as ReferencePanel['qcThresholds'],
    retiredAt: iso(row.retiredAt),
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}
