/**
 * service-registry's catalogue API on the real database and KV: the initial catalogue file, admin-only
 * writes, validation, retirement instead of deletion, panel management, filtering and the cache.
 */
import { panels, services } from '@db/schema/registry.ts';
import { createLogger } from '@shared/log.ts';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'bun:test';
import { eq } from 'drizzle-orm';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readCatalogueFile, seedCatalogue } from '../../services/service-registry/src/catalogue-seed.ts';
import { json } from '../support/json.ts';
import { createRegistryHarness, type RegistryHarness } from '../support/service-registry.ts';

const CATALOGUE_FILE = resolve(import.meta.dir, '../../services/service-registry/catalogue.json');
let h: RegistryHarness;

const cloudgeneService = (slug: string, extra: Record<string, unknown> = {}) => ({
  slug,
  name: `Server ${slug}`,
  protocol: 'cloudgene',
  baseUrl: 'https://impute.example.org/',
  supportedBuilds: ['hg19', 'hg38'],
  limits: { minSamples: 20, maxSamples: 50_000 },
  location: { country: 'Kenya', city: 'Nairobi', latitude: -1.29, longitude: 36.82 },
  panels: [
    {
      externalId: 'hapmap-2',
      version: '2.0.0',
      displayName: 'HapMap 2',
      build: 'hg19',
      populations: [
        { id: 'eur', name: 'EUR' },
        { id: 'afr', name: 'AFR', samples: 120 },
      ],
    },
  ],
  ...extra,
});

beforeAll(async () => {
  h = await createRegistryHarness();
}, 60_000);

afterAll(async () => {
  await h.close();
});

describe('the initial catalogue', () => {
  beforeEach(async () => h.clear());

  it('loads the data file on a first start: the three Cloudgene servers and the two eLwazi WES nodes with their panels', async () => {
    const loaded = await seedCatalogue({ db: h.testDb.database.db, catalogue: h.catalogue, logger: createLogger({ level: 'silent' }) }, CATALOGUE_FILE);
    expect(loaded).toBe(5);
    const res = await h.call('GET', '/services?limit=100', h.tokens.viewer);
    expect(res.status).toBe(200);
    const { items } = await json(res);
    const bySlug = Object.fromEntries(items.map((s: any) => [s.slug, s]));
    expect(Object.keys(bySlug).sort()).toEqual(['afrigen-d', 'elwazi-ilifu', 'elwazi-mali', 'michigan', 'topmed']);
    expect(bySlug.michigan).toMatchObject({ protocol: 'cloudgene', baseUrl: 'https://imputationserver.sph.umich.edu', appId: 'imputationserver2', credentialType: 'cloudgene-token' });
    expect(bySlug['afrigen-d']).toMatchObject({ protocol: 'cloudgene', baseUrl: 'https://impute.afrigen-d.org' });
    for (const wes of ['elwazi-mali', 'elwazi-ilifu']) {
      expect(bySlug[wes].protocol).toBe('ga4gh-wes');
      expect(bySlug[wes].appId).toBeNull();
      expect(bySlug[wes].baseUrl).toEndWith('/ga4gh/wes/v1');
    }
    const afrigen = await json(await h.call('GET', '/services/afrigen-d', h.tokens.viewer));
    const h3 = afrigen.panels.find((p: any) => p.externalId === 'h3africa-v6hc-s');
    expect(h3).toMatchObject({ externalKey: 'apps@h3africa-v6hc-s@1.0.0', version: '1.0.0', build: 'hg38', samples: 4447 });
    const topmed = await json(await h.call('GET', '/services/topmed', h.tokens.viewer));
    expect(topmed.panels.map((p: any) => p.externalId)).toEqual(['topmed-r3']);
  });

  it('is not loaded again once the catalogue has rows, even if they are all retired', async () => {
    const deps = { db: h.testDb.database.db, catalogue: h.catalogue, logger: createLogger({ level: 'silent' }) };
    expect(await seedCatalogue(deps, CATALOGUE_FILE)).toBe(5);
    expect(await seedCatalogue(deps, CATALOGUE_FILE)).toBe(0);
    for (const s of await h.testDb.database.db.select().from(services)) await h.catalogue.retireService(s.id);
    expect(await seedCatalogue(deps, CATALOGUE_FILE)).toBe(0);
    expect((await h.testDb.database.db.select().from(services)).length).toBe(5);
  });

  it('rejects an invalid file with every problem named and loads nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fip-catalogue-'));
    try {
      const path = join(dir, 'bad.json');
      await writeFile(path, JSON.stringify({ services: [{ ...cloudgeneService('ok'), baseUrl: 'ftp://x.org' }, { ...cloudgeneService('Bad Slug') }] }));
      await expect(readCatalogueFile(path)).rejects.toThrow(/services\.0\.baseUrl[\s\S]*services\.1\.slug/);
      await expect(seedCatalogue({ db: h.testDb.database.db, catalogue: h.catalogue, logger: createLogger({ level: 'silent' }) }, path)).rejects.toThrow();
      expect((await h.testDb.database.db.select().from(services)).length).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('catalogue reads', () => {
  beforeAll(async () => h.clear());

  it('needs a signed-in user', async () => {
    expect((await h.call('GET', '/services', null)).status).toBe(401);
    expect((await h.call('GET', '/panels', null)).status).toBe(401);
    expect((await h.call('GET', '/services/discover', null)).status).toBe(401);
  });

  it('pages through services by name with an opaque cursor', async () => {
    for (const slug of ['page-c', 'page-a', 'page-b']) expect((await h.call('POST', '/services', h.tokens.admin, cloudgeneService(slug))).status).toBe(201);
    const first = await json(await h.call('GET', '/services?limit=2', h.tokens.researcher));
    expect(first.items.map((s: any) => s.slug)).toEqual(['page-a', 'page-b']);
    const second = await json(await h.call('GET', `/services?limit=2&cursor=${first.nextCursor}`, h.tokens.researcher));
    expect(second.items.map((s: any) => s.slug)).toEqual(['page-c']);
    expect(second.nextCursor).toBeNull();
    expect((await h.call('GET', '/services?cursor=bm90LWEtY3Vyc29y', h.tokens.researcher)).status).toBe(400);
  });
});

describe('POST /services', () => {
  beforeAll(async () => h.clear());

  it('lets an admin add a service with panels: 201 with defaults filled in', async () => {
    const res = await h.call('POST', '/services', h.tokens.admin, cloudgeneService('kenya-impute'));
    expect(res.status).toBe(201);
    const body = await json(res);
    expect(body).toMatchObject({
      slug: 'kenya-impute',
      baseUrl: 'https://impute.example.org',
      appId: 'imputationserver2',
      credentialType: 'cloudgene-token',
      isActive: true,
      retiredAt: null,
      location: { country: 'Kenya', latitude: -1.29 },
      health: { status: 'unknown', consecutiveFailures: 0 },
    });
    expect(body.panels).toHaveLength(1);
    expect(body.panels[0]).toMatchObject({ externalId: 'hapmap-2', externalKey: 'apps@hapmap-2@2.0.0', build: 'hg19' });
    expect(body.panels[0].populations).toEqual([
      { id: 'eur', name: 'EUR', samples: null },
      { id: 'afr', name: 'AFR', samples: 120 },
    ]);
  });

  it('refuses researchers and viewers with 403 and stores nothing', async () => {
    for (const token of [h.tokens.researcher, h.tokens.viewer]) {
      const res = await h.call('POST', '/services', token, cloudgeneService('not-allowed'));
      expect(res.status).toBe(403);
    }
    expect(await h.testDb.database.db.select().from(services).where(eq(services.slug, 'not-allowed'))).toEqual([]);
  });

  it.each([
    ['an ftp base URL', { baseUrl: 'ftp://impute.example.org' }, 'baseUrl'],
    ['a javascript: URL', { baseUrl: 'javascript:alert(1)' }, 'baseUrl'],
    ['credentials inside the URL', { baseUrl: 'https://user:pw@impute.example.org' }, 'baseUrl'],
    ['a relative URL', { baseUrl: '/api' }, 'baseUrl'],
    ['an uppercase slug', { slug: 'Bad' }, 'slug'],
    ['an unknown protocol', { protocol: 'dnastack' }, 'protocol'],
    ['an unknown field', { apiConfig: { secret: 'x' } }, ''],
    ['no builds', { supportedBuilds: [] }, 'supportedBuilds'],
    ['minSamples above maxSamples', { limits: { minSamples: 100, maxSamples: 10 } }, 'limits'],
    ['latitude without longitude', { location: { latitude: 10 } }, 'location'],
    ['an appId on a WES node', { protocol: 'ga4gh-wes', appId: 'imputationserver2', panels: [] }, 'appId'],
    ['a panel key naming another panel', { panels: [{ externalId: 'hapmap-2', externalKey: 'apps@hrc@1', displayName: 'x', build: 'hg19' }] }, 'panels'],
    ['two panels with one id', { panels: [{ externalId: 'a', displayName: 'A', build: 'hg19' }, { externalId: 'a', displayName: 'B', build: 'hg38' }] }, 'panels'],
  ])('rejects %s with a 422 naming the field', async (_label, change, field) => {
    const res = await h.call('POST', '/services', h.tokens.admin, { ...cloudgeneService(`bad-${Math.random().toString(36).slice(2, 8)}`), ...change });
    expect(res.status).toBe(422);
    const body = await json(res);
    expect(body.code).toBe('validation_failed');
    expect(body.errors.some((e: any) => e.path.includes(field))).toBe(true);
  });

  it('answers 400 for malformed JSON', async () => {
    const res = await h.call('POST', '/services', h.tokens.admin, '{"slug":');
    expect(res.status).toBe(400);
  });

  it('answers 409 for a slug already in use, and keeps the first', async () => {
    expect((await h.call('POST', '/services', h.tokens.admin, cloudgeneService('twice'))).status).toBe(201);
    const res = await h.call('POST', '/services', h.tokens.admin, { ...cloudgeneService('twice'), name: 'Second' });
    expect(res.status).toBe(409);
    expect((await json(res)).code).toBe('slug_taken');
    const rows = await h.testDb.database.db.select().from(services).where(eq(services.slug, 'twice'));
    expect(rows.map((r) => r.name)).toEqual(['Server twice']);
  });

  it('stores a WES node without an app id and with a bearer credential by default', async () => {
    const res = await h.call('POST', '/services', h.tokens.admin, {
      slug: 'wes-node',
      name: 'WES node',
      protocol: 'ga4gh-wes',
      baseUrl: 'http://127.0.0.1:9/ga4gh/wes/v1',
      supportedBuilds: ['hg38'],
    });
    expect(res.status).toBe(201);
    expect(await json(res)).toMatchObject({ appId: null, credentialType: 'wes-bearer', panels: [] });
  });
});

describe('PATCH and DELETE /services/{id}', () => {
  let id: string;
  beforeAll(async () => {
    await h.clear();
    id = (await json(await h.call('POST', '/services', h.tokens.admin, cloudgeneService('editable')))).id;
  });

  it('changes limits, location and activity (by id or slug)', async () => {
    const res = await h.call('PATCH', `/services/${id}`, h.tokens.admin, { limits: { maxSamples: 100 }, location: { city: 'Mombasa' }, isActive: false });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ limits: { maxSamples: 100 }, location: { country: 'Kenya', city: 'Mombasa' }, isActive: false });
    const bySlug = await h.call('PATCH', '/services/editable', h.tokens.admin, { isActive: true });
    expect((await json(bySlug)).isActive).toBe(true);
  });

  it('keeps the slug and protocol fixed: sending them is a 422', async () => {
    expect((await h.call('PATCH', `/services/${id}`, h.tokens.admin, { slug: 'renamed' })).status).toBe(422);
    expect((await h.call('PATCH', `/services/${id}`, h.tokens.admin, { protocol: 'ga4gh-wes' })).status).toBe(422);
  });

  it('is admin-only and 404s an unknown service', async () => {
    expect((await h.call('PATCH', `/services/${id}`, h.tokens.researcher, { name: 'x' })).status).toBe(403);
    expect((await h.call('DELETE', `/services/${id}`, h.tokens.researcher)).status).toBe(403);
    expect((await h.call('PATCH', `/services/${crypto.randomUUID()}`, h.tokens.admin, { name: 'x' })).status).toBe(404);
    expect((await h.call('DELETE', '/services/no-such-slug', h.tokens.admin)).status).toBe(404);
  });

  it('retires instead of deleting: gone from the catalogue and slug lookups, still resolvable by id with its panels retired', async () => {
    expect((await h.call('DELETE', `/services/${id}`, h.tokens.admin)).status).toBe(204);
    const list = await json(await h.call('GET', '/services', h.tokens.researcher));
    expect(list.items.map((s: any) => s.id)).not.toContain(id);
    expect((await h.call('GET', '/services/editable', h.tokens.researcher)).status).toBe(404);
    const byId = await json(await h.call('GET', `/services/${id}`, h.tokens.researcher));
    expect(byId.retiredAt).not.toBeNull();
    expect(byId.isActive).toBe(false);
    const stored = await h.testDb.database.db.select().from(panels).where(eq(panels.serviceId, id));
    expect(stored).toHaveLength(1);
    expect(stored[0]!.retiredAt).not.toBeNull();
    expect((await h.call('PATCH', `/services/${id}`, h.tokens.admin, { name: 'x' })).status).toBe(404);
  });
});

describe('panels', () => {
  let serviceId: string;
  beforeAll(async () => {
    await h.clear();
    serviceId = (await json(await h.call('POST', '/services', h.tokens.admin, cloudgeneService('with-panels')))).id;
    await h.call('POST', '/services', h.tokens.admin, {
      ...cloudgeneService('other'),
      panels: [{ externalId: 'topmed-r3', displayName: 'TOPMed r3', build: 'hg38', populations: [{ id: 'all', name: 'All' }] }],
    });
  });

  it('lets an admin add one; the same panel id twice on a service is a 409', async () => {
    const panel = { externalId: 'h3africa-v6hc-s', externalKey: 'apps@h3africa-v6hc-s@1.0.0', displayName: 'H3Africa v6', build: 'hg38', samples: 4447, qcThresholds: { strandFlips: 100 } };
    const res = await h.call('POST', `/services/${serviceId}/panels`, h.tokens.admin, panel);
    expect(res.status).toBe(201);
    expect(await json(res)).toMatchObject({ version: '1.0.0', samples: 4447, qcThresholds: { strandFlips: 100 } });
    const again = await h.call('POST', `/services/${serviceId}/panels`, h.tokens.admin, panel);
    expect(again.status).toBe(409);
    expect((await json(again)).code).toBe('panel_exists');
    expect((await h.call('POST', `/services/${serviceId}/panels`, h.tokens.researcher, { ...panel, externalId: 'x' })).status).toBe(403);
  });

  it('filters the panels of every service by build, population and panel key', async () => {
    const hg38 = await json(await h.call('GET', '/panels?build=hg38', h.tokens.viewer));
    expect(hg38.items.map((p: any) => p.externalId).sort()).toEqual(['h3africa-v6hc-s', 'topmed-r3']);
    expect(hg38.items.find((p: any) => p.externalId === 'topmed-r3').service.slug).toBe('other');
    const afr = await json(await h.call('GET', '/panels?population=afr', h.tokens.viewer));
    expect(afr.items.map((p: any) => p.externalId)).toEqual(['hapmap-2']);
    const byKey = await json(await h.call('GET', '/panels?panel=apps@hapmap-2@2.0.0', h.tokens.viewer));
    expect(byKey.items).toHaveLength(1);
    const byService = await json(await h.call('GET', '/panels?service=other', h.tokens.viewer));
    expect(byService.items.map((p: any) => p.externalId)).toEqual(['topmed-r3']);
  });

  it('retires a panel (kept for the jobs that name it) and brings it back', async () => {
    const list = await json(await h.call('GET', `/services/${serviceId}/panels`, h.tokens.researcher));
    const hapmap = list.items.find((p: any) => p.externalId === 'hapmap-2');
    expect((await h.call('DELETE', `/services/${serviceId}/panels/${hapmap.id}`, h.tokens.admin)).status).toBe(204);
    const after = await json(await h.call('GET', `/services/${serviceId}/panels`, h.tokens.researcher));
    expect(after.items.map((p: any) => p.externalId)).toEqual(['h3africa-v6hc-s']);
    const all = await json(await h.call('GET', `/services/${serviceId}/panels?includeRetired=true`, h.tokens.researcher));
    expect(all.items.find((p: any) => p.id === hapmap.id).retiredAt).not.toBeNull();
    expect((await json(await h.call('GET', '/panels?population=afr', h.tokens.viewer))).items).toEqual([]);
    const restored = await h.call('PATCH', `/services/${serviceId}/panels/${hapmap.id}`, h.tokens.admin, { retired: false, displayName: 'HapMap II' });
    expect(restored.status).toBe(200);
    expect(await json(restored)).toMatchObject({ retiredAt: null, displayName: 'HapMap II' });
  });

  it('404s a panel of another service and rejects a key for another panel id', async () => {
    const other = await json(await h.call('GET', '/services/other', h.tokens.admin));
    const topmed = other.panels[0];
    expect((await h.call('PATCH', `/services/${serviceId}/panels/${topmed.id}`, h.tokens.admin, { displayName: 'x' })).status).toBe(404);
    expect((await h.call('DELETE', `/services/${serviceId}/panels/not-a-uuid`, h.tokens.admin)).status).toBe(404);
    const res = await h.call('PATCH', `/services/${other.id}/panels/${topmed.id}`, h.tokens.admin, { externalKey: 'apps@hrc-r1.1@1.0.0' });
    expect(res.status).toBe(422);
  });
});

describe('the catalogue cache', () => {
  beforeAll(async () => h.clear());

  it('serves reads from the KV snapshot and drops it on every write', async () => {
    const { id } = await json(await h.call('POST', '/services', h.tokens.admin, cloudgeneService('cached')));
    expect((await json(await h.call('GET', '/services', h.tokens.viewer))).items[0].name).toBe('Server cached');
    // A change behind the API's back is not seen while the snapshot is cached...
    await h.testDb.database.db.update(services).set({ name: 'Changed in the database' }).where(eq(services.id, id));
    expect((await json(await h.call('GET', '/services', h.tokens.viewer))).items[0].name).toBe('Server cached');
    // ...and any write through the API invalidates it.
    await h.call('PATCH', `/services/${id}`, h.tokens.admin, { description: 'new' });
    const fresh = (await json(await h.call('GET', '/services', h.tokens.viewer))).items[0];
    expect(fresh).toMatchObject({ name: 'Changed in the database', description: 'new' });
  });
});
