/** service-registry's stored rows and the catalogue snapshot its reads, discovery and GA4GH views are computed from. */
import type { panels, serviceHealth, services } from '@db/schema/registry.ts';
import type { ImputationService, ReferencePanel } from '@shared/schemas/registry.ts';

export type ServiceRow = typeof services.$inferSelect;
export type PanelRow = typeof panels.$inferSelect;
export type HealthRow = typeof serviceHealth.$inferSelect;

/**
 * The whole catalogue as the API shows it: every service that is not retired (with its current
 * health) and every panel of those services that is not retired. Small (tens of services), so reads
 * take it from the KV cache in one round trip and filter in memory.
 */
export interface CatalogueSnapshot {
  services: ImputationService[];
  panels: ReferencePanel[];
  builtAt: string;
}
