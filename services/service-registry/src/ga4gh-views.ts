/**
 * The catalogue and the platform itself as GA4GH Service Registry 1.0 entries. No Cloudgene server
 * describes itself in GA4GH terms, so the registry synthesises an entry for every catalogued server
 * (and for each of the platform's own services) from what it already knows.
 */
import { z } from '@hono/zod-openapi';
import type { ImputationService } from '@shared/schemas/registry.ts';
import { ServiceInfoSchema, type ServiceInfo } from '@shared/schemas/service-info.ts';

export const ExternalServiceSchema = ServiceInfoSchema.extend({
  url: z.string().openapi({
    format: 'uri',
    description: 'Base URL; appending a spec path (`/service-info`) reaches the service',
    example: 'https://imputationserver.sph.umich.edu',
  }),
}).openapi('ExternalService');

export type ExternalService = z.infer<typeof ExternalServiceSchema>;
export type ServiceType = ServiceInfo['type'];
export interface Organization {
  name: string;
  url: string;
}
export interface PlatformService {
  name: string;
  url: string;
  version: string;
}

const ID_PREFIX = 'org.federated-imputation';

/** A catalogued imputation server as a registry entry, typed by the protocol it speaks. */
export function catalogueEntry(service: ImputationService, org: Organization): ExternalService {
  const info = service.protocolInfo;
  const appVersion = stringField(info, 'appVersion');
  const wesVersion = highestVersion(stringList(info, 'wesVersions'));
  const type: ServiceType =
    service.protocol === 'ga4gh-wes'
      ? { group: 'org.ga4gh', artifact: 'wes', version: wesVersion ?? '1.0.0' }
      : { group: ID_PREFIX, artifact: 'cloudgene-imputation', version: appVersion ?? '2' };
  const entry: ExternalService = {
    id: `${ID_PREFIX}.catalogue.${service.slug}`,
    name: service.name,
    type,
    organization: { name: org.name, url: org.url },
    version: appVersion ?? wesVersion ?? 'unknown',
    url: service.baseUrl,
    createdAt: service.createdAt,
    updatedAt: service.updatedAt,
    environment: 'prod',
  };
  if (service.description) entry.description = service.description;
  if (service.homepage) entry.documentationUrl = service.homepage;
  return entry;
}

/** The platform's own services; each answers `{url}/service-info` itself. */
export function platformEntries(services: PlatformService[], org: Organization): ExternalService[] {
  return services.map((service) => ({
    id: `${ID_PREFIX}.${service.name}`,
    name: `Federated Imputation Platform: ${service.name}`,
    type: { group: ID_PREFIX, artifact: service.name, version: service.version },
    organization: { name: org.name, url: org.url },
    version: service.version,
    url: service.url.replace(/\/+$/, ''),
  }));
}

/** What the registry says about itself at `/ga4gh/registry/v1/service-info`. */
export function registryServiceInfo(org: Organization, version: string): ServiceInfo {
  return {
    id: `${ID_PREFIX}.service-registry.ga4gh-registry`,
    name: 'Federated Imputation Platform: GA4GH service registry',
    type: { group: 'org.ga4gh', artifact: 'service-registry', version: '1.0.0' },
    description: 'The imputation servers in the catalogue and the platform’s own services, as GA4GH Service Registry entries.',
    organization: { name: org.name, url: org.url },
    version,
  };
}

/** Distinct service types, in a stable order (group, artifact, version). */
export function serviceTypes(entries: { type: ServiceType }[]): ServiceType[] {
  const seen = new Map<string, ServiceType>();
  for (const { type } of entries) {
    const key = `${type.group}\u0000${type.artifact}\u0000${type.version}`;
    if (!seen.has(key)) seen.set(key, { group: type.group, artifact: type.artifact, version: type.version });
  }
  return [...seen.values()].sort(
    (a, b) => compare(a.group, b.group) || compare(a.artifact, b.artifact) || compareVersions(a.version, b.version),
  );
}

/** The highest of a list of versions (`1.0.0`, `1.1.0`), compared numerically part by part. */
export function highestVersion(versions: string[]): string | undefined {
  return versions.reduce<string | undefined>((best, v) => (best === undefined || compareVersions(v, best) > 0 ? v : best), undefined);
}

function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/);
  const pb = b.split(/[.-]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '0';
    const y = pb[i] ?? '0';
    const nx = /^\d+$/.test(x) ? Number(x) : Number.NaN;
    const ny = /^\d+$/.test(y) ? Number(y) : Number.NaN;
    const diff = !Number.isNaN(nx) && !Number.isNaN(ny) ? nx - ny : compare(x, y);
    if (diff !== 0) return diff;
  }
  return 0;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** protocolInfo is whatever the last sync stored: read it defensively. */
function stringField(info: Record<string, unknown>, key: string): string | undefined {
  const value = info[key];
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

function stringList(info: Record<string, unknown>, key: string): string[] {
  const value = info[key];
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string' && v.trim() !== '').map((v) => v.trim()) : [];
}
