/**
 * service-registry's probe, health, sync, discovery and GA4GH endpoints over HTTP, against the faithful
 * Cloudgene and WES fakes on 127.0.0.1 (external calls are off, as in every test).
 */
import { outbox } from '@db/schema/registry.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { startCloudgeneFake, makeFakeJwt, type CloudgeneFake } from '../fakes/cloudgene.ts';
import { startWesFake, type WesFake } from '../fakes/wes.ts';
import { json } from '../support/json.ts';
import { createRegistryHarness, type RegistryHarness } from '../support/service-registry.ts';

let h: RegistryHarness;
let cloudgene: CloudgeneFake;
let wes: WesFake;
const operatorToken = makeFakeJwt('operator');
const ids: Record<string, string> = {};

const panel = (externalId: string, build: 'hg19' | 'hg38', populations: string[]) => ({
  externalId,
  displayName: externalId,
  build,
  populations: populations.map((id) => ({ id, name: id.toUpperCase() })),
});

async function add(body: Record<string, unknown>): Promise<string> {
  const res = await h.call('POST', '/services', h.tokens.admin, body);
  expect(res.status).toBe(201);
  return (await json(res)).id;
}

beforeAll(async () => {
  cloudgene = await startCloudgeneFake({ tokens: { [operatorToken]: 'operator' } });
  wes = await startWesFake({ version: '1.1.0' });
  h = await createRegistryHarness({ operatorTokens: { 'fake-michigan': operatorToken }, probeTimeoutMs: 1_000 });
  await h.clear();
  ids.michigan = await add({
    slug: 'fake-michigan',
    name: 'Fake Michigan',
    protocol: 'cloudgene',
    baseUrl: cloudgene.url,
    supportedBuilds: ['hg19', 'hg38'],
    limits: { minSamples: 20, maxSamples: 1000 },
    location: { country: 'United States', city: 'Ann Arbor', latitude: 42.28, longitude: -83.74 },
  });
  ids.small = await add({
    slug: 'fake-small',
    name: 'Fake Small Server',
    protocol: 'cloudgene',
    baseUrl: cloudgene.url,
    supportedBuilds: ['hg19'],
    limits: { minSamples: 1, maxSamples: 50 },
    location: { country: 'South Africa', city: 'Cape Town', latitude: -33.92, longitude: 18.42 },
    panels: [panel('hapmap-2', 'hg19', ['eur', 'afr'])],
  });
  ids.wes = await add({ slug: 'fake-wes', name: 'Fake WES', protocol: 'ga4gh-wes', baseUrl: wes.url, supportedBuilds: ['hg38'], credentialType: 'none' });
  ids.external = await add({ slug: 'real-server', name: 'A real server', protocol: 'cloudgene', baseUrl: 'https://imputation.example.org', supportedBuilds: ['hg19'] });
}, 60_000);

afterAll(async () => {
  await h.close();
  await cloudgene.stop();
  await wes.stop();
});

describe('POST /services/{id}/probe', () => {
  it('lets an admin probe now: the outcome is stored, shown in the catalogue and in the history', async () => {
    const res = await h.call('POST', `/services/${ids.michigan}/probe`, h.tokens.admin);
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ status: 'healthy', httpStatus: 200, consecutiveFailures: 0 });
    const listed = (await json(await h.call('GET', '/services', h.tokens.viewer))).items.find((s: any) => s.id === ids.michigan);
    expect(listed.health.status).toBe('healthy');
    const report = await json(await h.call('GET', `/services/fake-michigan/health`, h.tokens.viewer));
    expect(report.current.status).toBe('healthy');
    expect(report.history.items).toHaveLength(1);
    expect(report.history.items[0]).toMatchObject({ status: 'healthy', httpStatus: 200 });
  });

  it('uses the operator token as a raw X-Auth-Token, never a bearer token', async () => {
    const seen = cloudgene.control.requests.filter((r) => r.path === '/api/v2/server');
    expect(seen.at(-1)!.headers['x-auth-token']).toBe(operatorToken);
    expect(seen.at(-1)!.headers.authorization).toBeUndefined();
  });

  it('probes a WES node through its service-info', async () => {
    const res = await h.call('POST', `/services/${ids.wes}/probe`, h.tokens.admin);
    expect(res.status).toBe(200);
    expect((await json(res)).status).toBe('healthy');
  });

  it('records a change of status once, as a service.health_changed event in the outbox', async () => {
    await h.testDb.database.db.delete(outbox);
    cloudgene.control.addFault({ kind: 'status500', path: '/api/v2/server' });
    try {
      const res = await h.call('POST', `/services/${ids.michigan}/probe`, h.tokens.admin);
      expect(await json(res)).toMatchObject({ status: 'unhealthy', httpStatus: 500, consecutiveFailures: 1 });
      await h.call('POST', `/services/${ids.michigan}/probe`, h.tokens.admin);
    } finally {
      cloudgene.control.clearFaults();
    }
    const events = await h.testDb.database.db.select().from(outbox);
    expect(events).toHaveLength(1);
    expect(events[0]!.type).toBe('service.health_changed');
    expect(events[0]!.payload).toMatchObject({ source: 'service-registry', data: { serviceId: ids.michigan, previous: 'healthy', current: 'unhealthy' } });
    const history = await json(await h.call('GET', `/services/${ids.michigan}/health?limit=2`, h.tokens.viewer));
    expect(history.current.consecutiveFailures).toBe(2);
    expect(history.history.items.map((i: any) => i.status)).toEqual(['unhealthy', 'unhealthy']);
    const older = await json(await h.call('GET', `/services/${ids.michigan}/health?limit=2&cursor=${history.history.nextCursor}`, h.tokens.viewer));
    expect(older.history.items.map((i: any) => i.status)).toEqual(['healthy']);
    expect(older.history.nextCursor).toBeNull();
    // Shaped like a cursor but not a real time or id: a 400, never a database error.
    for (const forged of ['2031-99-99T99:99:99.000Z|0190c3d2-0000-7000-8000-000000000000', `2031-01-01T00:00:00.000Z|${'-'.repeat(36)}`]) {
      const res = await h.call('GET', `/services/${ids.michigan}/health?cursor=${Buffer.from(forged).toString('base64url')}`, h.tokens.viewer);
      expect(res.status).toBe(400);
    }
  });

  it('is admin-only, and refuses a server outside this machine while external calls are off', async () => {
    expect((await h.call('POST', `/services/${ids.michigan}/probe`, h.tokens.researcher)).status).toBe(403);
    const res = await h.call('POST', `/services/${ids.external}/probe`, h.tokens.admin);
    expect(res.status).toBe(409);
    expect((await json(res)).code).toBe('external_calls_disabled');
    expect((await json(await h.call('GET', `/services/${ids.external}/health`, h.tokens.viewer))).current.status).toBe('unknown');
  });
});

describe('POST /services/{id}/sync', () => {
  it("updates a Cloudgene server's panels from its app form and says what changed", async () => {
    const res = await h.call('POST', `/services/${ids.michigan}/sync`, h.tokens.admin);
    expect(res.status).toBe(200);
    const report = await json(res);
    expect(report.added.map((p: any) => p.externalId).sort()).toEqual(['1000g-phase-3-v5', 'hapmap-2', 'hrc-r1.1']);
    const service = await json(await h.call('GET', '/services/fake-michigan', h.tokens.researcher));
    const hapmap = service.panels.find((p: any) => p.externalId === 'hapmap-2');
    expect(hapmap).toMatchObject({ externalKey: 'apps@hapmap-2@2.0.0', build: 'hg19' });
    expect(hapmap.populations.map((p: any) => p.id)).toContain('afr');
    expect(service.protocolInfo.appVersion).toBe('2.0.12');
    expect(service.syncedAt).not.toBeNull();
  });

  it('is admin-only, and needs an operator credential for a Cloudgene server', async () => {
    expect((await h.call('POST', `/services/${ids.michigan}/sync`, h.tokens.researcher)).status).toBe(403);
    const res = await h.call('POST', `/services/${ids.small}/sync`, h.tokens.admin);
    expect(res.status).toBe(409);
    expect((await json(res)).code).toBe('operator_credential_missing');
  });
});

describe('GET /services/discover', () => {
  it('ranks the services able to run the request and says why the others were dropped', async () => {
    expect((await json(await h.call('POST', `/services/${ids.michigan}/probe`, h.tokens.admin))).status).toBe('healthy');
    const res = await h.call('GET', '/services/discover?panel=hapmap-2&build=hg19&population=afr&samples=200', h.tokens.researcher);
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.candidates.map((c: any) => c.service.slug)).toEqual(['fake-michigan']);
    expect(body.candidates[0]).toMatchObject({ rank: 1, panel: { externalId: 'hapmap-2' } });
    expect(body.candidates[0].reasons.length).toBeGreaterThan(0);
    const reasons = Object.fromEntries(body.excluded.map((e: any) => [e.slug, e.reasons.map((r: any) => r.code)]));
    expect(reasons['fake-small']).toContain('too_many_samples');
    expect(reasons['fake-wes']).toContain('panel_missing');
  });

  it('rejects a half-given location with 400', async () => {
    const res = await h.call('GET', '/services/discover?latitude=10', h.tokens.researcher);
    expect(res.status).toBe(400);
  });
});

describe('GA4GH service registry views', () => {
  it('lists the catalogue and the platform with WES nodes typed as org.ga4gh wes', async () => {
    const res = await h.call('GET', '/ga4gh/registry/v1/services', h.tokens.viewer);
    expect(res.status).toBe(200);
    const entries = await json(res);
    const wesEntry = entries.find((e: any) => e.url === wes.url);
    expect(wesEntry.type).toMatchObject({ group: 'org.ga4gh', artifact: 'wes' });
    expect(entries.some((e: any) => e.id === 'org.federated-imputation.service-registry')).toBe(true);
    for (const e of entries) for (const field of ['id', 'name', 'type', 'organization', 'version', 'url']) expect(e[field]).toBeDefined();
  });
});
