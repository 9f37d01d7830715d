/**
 * Capability-aware discovery: which (service, panel) pairs can take this job, which services cannot
 * and why, and how the usable ones rank. Pure and deterministic over a catalogue snapshot, so the
 * route, job-processor's `"auto"` targets and the tests all see the same answer for the same input.
 */
import { z } from '@hono/zod-openapi';
import {
  BUILDS,
  type DiscoverReason,
  type DiscoverResult,
  type ImputationService,
  type ReferencePanel,
} from '@shared/schemas/registry.ts';
import type { CatalogueSnapshot } from './domain.ts';

const MAX_FILES = 100;
const EARTH_RADIUS_KM = 6371.0088;

/**
 * A decimal number written in a query string. Not `z.coerce.number()`: that turns an empty
 * `?latitude=` into 0, which is a real place (the Gulf of Guinea), not "no location".
 */
const decimalParam = (min: number, max: number, example: number) =>
  z
    .string()
    .trim()
    .regex(/^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$/, 'must be a decimal number')
    .transform(Number)
    .pipe(z.number().min(min).max(max))
    .openapi({ type: 'number', minimum: min, maximum: max, example });

const integerParam = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

export const DiscoverQuerySchema = z
  .object({
    panel: z
      .string()
      .trim()
      .min(1)
      .max(200)
      .optional()
      .openapi({ description: 'A panel id (`hapmap-2`) or a Cloudgene key (`apps@hapmap-2@2.0.0`)', example: 'hapmap-2' }),
    build: z.enum(BUILDS).optional().openapi({ description: 'Genome build of the input files' }),
    population: z
      .string()
      .trim()
      .min(1)
      .max(64)
      .optional()
      .openapi({ description: 'Population for the allele-frequency check; `off` skips the check', example: 'eur' }),
    samples: integerParam(1, 100_000_000).optional().openapi({ type: 'integer', minimum: 1, description: 'Samples in the cohort', example: 500 }),
    files: z
      .string()
      .max(MAX_FILES * 21)
      .superRefine((value, ctx) => {
        const parts = value.split(',').map((part) => part.trim());
        if (parts.length > MAX_FILES) ctx.addIssue({ code: 'custom', message: `at most ${MAX_FILES} file sizes` });
        else if (parts.some((part) => !/^\d{1,16}$/.test(part) || Number(part) < 1 || !Number.isSafeInteger(Number(part)))) {
          ctx.addIssue({ code: 'custom', message: 'must be comma-separated file sizes in bytes (positive integers)' });
        }
      })
      .transform((value) => value.split(',').map((part) => Number(part.trim())))
      .optional()
      .openapi({ type: 'string', description: 'Comma-separated byte sizes of the input files', example: '1048576,2097152' }),
    latitude: decimalParam(-90, 90, 52.37).optional().openapi({ description: "Caller's latitude (with longitude)" }),
    longitude: decimalParam(-180, 180, 4.9).optional().openapi({ description: "Caller's longitude (with latitude)" }),
    limit: integerParam(1, 50).optional().default(10).openapi({ type: 'integer', minimum: 1, maximum: 50, default: 10, description: 'Most candidates to return', example: 10 }),
  })
  .refine((q) => (q.latitude === undefined) === (q.longitude === undefined), {
    message: 'latitude and longitude go together: give both or neither',
    path: ['latitude'],
  });

export type DiscoverQuery = z.output<typeof DiscoverQuerySchema>;

type Candidate = DiscoverResult['candidates'][number];
type Excluded = DiscoverResult['excluded'][number];
type Breakdown = Candidate['breakdown'];

const reason = (code: string, detail: string): DiscoverReason => ({ code, detail });
const round2 = (n: number) => Math.round(n * 100) / 100;
const plural = (n: number, one: string, many = `${one}s`) => `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;

/** Ranks every usable (service, panel) pair for the query and explains every service left out. */
export function discover(snapshot: CatalogueSnapshot, query: DiscoverQuery): DiscoverResult {
  const panelsByService = new Map<string, ReferencePanel[]>();
  for (const panel of snapshot.panels) {
    if (panel.retiredAt !== null) continue;
    const list = panelsByService.get(panel.serviceId) ?? [];
    list.push(panel);
    panelsByService.set(panel.serviceId, list);
  }
  const wanted = query.panel === undefined ? undefined : panelMatcher(query.panel);
  const population = query.population && query.population.toLowerCase() !== 'off' ? query.population : undefined;
  const caller = query.latitude !== undefined && query.longitude !== undefined ? { latitude: query.latitude, longitude: query.longitude } : undefined;

  const candidates: Omit<Candidate, 'rank'>[] = [];
  const excluded: Excluded[] = [];

  for (const service of snapshot.services) {
    if (service.retiredAt !== null) continue;
    const reasons: DiscoverReason[] = [];
    const health = service.health;
    const limits = service.limits;

    if (!service.isActive) reasons.push(reason('inactive', `${service.name} is switched off in the catalogue`));
    if (health.status === 'unhealthy' || health.status === 'unreachable') {
      const why = health.error ? `: ${health.error}` : health.httpStatus !== null ? `: HTTP ${health.httpStatus}` : '';
      reasons.push(reason('unhealthy', `last health check found it ${health.status}${why}`));
    }

    const offered = panelsByService.get(service.id) ?? [];
    const matching = wanted ? offered.filter(wanted) : offered;
    if (matching.length === 0) {
      reasons.push(
        reason('panel_missing', query.panel !== undefined ? `does not offer panel ${query.panel}` : 'offers no reference panels'),
      );
    }

    if (query.build !== undefined && !service.supportedBuilds.includes(query.build)) {
      const accepted = service.supportedBuilds.length > 0 ? service.supportedBuilds.join(', ') : 'none listed';
      reasons.push(reason('build_unsupported', `does not accept ${query.build} input (accepts ${accepted})`));
    }

    const usable = population === undefined ? matching : matching.filter((panel) => offersPopulation(panel, population));
    if (population !== undefined && matching.length > 0 && usable.length === 0) {
      const available = [...new Set(matching.flatMap((panel) => panel.populations.map((p) => p.id)))].sort();
      const names = matching.map((panel) => panel.externalId).filter((id, i, all) => all.indexOf(id) === i).join(', ');
      reasons.push(
        reason(
          'population_missing',
          `panel ${names} has no population ${population} (available: ${available.length > 0 ? available.join(', ') : 'none listed'})`,
        ),
      );
    }

    if (query.samples !== undefined) {
      if (limits.minSamples !== undefined && query.samples < limits.minSamples) {
        reasons.push(reason('too_few_samples', `needs at least ${plural(limits.minSamples, 'sample')}; the cohort has ${query.samples}`));
      }
      if (limits.maxSamples !== undefined && query.samples > limits.maxSamples) {
        reasons.push(reason('too_many_samples', `takes at most ${plural(limits.maxSamples, 'sample')}; the cohort has ${query.samples}`));
      }
    }

    if (query.files !== undefined && limits.maxFileSizeBytes !== undefined) {
      const max = limits.maxFileSizeBytes;
      const over = query.files.filter((size) => size > max);
      if (over.length > 0) {
        reasons.push(
          reason('file_too_large', `${plural(over.length, 'file')} over its limit of ${plural(max, 'byte')} per file (largest ${plural(Math.max(...over), 'byte')})`),
        );
      }
    }

    if (reasons.length > 0) {
      excluded.push({ serviceId: service.id, slug: service.slug, name: service.name, reasons });
      continue;
    }

    const shared = serviceScore(service, query, caller);
    for (const panel of usable) {
      const panelReasons: DiscoverReason[] = [
        reason('panel_offered', `offers ${panel.displayName} (${panel.externalId}${panel.version ? ` ${panel.version}` : ''}, ${panel.build})`),
      ];
      if (query.build !== undefined) {
        const lift = query.build === panel.build ? '' : `; the server lifts it over to the panel's ${panel.build}`;
        panelReasons.push(reason('build_supported', `accepts ${query.build} input${lift}`));
      }
      if (population !== undefined) panelReasons.push(reason('population_offered', `panel has population ${population}`));
      candidates.push({
        score: shared.score,
        breakdown: shared.breakdown,
        distanceKm: shared.distanceKm,
        service,
        panel,
        reasons: [...panelReasons, ...shared.reasons],
      });
    }
  }

  candidates.sort(
    (a, b) =>
      b.score - a.score ||
      compare(a.service.name, b.service.name) ||
      compare(a.service.slug, b.service.slug) ||
      compare(a.panel.externalId, b.panel.externalId) ||
      compare(a.panel.version ?? '', b.panel.version ?? '') ||
      compare(a.panel.id, b.panel.id),
  );
  excluded.sort((a, b) => compare(a.name, b.name) || compare(a.slug, b.slug));

  return {
    candidates: candidates.slice(0, query.limit).map((candidate, index) => ({ rank: index + 1, ...candidate })),
    excluded,
  };
}

/** Score, breakdown and explanations that depend only on the service, shared by all its panels. */
function serviceScore(
  service: ImputationService,
  query: DiscoverQuery,
  caller: { latitude: number; longitude: number } | undefined,
): { score: number; breakdown: Breakdown; distanceKm: number | null; reasons: DiscoverReason[] } {
  const reasons: DiscoverReason[] = [];
  const { status, latencyMs, queueSize } = service.health;

  const health = status === 'healthy' ? 40 : status === 'degraded' ? 15 : 10;
  const latencyText = latencyMs !== null ? `, answered in ${latencyMs} ms` : '';
  if (status === 'healthy') reasons.push(reason('healthy', `last health check passed${latencyText}`));
  else if (status === 'degraded') reasons.push(reason('degraded', `degraded at the last health check${latencyText}; ranked lower`));
  else reasons.push(reason('health_unknown', 'not health-checked yet'));

  const queue = queueSize === null ? 12.5 : 25 / (1 + Math.max(0, queueSize) / 10);
  reasons.push(reason('queue', queueSize === null ? 'queue length unknown' : `${plural(queueSize, 'job')} queued`));

  const latency = latencyMs === null ? 7.5 : 15 * Math.exp(-Math.max(0, latencyMs) / 1000);

  const fit = limitsFit(query.samples, service.limits.minSamples, service.limits.maxSamples);
  reasons.push(
    reason(
      'within_limits',
      query.samples === undefined
        ? 'no sample count given'
        : `${plural(query.samples, 'sample')} within ${service.limits.minSamples ?? 1}–${service.limits.maxSamples ?? 'unlimited'}`,
    ),
  );
  if (query.files !== undefined) {
    const max = service.limits.maxFileSizeBytes;
    reasons.push(reason('files_within_limits', max === undefined ? 'no file size limit' : `every file within ${plural(max, 'byte')}`));
  }

  let distanceKm: number | null = null;
  let distance = 0;
  const { latitude, longitude } = service.location;
  // 0 is a real coordinate (equator, Greenwich meridian): only null means "not known".
  if (caller && latitude !== null && longitude !== null) {
    const km = haversineKm(caller.latitude, caller.longitude, latitude, longitude);
    distanceKm = Math.round(km * 10) / 10;
    distance = 10 * Math.exp(-km / 5000);
    reasons.push(reason('distance', `about ${plural(Math.round(km), 'km', 'km')} away`));
  } else if (caller) {
    reasons.push(reason('distance_unknown', 'the service has no location in the catalogue'));
  }

  const breakdown: Breakdown = {
    health: round2(health),
    queue: round2(queue),
    latency: round2(latency),
    limits: round2(fit),
    distance: round2(distance),
  };
  const score = round2(health + queue + latency + fit + distance);
  return { score, breakdown, distanceKm, reasons };
}

/**
 * 10 points when the cohort sits comfortably inside the service's sample range, down to 5 right at a
 * bound: a cohort at the edge fails for small reasons (a dropped sample in QC) and deserves a nudge
 * towards a server with room. "Comfortably" = a factor of two from each bound.
 */
export function limitsFit(samples: number | undefined, min: number | undefined, max: number | undefined): number {
  if (samples === undefined) return 10;
  const headroom = (ratio: number) => Math.min(1, Math.max(0.5, 0.5 + 0.5 * Math.log2(ratio)));
  const low = min === undefined ? 1 : headroom(samples / min);
  const high = max === undefined ? 1 : headroom(max / samples);
  return 10 * Math.min(low, high);
}

/** Great-circle distance in km. */
export function haversineKm(lat1: number, lon1: number, lat2: number, lon2: number): number {
  const rad = Math.PI / 180;
  const dLat = (lat2 - lat1) * rad;
  const dLon = (lon2 - lon1) * rad;
  const a = Math.sin(dLat / 2) ** 2 + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(a)));
}

/** A panel id (`hapmap-2`) or a Cloudgene key (`apps@hapmap-2@2.0.0`, or `hapmap-2@2.0.0`). */
function panelMatcher(wanted: string): (panel: ReferencePanel) => boolean {
  const parts = wanted.split('@');
  const keyed = parts.length === 3 && parts[0] === 'apps' ? { id: parts[1]!, version: parts[2]! } : parts.length === 2 ? { id: parts[0]!, version: parts[1]! } : undefined;
  return (panel) => {
    if (panel.externalId === wanted || panel.externalKey === wanted) return true;
    return keyed !== undefined && panel.externalId === keyed.id && panel.version === keyed.version;
  };
}

/** Cloudgene mixes cases (`eur`, `AA`); users should not have to guess which. */
function offersPopulation(panel: ReferencePanel, population: string): boolean {
  const wanted = population.toLowerCase();
  return panel.populations.some((p) => p.id.toLowerCase() === wanted);
}

/** Locale-independent ordering, so ranks are the same on every machine. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
