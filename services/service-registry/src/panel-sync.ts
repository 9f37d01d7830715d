/**
 * Panel discovery ("sync"): asks a service what it offers and brings the catalogue in line.
 * Cloudgene servers list their panels in the app form (§1.4 of the protocol reference); the sync
 * adds, updates, retires and restores panels by their bare id. GA4GH WES nodes report no panels,
 * only workflow types and versions (§3.2), which go into `protocol_info`; their panels are left
 * alone. Everything a sync learns is written in one transaction, and nothing when it fails.
 */
import { z } from '@hono/zod-openapi';
import { panels, services } from '@db/schema/registry.ts';
import type { Db } from '@shared/db.ts';
import { HttpProblem } from '@shared/errors.ts';
import type { OutboundPolicy } from '@shared/outbound.ts';
import { BUILDS, PanelSchema, PROTOCOLS, type Build, type Population } from '@shared/schemas/registry.ts';
import { and, eq, inArray, isNull, ne } from 'drizzle-orm';
import { panelView } from './catalogue-views.ts';
import type { PanelRow, ServiceRow } from './domain.ts';
import { fetchAppForm, type AppFormPanel, type CloudgeneAppForm } from './sync/cloudgene-app-form.ts';
import { fetchWesServiceInfo, type WesServiceInfo } from './sync/wes-service-info.ts';

const PanelFieldChangeSchema = z.object({ from: z.unknown(), to: z.unknown() }).openapi('PanelFieldChange');

const SyncAddedPanelSchema = PanelSchema.extend({
  buildInferred: z.boolean().openapi({
    description: 'True when neither the label nor the service settled the build and it defaulted to hg38: an admin should check it.',
  }),
}).openapi('PanelSyncAdded');

const SyncUpdatedPanelSchema = z
  .object({
    panel: PanelSchema,
    changes: z.record(z.string(), PanelFieldChangeSchema).openapi({ description: 'Changed fields (displayName, externalKey, version, populations, build) with old and new values' }),
  })
  .openapi('PanelSyncUpdate');

export const SyncReportSchema = z
  .object({
    serviceId: z.uuid(),
    protocol: z.enum(PROTOCOLS),
    syncedAt: z.string(),
    protocolInfo: z.record(z.string(), z.unknown()).openapi({ description: 'What the server reported, as now stored on the service' }),
    protocolInfoChanged: z.boolean(),
    supportedBuilds: z.array(z.enum(BUILDS)),
    added: z.array(SyncAddedPanelSchema),
    updated: z.array(SyncUpdatedPanelSchema),
    retired: z.array(PanelSchema).openapi({ description: 'No longer listed by the server; kept (jobs refer to them) with retiredAt set' }),
    restored: z.array(PanelSchema).openapi({ description: 'Retired earlier and listed again (field changes, if any, are also listed in updated)' }),
    unchanged: z.number().int().min(0),
    notes: z.array(z.string()).openapi({ description: 'What an admin should know about this sync (e.g. guessed builds, WES reporting no panels)' }),
  })
  .openapi('PanelSyncReport');

export type SyncReport = z.infer<typeof SyncReportSchema>;
type PanelChanges = SyncReport['updated'][number]['changes'];

export interface PanelSyncDeps {
  db: Db;
  fetch?: typeof fetch;
  policy: OutboundPolicy;
  timeoutMs: number;
  now?: () => number;
}

const BUILD_PATTERNS: [Build, RegExp][] = [
  ['hg38', /(?<![a-z0-9])(grch38|hg38|b38)(?![0-9])/i],
  ['hg19', /(?<![a-z0-9])(grch37|hg19|b37)(?![0-9])/i],
];

/**
 * A Cloudgene panel's genome build. The app form does not carry it (its `build` list is the build of
 * the *input*, which the server lifts over), so, first match wins:
 * 1. the label names exactly one build: GRCh38/hg38/b38 → hg38, GRCh37/hg19/b37 → hg19;
 * 2. the panel is already stored: keep its build (an admin may have set it);
 * 3. another service in the catalogue offers a panel with the same id (hapmap-2 on two Cloudgene
 *    servers is one panel): its build;
 * 4. the service lists exactly one supported build: that one;
 * 5. hg38, reported as `buildInferred` so an admin checks it.
 */
export function inferPanelBuild(
  label: string,
  stored: Build | undefined,
  serviceBuilds: readonly string[],
  elsewhere?: Build,
): { build: Build; inferred: boolean } {
  const named = BUILD_PATTERNS.filter(([, pattern]) => pattern.test(label)).map(([build]) => build);
  if (named.length === 1) return { build: named[0]!, inferred: false };
  if (stored) return { build: stored, inferred: false };
  if (elsewhere) return { build: elsewhere, inferred: false };
  const only = serviceBuilds.length === 1 ? serviceBuilds[0] : undefined;
  if (only && isBuild(only)) return { build: only, inferred: false };
  return { build: 'hg38', inferred: true };
}

const isBuild = (value: string): value is Build => (BUILDS as readonly string[]).includes(value);

/**
 * Syncs one service from the server itself, with an operator's credential (Cloudgene needs one; a
 * WES node only when it protects service-info). Throws `HttpProblem`s the sync route answers with:
 * 409 `external_calls_disabled` (outbound policy), 409 `operator_credential_missing`, 502
 * `upstream_unreachable` / 504 `upstream_timeout`, 502 `operator_credential_rejected`, 502
 * `app_not_installed`, 502 `upstream_malformed`, 502 `upstream_error`. Nothing is written then.
 */
export async function syncService(deps: PanelSyncDeps, service: ServiceRow, operatorToken: string | null): Promise<SyncReport> {
  if (!deps.policy.allows(service.baseUrl)) {
    throw new HttpProblem(409, 'external_calls_disabled', `Calls to ${hostOf(service.baseUrl)} are switched off here (EXTERNAL_CALLS is off): only loopback servers can be synced.`);
  }
  const http = { fetch: deps.fetch, timeoutMs: deps.timeoutMs };
  if (service.protocol === 'cloudgene') {
    if (!operatorToken) {
      throw new HttpProblem(
        409,
        'operator_credential_missing',
        `Syncing a Cloudgene server needs an operator's API token for it: add "${service.slug}" to OPERATOR_TOKENS (a JSON object of slug → token) in service-registry's environment, or store your own Cloudgene token for "${service.slug}" with PUT /api/users/me/credentials/${service.slug}.`,
      );
    }
    const form = await fetchAppForm(http, { baseUrl: service.baseUrl, appId: service.appId, token: operatorToken });
    return applyAppForm(deps, service.id, form);
  }
  if (service.protocol === 'ga4gh-wes') {
    const info = await fetchWesServiceInfo(http, { baseUrl: service.baseUrl, token: operatorToken });
    return applyServiceInfo(deps, service.id, info);
  }
  throw new HttpProblem(409, 'protocol_not_supported', `Services speaking ${service.protocol} cannot be synced.`);
}

/** Locks the service row, so two syncs of one service run one after the other and never insert a panel twice. */
async function lockService(tx: Db, serviceId: string): Promise<ServiceRow> {
  const [row] = await tx.select().from(services).where(eq(services.id, serviceId)).for('update');
  if (!row) throw new HttpProblem(404, 'service_not_found', 'The service was removed while it was being synced.');
  return row;
}

function applyAppForm(deps: PanelSyncDeps, serviceId: string, form: CloudgeneAppForm): Promise<SyncReport> {
  const now = new Date((deps.now ?? Date.now)());
  return deps.db.transaction(async (transaction) => {
    const tx = transaction as unknown as Db;
    const current = await lockService(tx, serviceId);
    const stored = await tx.select().from(panels).where(eq(panels.serviceId, serviceId));
    const byExternalId = new Map(stored.map((row) => [row.externalId, row]));
    const listedIds = new Set(form.panels.map((p) => p.externalId));
    const sameIdElsewhere = listedIds.size
      ? await tx
          .select({ externalId: panels.externalId, build: panels.build })
          .from(panels)
          .where(and(inArray(panels.externalId, [...listedIds]), ne(panels.serviceId, serviceId), isNull(panels.retiredAt)))
      : [];
    const buildElsewhere = new Map(sameIdElsewhere.map((row) => [row.externalId, row.build as Build]));
    const report = emptyReport(current, now);

    for (const listed of form.panels) {
      const existing = byExternalId.get(listed.externalId);
      const { build, inferred } = inferPanelBuild(
        listed.displayName,
        existing?.build as Build | undefined,
        current.supportedBuilds,
        buildElsewhere.get(listed.externalId),
      );
      if (!existing) {
        const [row] = await tx
          .insert(panels)
          .values({
            id: Bun.randomUUIDv7(),
            serviceId,
            externalId: listed.externalId,
            externalKey: listed.externalKey,
            version: listed.version,
            displayName: listed.displayName,
            build,
            populations: listed.populations,
            createdAt: now,
            updatedAt: now,
          })
          .returning();
        report.added.push({ ...panelView(row!), buildInferred: inferred });
        if (inferred) report.notes.push(`Panel ${listed.externalId}: the label names no genome build; hg38 was assumed. Check it.`);
        continue;
      }
      const populations = mergePopulations(existing.populations as Population[], listed);
      const changes = panelChanges(existing, listed, build, populations);
      const restoring = existing.retiredAt !== null;
      if (Object.keys(changes).length === 0 && !restoring) {
        report.unchanged++;
        continue;
      }
      const [row] = await tx
        .update(panels)
        .set({ externalKey: listed.externalKey, version: listed.version, displayName: listed.displayName, build, populations, retiredAt: null, updatedAt: now })
        .where(eq(panels.id, existing.id))
        .returning();
      const view = panelView(row!);
      if (restoring) report.restored.push(view);
      if (Object.keys(changes).length > 0) report.updated.push({ panel: view, changes });
    }

    const gone = stored.filter((row) => row.retiredAt === null && !listedIds.has(row.externalId)).map((row) => row.id);
    if (gone.length > 0) {
      // Retired, never deleted: jobs and their history refer to these rows.
      const retired = await tx.update(panels).set({ retiredAt: now, updatedAt: now }).where(inArray(panels.id, gone)).returning();
      report.retired = retired.sort((a, b) => a.externalId.localeCompare(b.externalId)).map(panelView);
    }

    const protocolInfo = {
      appId: form.appId,
      appName: form.appName,
      appVersion: form.appVersion,
      builds: form.builds,
      phasing: form.phasing,
      modes: form.modes,
      r2Filters: form.r2Filters,
    };
    // The app's build list is what the server accepts as input; builds the catalogue does not model are left out.
    const knownBuilds = form.builds.filter(isBuild);
    const supportedBuilds = knownBuilds.length > 0 ? knownBuilds : (current.supportedBuilds as Build[]);
    await tx.update(services).set({ protocolInfo, supportedBuilds, syncedAt: now, updatedAt: now }).where(eq(services.id, serviceId));
    return { ...report, protocolInfo, protocolInfoChanged: !sameJson(current.protocolInfo, protocolInfo), supportedBuilds };
  });
}

function applyServiceInfo(deps: PanelSyncDeps, serviceId: string, info: WesServiceInfo): Promise<SyncReport> {
  const now = new Date((deps.now ?? Date.now)());
  return deps.db.transaction(async (transaction) => {
    const tx = transaction as unknown as Db;
    const current = await lockService(tx, serviceId);
    const stored = await tx.select({ retiredAt: panels.retiredAt }).from(panels).where(eq(panels.serviceId, serviceId));
    const protocolInfo = { ...info } as Record<string, unknown>;
    await tx.update(services).set({ protocolInfo, syncedAt: now, updatedAt: now }).where(eq(services.id, serviceId));
    const report = emptyReport(current, now);
    report.unchanged = stored.filter((row) => row.retiredAt === null).length;
    report.notes.push('GA4GH WES does not report reference panels: the panels of this service were left as they are (manage them through the admin API).');
    return { ...report, protocolInfo, protocolInfoChanged: !sameJson(current.protocolInfo, protocolInfo) };
  });
}

function emptyReport(service: ServiceRow, now: Date): SyncReport {
  return {
    serviceId: service.id,
    protocol: service.protocol as SyncReport['protocol'],
    syncedAt: now.toISOString(),
    protocolInfo: {},
    protocolInfoChanged: false,
    supportedBuilds: service.supportedBuilds as Build[],
    added: [],
    updated: [],
    retired: [],
    restored: [],
    unchanged: 0,
    notes: [],
  };
}

/** The server's populations, in its order, keeping a sample count the catalogue knows for a population whose id stays. */
function mergePopulations(stored: Population[], listed: AppFormPanel): Population[] {
  const known = new Map(stored.map((p) => [p.id, p.samples ?? null]));
  return listed.populations.map((p) => ({ id: p.id, name: p.name, samples: known.get(p.id) ?? null }));
}

function panelChanges(row: PanelRow, listed: AppFormPanel, build: Build, populations: Population[]): PanelChanges {
  const changes: PanelChanges = {};
  if (row.displayName !== listed.displayName) changes.displayName = { from: row.displayName, to: listed.displayName };
  if (row.externalKey !== listed.externalKey) changes.externalKey = { from: row.externalKey, to: listed.externalKey };
  if (row.version !== listed.version) changes.version = { from: row.version, to: listed.version };
  if (row.build !== build) changes.build = { from: row.build, to: build };
  const before = row.populations as Population[];
  const shape = (list: Population[]) => JSON.stringify(list.map((p) => [p.id, p.name]));
  if (shape(before) !== shape(populations)) changes.populations = { from: before, to: populations };
  return changes;
}

/** Deep equality that ignores key order (jsonb stores object keys in its own order). */
function sameJson(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}
