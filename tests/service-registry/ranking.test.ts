/**
 * Discovery and ranking over hand-built catalogue snapshots: who is excluded and why, and how the
 * usable (service, panel) pairs are ordered.
 */
import { DiscoverResultSchema, type ImputationService, type ReferencePanel, type ServiceHealth } from '@shared/schemas/registry.ts';
import { describe, expect, it } from 'bun:test';
import type { CatalogueSnapshot } from '../../services/service-registry/src/domain.ts';
import { discover, DiscoverQuerySchema, haversineKm, limitsFit } from '../../services/service-registry/src/ranking.ts';

const NOW = '2026-01-01T00:00:00.000Z';
let counter = 0;
const uuid = () => `00000000-0000-4000-8000-${(++counter).toString(16).padStart(12, '0')}`;

type ServiceOverrides = Omit<Partial<ImputationService>, 'health'> & { health?: Partial<ServiceHealth> };

function service(slug: string, overrides: ServiceOverrides = {}): ImputationService {
  const { health, ...rest } = overrides;
  return {
    id: uuid(),
    slug,
    name: slug.replace(/^\w/, (c) => c.toUpperCase()),
    protocol: 'cloudgene',
    baseUrl: `https://${slug}.example.org`,
    appId: 'imputationserver2',
    description: null,
    homepage: null,
    location: { country: null, city: null, latitude: null, longitude: null },
    limits: { minSamples: 1, maxSamples: 50_000, maxFileSizeBytes: 1_000_000_000 },
    supportedBuilds: ['hg19', 'hg38'],
    credentialType: 'cloudgene-token',
    isActive: true,
    protocolInfo: {},
    syncedAt: NOW,
    retiredAt: null,
    createdAt: NOW,
    updatedAt: NOW,
    ...rest,
    health: {
      status: 'healthy',
      statusSince: NOW,
      checkedAt: NOW,
      latencyMs: 100,
      httpStatus: 200,
      error: null,
      queueSize: 0,
      runningJobs: 0,
      consecutiveFailures: 0,
      ...health,
    },
  };
}

function panel(owner: ImputationService, externalId: string, overrides: Partial<ReferencePanel> = {}): ReferencePanel {
  return {
    id: uuid(),
    serviceId: owner.id,
    externalId,
    externalKey: `apps@${externalId}@2.0.0`,
    version: '2.0.0',
    displayName: externalId.toUpperCase(),
    description: null,
    build: 'hg19',
    populations: [
      { id: 'eur', name: 'European', samples: 100 },
      { id: 'afr', name: 'African', samples: 100 },
      { id: 'off', name: 'Off', samples: null },
    ],
    samples: 1000,
    variants: 1_000_000,
    qcThresholds: {},
    retiredAt: null,
    createdAt: NOW,
    updatedAt: NOW,
    ...overrides,
  };
}

function snapshot(services: ImputationService[], panels: ReferencePanel[]): CatalogueSnapshot {
  return { services, panels, builtAt: NOW };
}

/** Queries go through the schema, as the route does, so tests see string-typed input. */
function run(snap: CatalogueSnapshot, query: Record<string, string> = {}) {
  const result = discover(snap, DiscoverQuerySchema.parse(query));
  DiscoverResultSchema.parse(result);
  for (const candidate of result.candidates) expect(candidate.reasons.length).toBeGreaterThanOrEqual(1);
  for (const entry of result.excluded) expect(entry.reasons.length).toBeGreaterThanOrEqual(1);
  return result;
}

const reasonsOf = (result: ReturnType<typeof run>, slug: string) => result.excluded.find((e) => e.slug === slug)?.reasons ?? [];
const codesOf = (result: ReturnType<typeof run>, slug: string) => reasonsOf(result, slug).map((r) => r.code);
const slugs = (result: ReturnType<typeof run>) => result.candidates.map((c) => c.service.slug);

describe('discover: exclusions', () => {
  it('excludes a server lacking the panel with panel_missing', () => {
    const michigan = service('michigan');
    const topmed = service('topmed');
    const result = run(snapshot([michigan, topmed], [panel(michigan, 'hapmap-2'), panel(topmed, 'topmed-r3')]), { panel: 'topmed-r3' });
    expect(slugs(result)).toEqual(['topmed']);
    expect(codesOf(result, 'michigan')).toEqual(['panel_missing']);
    expect(reasonsOf(result, 'michigan')[0]!.detail).toContain('topmed-r3');
  });

  it('matches a panel by its Cloudgene key as well as by its id', () => {
    const michigan = service('michigan');
    const snap = snapshot([michigan], [panel(michigan, 'hapmap-2'), panel(michigan, '1000g-phase-3-v5')]);
    const byKey = run(snap, { panel: 'apps@hapmap-2@2.0.0' });
    expect(byKey.candidates.map((c) => c.panel.externalId)).toEqual(['hapmap-2']);
    const byOtherVersion = run(snap, { panel: 'apps@hapmap-2@9.9.9' });
    expect(byOtherVersion.candidates).toEqual([]);
    expect(codesOf(byOtherVersion, 'michigan')).toEqual(['panel_missing']);
  });

  it('ignores retired panels when matching', () => {
    const michigan = service('michigan');
    const result = run(snapshot([michigan], [panel(michigan, 'hapmap-2', { retiredAt: NOW })]), { panel: 'hapmap-2' });
    expect(result.candidates).toEqual([]);
    expect(codesOf(result, 'michigan')).toEqual(['panel_missing']);
  });

  it('excludes a server over its sample limit with too_many_samples naming the limit', () => {
    const small = service('small', { limits: { minSamples: 1, maxSamples: 5000 } });
    const big = service('big', { limits: { minSamples: 1, maxSamples: 100_000 } });
    const result = run(snapshot([small, big], [panel(small, 'hapmap-2'), panel(big, 'hapmap-2')]), { panel: 'hapmap-2', samples: '6000' });
    expect(slugs(result)).toEqual(['big']);
    expect(codesOf(result, 'small')).toEqual(['too_many_samples']);
    expect(reasonsOf(result, 'small')[0]!.detail).toContain('5,000');
  });

  it('excludes a server whose minSamples the cohort does not reach with too_few_samples', () => {
    const strict = service('strict', { limits: { minSamples: 50, maxSamples: 50_000 } });
    const lenient = service('lenient', { limits: { minSamples: 1, maxSamples: 50_000 } });
    const result = run(snapshot([strict, lenient], [panel(strict, 'hapmap-2'), panel(lenient, 'hapmap-2')]), { samples: '10' });
    expect(slugs(result)).toEqual(['lenient']);
    expect(codesOf(result, 'strict')).toEqual(['too_few_samples']);
    expect(reasonsOf(result, 'strict')[0]!.detail).toContain('50');
  });

  it('excludes a server that does not accept the input build, but not for the panel’s own build', () => {
    const hg19only = service('old', { supportedBuilds: ['hg19'] });
    const both = service('new', { supportedBuilds: ['hg19', 'hg38'] });
    const result = run(snapshot([hg19only, both], [panel(hg19only, 'hapmap-2'), panel(both, 'hapmap-2', { build: 'hg19' })]), {
      build: 'hg38',
    });
    expect(slugs(result)).toEqual(['new']);
    expect(codesOf(result, 'old')).toEqual(['build_unsupported']);
    // The hg19 panel is lifted over by the server, so an hg38 input still goes there.
    expect(result.candidates[0]!.panel.build).toBe('hg19');
  });

  it('excludes a server whose matching panel lacks the population with population_missing', () => {
    const a = service('alpha');
    const b = service('beta');
    const snap = snapshot(
      [a, b],
      [panel(a, 'hapmap-2', { populations: [{ id: 'eur', name: 'European', samples: 10 }] }), panel(b, 'hapmap-2')],
    );
    const result = run(snap, { panel: 'hapmap-2', population: 'afr' });
    expect(slugs(result)).toEqual(['beta']);
    expect(codesOf(result, 'alpha')).toEqual(['population_missing']);
    expect(reasonsOf(result, 'alpha')[0]!.detail).toContain('eur');
    // `off` means no allele-frequency check, so nobody is dropped for it.
    expect(slugs(run(snap, { panel: 'hapmap-2', population: 'off' })).sort()).toEqual(['alpha', 'beta']);
  });

  it('excludes a server whose file size limit an input file exceeds with file_too_large', () => {
    const tight = service('tight', { limits: { maxFileSizeBytes: 2_000_000 } });
    const roomy = service('roomy', { limits: { maxFileSizeBytes: 10_000_000 } });
    const result = run(snapshot([tight, roomy], [panel(tight, 'hapmap-2'), panel(roomy, 'hapmap-2')]), { files: '1048576,3000000' });
    expect(slugs(result)).toEqual(['roomy']);
    expect(codesOf(result, 'tight')).toEqual(['file_too_large']);
    expect(reasonsOf(result, 'tight')[0]!.detail).toContain('2,000,000');
  });

  it('excludes unhealthy and unreachable servers with the status and error, and inactive ones', () => {
    const down = service('down', { health: { status: 'unreachable', error: 'connect ECONNREFUSED', httpStatus: null } });
    const sick = service('sick', { health: { status: 'unhealthy', error: null, httpStatus: 503 } });
    const off = service('off', { isActive: false });
    const up = service('up');
    const all = [down, sick, off, up];
    const result = run(snapshot(all, all.map((s) => panel(s, 'hapmap-2'))));
    expect(slugs(result)).toEqual(['up']);
    expect(codesOf(result, 'down')).toEqual(['unhealthy']);
    expect(reasonsOf(result, 'down')[0]!.detail).toContain('unreachable');
    expect(reasonsOf(result, 'down')[0]!.detail).toContain('ECONNREFUSED');
    expect(reasonsOf(result, 'sick')[0]!.detail).toContain('503');
    expect(codesOf(result, 'off')).toEqual(['inactive']);
  });

  it('lists every applicable reason for one excluded server', () => {
    const bad = service('bad', {
      isActive: false,
      supportedBuilds: ['hg19'],
      limits: { minSamples: 1, maxSamples: 100, maxFileSizeBytes: 10 },
      health: { status: 'unhealthy', error: 'timeout' },
    });
    const result = run(snapshot([bad], [panel(bad, 'hapmap-2')]), { panel: 'topmed-r3', build: 'hg38', samples: '500', files: '11' });
    expect(codesOf(result, 'bad').sort()).toEqual(
      ['build_unsupported', 'file_too_large', 'inactive', 'panel_missing', 'too_many_samples', 'unhealthy'].sort(),
    );
  });

  it('leaves retired services out of both lists', () => {
    const gone = service('gone', { retiredAt: NOW });
    const result = run(snapshot([gone], [panel(gone, 'hapmap-2')]));
    expect(result.candidates).toEqual([]);
    expect(result.excluded).toEqual([]);
  });
});

describe('discover: ranking', () => {
  it('keeps a degraded server but ranks it below a healthy one', () => {
    const healthy = service('zulu');
    const degraded = service('alpha', { health: { status: 'degraded' } });
    const result = run(snapshot([healthy, degraded], [panel(healthy, 'hapmap-2'), panel(degraded, 'hapmap-2')]));
    expect(slugs(result)).toEqual(['zulu', 'alpha']);
    expect(result.candidates[0]!.breakdown.health).toBe(40);
    expect(result.candidates[1]!.breakdown.health).toBe(15);
    expect(result.candidates[1]!.reasons.map((r) => r.code)).toContain('degraded');
  });

  it('ranks the shorter queue higher when all else is equal', () => {
    const busy = service('aaa-busy', { health: { queueSize: 40 } });
    const quiet = service('zzz-quiet', { health: { queueSize: 2 } });
    const result = run(snapshot([busy, quiet], [panel(busy, 'hapmap-2'), panel(quiet, 'hapmap-2')]));
    expect(slugs(result)).toEqual(['zzz-quiet', 'aaa-busy']);
    expect(result.candidates[0]!.breakdown.queue).toBeCloseTo(25 / 1.2, 2);
    expect(result.candidates[1]!.breakdown.queue).toBeCloseTo(5, 2);
  });

  it('scores unknown health, queue and latency at their documented middle values', () => {
    const fresh = service('fresh', { health: { status: 'unknown', latencyMs: null, queueSize: null, checkedAt: null } });
    const [candidate] = run(snapshot([fresh], [panel(fresh, 'hapmap-2')])).candidates;
    expect(candidate!.breakdown).toEqual({ health: 10, queue: 12.5, latency: 7.5, limits: 10, distance: 0 });
    expect(candidate!.score).toBe(40);
    expect(candidate!.reasons.map((r) => r.code)).toContain('health_unknown');
  });

  it('adds distance points for the nearer server when the caller gives a location', () => {
    const far = service('aaa-far', { location: { country: 'US', city: 'Ann Arbor', latitude: 42.28, longitude: -83.74 } });
    const near = service('zzz-near', { location: { country: 'DE', city: 'Munich', latitude: 48.14, longitude: 11.58 } });
    const snap = snapshot([far, near], [panel(far, 'hapmap-2'), panel(near, 'hapmap-2')]);
    const result = run(snap, { latitude: '52.37', longitude: '4.9' });
    expect(slugs(result)).toEqual(['zzz-near', 'aaa-far']);
    expect(result.candidates[0]!.distanceKm).toBeGreaterThan(500);
    expect(result.candidates[0]!.distanceKm).toBeLessThan(800);
    expect(result.candidates[0]!.reasons.map((r) => r.code)).toContain('distance');
    // Without a caller location distance plays no part and the order falls back to the name.
    const anywhere = run(snap);
    expect(slugs(anywhere)).toEqual(['aaa-far', 'zzz-near']);
    expect(anywhere.candidates.every((c) => c.distanceKm === null && c.breakdown.distance === 0)).toBe(true);
  });

  it('treats latitude 0 / longitude 0 as a real place, for the service and for the caller', () => {
    const gulf = service('gulf', { location: { country: null, city: null, latitude: 0, longitude: 0 } });
    const nowhere = service('nowhere');
    const snap = snapshot([gulf, nowhere], [panel(gulf, 'hapmap-2'), panel(nowhere, 'hapmap-2')]);
    const fromAccra = run(snap, { latitude: '5.6', longitude: '-0.19' });
    const gulfHit = fromAccra.candidates.find((c) => c.service.slug === 'gulf')!;
    expect(gulfHit.distanceKm).not.toBeNull();
    expect(gulfHit.distanceKm!).toBeCloseTo(haversineKm(5.6, -0.19, 0, 0), 0);
    expect(gulfHit.breakdown.distance).toBeGreaterThan(8);
    const nowhereHit = fromAccra.candidates.find((c) => c.service.slug === 'nowhere')!;
    expect(nowhereHit.distanceKm).toBeNull();
    expect(nowhereHit.breakdown.distance).toBe(0);

    const fromZero = run(snap, { latitude: '0', longitude: '0' });
    const atZero = fromZero.candidates.find((c) => c.service.slug === 'gulf')!;
    expect(atZero.distanceKm).toBe(0);
    expect(atZero.breakdown.distance).toBe(10);
  });

  it('gives fewer limit points near the sample bounds than well inside them', () => {
    expect(limitsFit(undefined, 20, 100)).toBe(10);
    expect(limitsFit(50, 20, 200)).toBe(10);
    expect(limitsFit(20, 20, 200)).toBe(5);
    expect(limitsFit(200, 20, 200)).toBe(5);
    expect(limitsFit(30, 20, 200)).toBeGreaterThan(5);
    expect(limitsFit(30, 20, 200)).toBeLessThan(10);
    const edge = service('aaa-edge', { limits: { minSamples: 1, maxSamples: 1000 } });
    const roomy = service('zzz-roomy', { limits: { minSamples: 1, maxSamples: 100_000 } });
    const result = run(snapshot([edge, roomy], [panel(edge, 'hapmap-2'), panel(roomy, 'hapmap-2')]), { samples: '1000' });
    expect(slugs(result)).toEqual(['zzz-roomy', 'aaa-edge']);
    expect(result.candidates[1]!.breakdown.limits).toBe(5);
  });

  it('returns one candidate per matching panel, ranks from 1 and applies the limit', () => {
    const services = ['a', 'b', 'c', 'd'].map((s) => service(`svc-${s}`, { health: { queueSize: s.charCodeAt(0) - 97 } }));
    const panels = services.flatMap((s) => [panel(s, 'hapmap-2'), panel(s, '1000g-phase-3-v5')]);
    const all = run(snapshot(services, panels));
    expect(all.candidates).toHaveLength(8);
    expect(all.candidates.map((c) => c.rank)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const scores = all.candidates.map((c) => c.score);
    expect([...scores].sort((x, y) => y - x)).toEqual(scores);
    const limited = run(snapshot(services, panels), { limit: '3' });
    expect(limited.candidates.map((c) => c.rank)).toEqual([1, 2, 3]);
    expect(limited.candidates.map((c) => c.service.slug)).toEqual(['svc-a', 'svc-a', 'svc-b']);
    expect(run(snapshot(services, panels), {}).candidates).toHaveLength(8);
  });

  it('explains every kept candidate: panel offered, health, queue, limits', () => {
    const s = service('michigan');
    const [candidate] = run(snapshot([s], [panel(s, 'hapmap-2')]), { panel: 'hapmap-2', samples: '100', population: 'eur', build: 'hg38' })
      .candidates;
    const codes = candidate!.reasons.map((r) => r.code);
    for (const code of ['panel_offered', 'build_supported', 'population_offered', 'healthy', 'queue', 'within_limits']) {
      expect(codes).toContain(code);
    }
  });

  it('gives the same answer for the same input whatever the snapshot order', () => {
    const services = ['x', 'y', 'z'].map((s) => service(`same-${s}`));
    const panels = services.map((s) => panel(s, 'hapmap-2'));
    const forward = run(snapshot(services, panels));
    const backward = run(snapshot([...services].reverse(), [...panels].reverse()));
    expect(backward).toEqual(forward);
  });
});

describe('DiscoverQuerySchema', () => {
  it('rejects a latitude without a longitude, and the reverse', () => {
    const lat = DiscoverQuerySchema.safeParse({ latitude: '10' });
    expect(lat.success).toBe(false);
    expect(lat.error!.issues[0]!.message).toContain('latitude and longitude');
    expect(DiscoverQuerySchema.safeParse({ longitude: '10' }).success).toBe(false);
  });

  it('rejects junk in the files list, zero sizes and more than 100 files', () => {
    for (const files of ['abc', '1,,2', '100,-5', '0', '1.5', '1e6', '', ' ']) {
      expect(DiscoverQuerySchema.safeParse({ files }).success).toBe(false);
    }
    expect(DiscoverQuerySchema.safeParse({ files: Array.from({ length: 101 }, () => '1').join(',') }).success).toBe(false);
    expect(DiscoverQuerySchema.parse({ files: Array.from({ length: 100 }, () => '7').join(',') }).files).toHaveLength(100);
    expect(DiscoverQuerySchema.parse({ files: '1048576, 2097152' }).files).toEqual([1048576, 2097152]);
  });

  it('rejects out-of-range and empty coordinates, bad sample counts and limits', () => {
    expect(DiscoverQuerySchema.safeParse({ latitude: '91', longitude: '0' }).success).toBe(false);
    expect(DiscoverQuerySchema.safeParse({ latitude: '0', longitude: '-181' }).success).toBe(false);
    expect(DiscoverQuerySchema.safeParse({ latitude: '', longitude: '' }).success).toBe(false);
    expect(DiscoverQuerySchema.safeParse({ samples: '0' }).success).toBe(false);
    expect(DiscoverQuerySchema.safeParse({ samples: '2.5' }).success).toBe(false);
    expect(DiscoverQuerySchema.safeParse({ limit: '51' }).success).toBe(false);
    expect(DiscoverQuerySchema.safeParse({ build: 'hg18' }).success).toBe(false);
  });

  it('parses a full query and defaults the limit to 10', () => {
    expect(DiscoverQuerySchema.parse({})).toEqual({ limit: 10 });
    expect(
      DiscoverQuerySchema.parse({ panel: 'hapmap-2', build: 'hg38', population: 'eur', samples: '20', latitude: '0', longitude: '-0.5', limit: '50' }),
    ).toEqual({ panel: 'hapmap-2', build: 'hg38', population: 'eur', samples: 20, latitude: 0, longitude: -0.5, limit: 50 });
  });
});
