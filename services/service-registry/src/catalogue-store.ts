/**
 * The catalogue in Postgres, and the snapshot every read is served from. The snapshot (all current
 * services with health, all current panels) is cached in the KV store and dropped on every write and
 * on every health status change, so replicas sharing Redis never serve a stale catalogue for longer
 * than a probe's latency update (the short TTL).
 */
import { panels, serviceHealth, services } from '@db/schema/registry.ts';
import type { Db } from '@shared/db.ts';
import { isUniqueViolation } from '@shared/db.ts';
import { HttpProblem } from '@shared/errors.ts';
import type { Kv } from '@shared/kv.ts';
import type { ImputationService, ReferencePanel } from '@shared/schemas/registry.ts';
import { and, asc, eq, isNull, or } from 'drizzle-orm';
import type { PanelCreate, PanelPatch, ServiceCreate, ServicePatch } from './catalogue-inputs.ts';
import { panelView, serviceView } from './catalogue-views.ts';
import type { CatalogueSnapshot, PanelRow, ServiceRow } from './domain.ts';
import { isUuid } from '@shared/ids.ts';


const serviceNotFound = (ref: string) => new HttpProblem(404, 'service_not_found', `No service ${JSON.stringify(ref)} in the catalogue.`);
const panelNotFound = () => new HttpProblem(404, 'panel_not_found', 'No such panel for this service.');

export interface Catalogue {
  /** Current services (with health) and panels, from the cache when it holds them. */
  snapshot(): Promise<CatalogueSnapshot>;
  /** Drops the cached snapshot; the next read rebuilds it. */
  invalidate(): Promise<void>;
  /** A service row by id or slug, retired ones included; 404 when there is none. */
  serviceRow(idOrSlug: string): Promise<ServiceRow>;
  /** A service with its panels by id or slug; retired services only by id. */
  service(idOrSlug: string, options?: { includeRetiredPanels?: boolean }): Promise<ImputationService & { panels: ReferencePanel[] }>;
  createService(input: ServiceCreate): Promise<ImputationService & { panels: ReferencePanel[] }>;
  updateService(id: string, patch: ServicePatch): Promise<ImputationService>;
  /** Retires a service and its panels: hidden from the catalogue, still resolvable by id. */
  retireService(id: string): Promise<void>;
  panels(serviceId: string, options?: { includeRetired?: boolean }): Promise<ReferencePanel[]>;
  createPanel(serviceId: string, input: PanelCreate): Promise<ReferencePanel>;
  updatePanel(serviceId: string, panelId: string, patch: PanelPatch): Promise<ReferencePanel>;
  retirePanel(serviceId: string, panelId: string): Promise<void>;
}

function panelValues(serviceId: string, protocol: string, input: PanelCreate, at: Date): typeof panels.$inferInsert {
  const externalKey = input.externalKey ?? (protocol === 'cloudgene' && input.version ? `apps@${input.externalId}@${input.version}` : null);
  return {
    id: Bun.randomUUIDv7(),
    serviceId,
    externalId: input.externalId,
    externalKey,
    version: input.version ?? (externalKey ? externalKey.split('@')[2]! : null),
    displayName: input.displayName,
    description: input.description ?? null,
    build: input.build,
    populations: input.populations,
    samples: input.samples ?? null,
    variants: input.variants ?? null,
    qcThresholds: input.qcThresholds,
    createdAt: at,
    updatedAt: at,
  };
}


/** Inserts a service and its panels with `db` (a transaction when the caller needs all or nothing); resolves to the new id. */
export async function insertService(db: Db, input: ServiceCreate, at: Date): Promise<string> {
  const id = Bun.randomUUIDv7();
  const cloudgene = input.protocol === 'cloudgene';
  await db.insert(services).values({
    id,
    slug: input.slug,
    name: input.name,
    protocol: input.protocol,
    baseUrl: input.baseUrl,
    // The column predates WES nodes; they store an empty app id and the API shows null.
    appId: cloudgene ? (input.appId ?? 'imputationserver2') : '',
    description: input.description ?? null,
    homepage: input.homepage ?? null,
    locationCountry: input.location?.country ?? null,
    locationCity: input.location?.city ?? null,
    latitude: input.location?.latitude ?? null,
    longitude: input.location?.longitude ?? null,
    limits: input.limits,
    supportedBuilds: input.supportedBuilds,
    credentialType: input.credentialType ?? (cloudgene ? 'cloudgene-token' : 'wes-bearer'),
    isActive: input.isActive,
    createdAt: at,
    updatedAt: at,
  });
  if (input.panels.length > 0) await db.insert(panels).values(input.panels.map((p) => panelValues(id, input.protocol, p, at)));
  return id;
}

export function createCatalogue(deps: { db: Db; kv: Kv; cacheTtlMs: number; cacheKey?: string; now?: () => number }): Catalogue {
  const { db, kv } = deps;
  const CACHE_KEY = deps.cacheKey ?? 'registry:catalogue:v1';
  const now = () => new Date((deps.now ?? Date.now)());

  async function build(): Promise<CatalogueSnapshot> {
    const [serviceRows, panelRows] = await Promise.all([
      db.select().from(services).leftJoin(serviceHealth, eq(serviceHealth.serviceId, services.id)).where(isNull(services.retiredAt)).orderBy(asc(services.name), asc(services.id)),
      db.select().from(panels).where(isNull(panels.retiredAt)).orderBy(asc(panels.displayName), asc(panels.id)),
    ]);
    const live = new Set(serviceRows.map((r) => r.services.id));
    return {
      services: serviceRows.map((r) => serviceView(r.services, r.service_health)),
      panels: panelRows.filter((p) => live.has(p.serviceId)).map(panelView),
      builtAt: now().toISOString(),
    };
  }

  async function invalidate() {
    await kv.del(CACHE_KEY);
  }

  async function findRow(ref: string): Promise<ServiceRow | undefined> {
    const [row] = await db
      .select()
      .from(services)
      .where(isUuid(ref) ? or(eq(services.id, ref.toLowerCase()), eq(services.slug, ref)) : eq(services.slug, ref))
      .limit(1);
    return row;
  }

  async function currentRow(id: string): Promise<ServiceRow> {
    const row = await findRow(id);
    if (!row || row.retiredAt) throw serviceNotFound(id);
    return row;
  }

  async function panelRows(serviceId: string, includeRetired: boolean): Promise<PanelRow[]> {
    return db
      .select()
      .from(panels)
      .where(includeRetired ? eq(panels.serviceId, serviceId) : and(eq(panels.serviceId, serviceId), isNull(panels.retiredAt)))
      .orderBy(asc(panels.displayName), asc(panels.id));
  }

  async function healthRow(serviceId: string) {
    const [row] = await db.select().from(serviceHealth).where(eq(serviceHealth.serviceId, serviceId));
    return row;
  }

  const panelExists = (externalId: string) => new HttpProblem(409, 'panel_exists', `This service already has a panel ${JSON.stringify(externalId)}.`);

  return {
    async snapshot() {
      const cached = await kv.get(CACHE_KEY);
      if (cached) return JSON.parse(cached) as CatalogueSnapshot;
      const snapshot = await build();
      await kv.set(CACHE_KEY, JSON.stringify(snapshot), { ttlMs: deps.cacheTtlMs });
      return snapshot;
    },

    invalidate,

    async serviceRow(ref) {
      const row = await findRow(ref);
      if (!row) throw serviceNotFound(ref);
      return row;
    },

    async service(ref, options = {}) {
      const row = await findRow(ref);
      // A retired service answers only to its id: slugs are for browsing the current catalogue.
      if (!row || (row.retiredAt && row.id !== ref.toLowerCase())) throw serviceNotFound(ref);
      const [health, rows] = await Promise.all([healthRow(row.id), panelRows(row.id, options.includeRetiredPanels ?? false)]);
      return { ...serviceView(row, health), panels: rows.map(panelView) };
    },

    async createService(input) {
      let id: string;
      try {
        id = await db.transaction((tx) => insertService(tx, input, now()));
      } catch (err) {
        if (isUniqueViolation(err)) throw new HttpProblem(409, 'slug_taken', `A service with slug ${JSON.stringify(input.slug)} already exists.`);
        throw err;
      }
      await invalidate();
      return this.service(id);
    },

    async updateService(id, patch) {
      const row = await currentRow(id);
      if (patch.appId !== undefined && row.protocol !== 'cloudgene') {
        throw new HttpProblem(422, 'validation_failed', 'appId is only for Cloudgene servers.', { errors: [{ path: 'appId', message: 'appId is only for Cloudgene servers' }] });
      }
      const changes: Partial<typeof services.$inferInsert> = { updatedAt: now() };
      if (patch.name !== undefined) changes.name = patch.name;
      if (patch.baseUrl !== undefined) changes.baseUrl = patch.baseUrl;
      if (patch.appId !== undefined) changes.appId = patch.appId;
      if (patch.description !== undefined) changes.description = patch.description;
      if (patch.homepage !== undefined) changes.homepage = patch.homepage;
      if (patch.limits !== undefined) changes.limits = patch.limits;
      if (patch.supportedBuilds !== undefined) changes.supportedBuilds = patch.supportedBuilds;
      if (patch.credentialType !== undefined) changes.credentialType = patch.credentialType;
      if (patch.isActive !== undefined) changes.isActive = patch.isActive;
      if (patch.location) {
        const l = patch.location;
        if (l.country !== undefined) changes.locationCountry = l.country;
        if (l.city !== undefined) changes.locationCity = l.city;
        if (l.latitude !== undefined) changes.latitude = l.latitude;
        if (l.longitude !== undefined) changes.longitude = l.longitude;
      }
      const [updated] = await db.update(services).set(changes).where(and(eq(services.id, row.id), isNull(services.retiredAt))).returning();
      if (!updated) throw serviceNotFound(id);
      await invalidate();
      return serviceView(updated, await healthRow(row.id));
    },

    async retireService(id) {
      const row = await currentRow(id);
      const at = now();
      await db.transaction(async (tx) => {
        await tx.update(services).set({ retiredAt: at, isActive: false, updatedAt: at }).where(eq(services.id, row.id));
        await tx.update(panels).set({ retiredAt: at, updatedAt: at }).where(and(eq(panels.serviceId, row.id), isNull(panels.retiredAt)));
      });
      await invalidate();
    },

    async panels(serviceId, options = {}) {
      const row = await findRow(serviceId);
      if (!row || (row.retiredAt && row.id !== serviceId.toLowerCase())) throw serviceNotFound(serviceId);
      return (await panelRows(row.id, options.includeRetired ?? false)).map(panelView);
    },

    async createPanel(serviceId, input) {
      const row = await currentRow(serviceId);
      try {
        const [created] = await db.insert(panels).values(panelValues(row.id, row.protocol, input, now())).returning();
        await invalidate();
        return panelView(created!);
      } catch (err) {
        if (isUniqueViolation(err)) throw panelExists(input.externalId);
        throw err;
      }
    },

    async updatePanel(serviceId, panelId, patch) {
      const row = await currentRow(serviceId);
      if (!isUuid(panelId)) throw panelNotFound();
      const [existing] = await db.select().from(panels).where(and(eq(panels.id, panelId), eq(panels.serviceId, row.id)));
      if (!existing) throw panelNotFound();
      const version = patch.version !== undefined ? patch.version : existing.version;
      const externalKey = patch.externalKey !== undefined ? patch.externalKey : existing.externalKey;
      if (externalKey) {
        const [, id, keyVersion] = externalKey.split('@');
        if (id !== existing.externalId || (version != null && version !== keyVersion)) {
          throw new HttpProblem(422, 'validation_failed', 'externalKey must name the same panel id and version.', {
            errors: [{ path: 'externalKey', message: 'externalKey must name the same panel id (and version) as externalId/version' }],
          });
        }
      }
      const changes: Partial<typeof panels.$inferInsert> = { updatedAt: now(), version, externalKey };
      if (patch.displayName !== undefined) changes.displayName = patch.displayName;
      if (patch.description !== undefined) changes.description = patch.description;
      if (patch.build !== undefined) changes.build = patch.build;
      if (patch.populations !== undefined) changes.populations = patch.populations;
      if (patch.samples !== undefined) changes.samples = patch.samples;
      if (patch.variants !== undefined) changes.variants = patch.variants;
      if (patch.qcThresholds !== undefined) changes.qcThresholds = patch.qcThresholds;
      if (patch.retired === false) changes.retiredAt = null;
      const [updated] = await db.update(panels).set(changes).where(eq(panels.id, existing.id)).returning();
      await invalidate();
      return panelView(updated!);
    },

    async retirePanel(serviceId, panelId) {
      const row = await currentRow(serviceId);
      if (!isUuid(panelId)) throw panelNotFound();
      const at = now();
      const [existing] = await db.select({ retiredAt: panels.retiredAt }).from(panels).where(and(eq(panels.id, panelId), eq(panels.serviceId, row.id)));
      if (!existing) throw panelNotFound();
      if (!existing.retiredAt) await db.update(panels).set({ retiredAt: at, updatedAt: at }).where(eq(panels.id, panelId));
      await invalidate();
    },
  };
}
