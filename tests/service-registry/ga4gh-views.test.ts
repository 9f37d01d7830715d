/**
 * The GA4GH Service Registry 1.0 views over a fixed catalogue snapshot, through the kit's app with
 * real token verification: required fields on every entry, protocol-specific types, 404 and 401.
 */
import { createServiceApp, type ServiceApp } from '@shared/app.ts';
import { createMemoryKv } from '@shared/kv-memory.ts';
import { createLogger } from '@shared/log.ts';
import type { ImputationService } from '@shared/schemas/registry.ts';
import { beforeAll, describe, expect, it } from 'bun:test';
import type { CatalogueSnapshot } from '../../services/service-registry/src/domain.ts';
import {
  catalogueEntry,
  ExternalServiceSchema,
  highestVersion,
  serviceTypes,
} from '../../services/service-registry/src/ga4gh-views.ts';
import { ga4ghRegistryRoutes } from '../../services/service-registry/src/routes/ga4gh-registry.ts';
import { json } from '../support/json.ts';
import { testAuthenticator, tokenFor } from '../support/test-identity.ts';

const NOW = '2026-02-03T04:05:06.000Z';
const ORG = { name: 'Test Imputation Consortium', url: 'https://imputation.example.org' };
const BASE = '/ga4gh/registry/v1';
const PLATFORM = [
  'api-gateway',
  'user-service',
  'service-registry',
  'job-processor',
  'file-manager',
  'notification',
  'monitoring',
].map((name, i) => ({ name, url: `http://127.0.0.1:${8000 + i}`, version: '0.1.0' }));

function service(slug: string, overrides: Partial<ImputationService>): ImputationService {
  return {
    id: crypto.randomUUID(),
    slug,
    name: `Server ${slug}`,
    protocol: 'cloudgene',
    baseUrl: `https://${slug}.example.org`,
    appId: 'imputationserver2',
    description: `The ${slug} server`,
    homepage: null,
    location: { country: null, city: null, latitude: null, longitude: null },
    limits: {},
    supportedBuilds: ['hg19', 'hg38'],
    credentialType: 'cloudgene-token',
    isActive: true,
    protocolInfo: {},
    syncedAt: NOW,
    retiredAt: null,
    health: {
      status: 'unknown',
      statusSince: null,
      checkedAt: null,
      latencyMs: null,
      httpStatus: null,
      error: null,
      queueSize: null,
      runningJobs: null,
      consecutiveFailures: 0,
    },
    createdAt: NOW,
    updatedAt: NOW,
    ...overrides,
  };
}

const michigan = service('michigan', { protocolInfo: { appVersion: '2.0.12' } });
const legacy = service('legacy', { protocolInfo: {} });
const elwazi = service('elwazi', {
  protocol: 'ga4gh-wes',
  appId: null,
  baseUrl: 'https://wes.elwazi.example.org/ga4gh/wes/v1',
  credentialType: 'wes-bearer',
  protocolInfo: { wesVersions: ['1.0.0', '1.1.0', '1.0.1'] },
});
const bareWes = service('bare-wes', { protocol: 'ga4gh-wes', appId: null, credentialType: 'none', description: null });
const retired = service('retired', { retiredAt: NOW });
const SNAPSHOT: CatalogueSnapshot = { services: [michigan, legacy, elwazi, bareWes, retired], panels: [], builtAt: NOW };

let app: ServiceApp;
let token: string;
const get = (path: string, auth: string | null = token) =>
  app.request(path, { headers: auth === null ? {} : { authorization: `Bearer ${auth}` } });

beforeAll(async () => {
  app = createServiceApp({
    name: 'service-registry',
    version: '0.1.0',
    description: 'test',
    logger: createLogger({ level: 'silent' }),
    auth: { authenticator: testAuthenticator(createMemoryKv()) },
  });
  app.route('/', ga4ghRegistryRoutes({ snapshot: async () => SNAPSHOT, platform: PLATFORM, organization: ORG, version: '0.1.0' }));
  token = await tokenFor(crypto.randomUUID());
});

function expectRequiredFields(entry: any) {
  expect(ExternalServiceSchema.safeParse(entry).success).toBe(true);
  for (const key of ['id', 'name', 'version', 'url']) {
    expect(typeof entry[key]).toBe('string');
    expect(entry[key].length).toBeGreaterThan(0);
  }
  for (const key of ['group', 'artifact', 'version']) expect(entry.type[key].length).toBeGreaterThan(0);
  expect(entry.organization).toEqual(ORG);
  expect(entry.url).toMatch(/^https?:\/\/[^/]/);
  expect(entry.url.endsWith('/')).toBe(false);
}

describe('GET /ga4gh/registry/v1/services', () => {
  it('lists every non-retired catalogue server and the seven platform services with every required field', async () => {
    const res = await get(`${BASE}/services`);
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body).toHaveLength(4 + 7);
    for (const entry of body) expectRequiredFields(entry);
    const ids = body.map((e: any) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const slug of ['michigan', 'legacy', 'elwazi', 'bare-wes']) expect(ids).toContain(`org.federated-imputation.catalogue.${slug}`);
    expect(ids).not.toContain('org.federated-imputation.catalogue.retired');
    for (const { name } of PLATFORM) expect(ids).toContain(`org.federated-imputation.${name}`);
  });

  it('types WES nodes as org.ga4gh:wes at their highest reported version', async () => {
    const body = await json(await get(`${BASE}/services`));
    const wes = body.find((e: any) => e.id === 'org.federated-imputation.catalogue.elwazi');
    expect(wes.type).toEqual({ group: 'org.ga4gh', artifact: 'wes', version: '1.1.0' });
    expect(wes.url).toBe('https://wes.elwazi.example.org/ga4gh/wes/v1');
    expect(wes.version).toBe('1.1.0');
    expect(wes.environment).toBe('prod');
    const bare = body.find((e: any) => e.id === 'org.federated-imputation.catalogue.bare-wes');
    expect(bare.type).toEqual({ group: 'org.ga4gh', artifact: 'wes', version: '1.0.0' });
    expect(bare.version).toBe('unknown');
  });

  it('types Cloudgene servers as the platform’s cloudgene-imputation type', async () => {
    const body = await json(await get(`${BASE}/services`));
    const mis = body.find((e: any) => e.id === 'org.federated-imputation.catalogue.michigan');
    expect(mis.type).toEqual({ group: 'org.federated-imputation', artifact: 'cloudgene-imputation', version: '2.0.12' });
    expect(mis).toMatchObject({ name: 'Server michigan', description: 'The michigan server', version: '2.0.12', url: michigan.baseUrl });
    expect(mis.createdAt).toBe(NOW);
    expect(mis.updatedAt).toBe(NOW);
    const old = body.find((e: any) => e.id === 'org.federated-imputation.catalogue.legacy');
    expect(old.type).toEqual({ group: 'org.federated-imputation', artifact: 'cloudgene-imputation', version: '2' });
    expect(old.version).toBe('unknown');
  });

  it('gives each platform service its own type and a base URL that /service-info can be appended to', async () => {
    const body = await json(await get(`${BASE}/services`));
    const gateway = body.find((e: any) => e.id === 'org.federated-imputation.api-gateway');
    expect(gateway.type).toEqual({ group: 'org.federated-imputation', artifact: 'api-gateway', version: '0.1.0' });
    expect(gateway.url).toBe('http://127.0.0.1:8000');
    // The registry's own entry points at an app whose /service-info really answers.
    const self = body.find((e: any) => e.id === 'org.federated-imputation.service-registry');
    const info = await json(await app.request('/service-info'));
    expect(info.id).toBe(self.id);
    expect(info.type).toEqual(self.type);
  });

  it('answers 401 without a token', async () => {
    const res = await get(`${BASE}/services`, null);
    expect(res.status).toBe(401);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
  });
});

describe('GET /ga4gh/registry/v1/services/types', () => {
  it('lists each distinct type once, sorted', async () => {
    const res = await get(`${BASE}/services/types`);
    expect(res.status).toBe(200);
    const types = await json(res);
    const keys = types.map((t: any) => `${t.group}:${t.artifact}:${t.version}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys).toEqual([...keys].sort());
    for (const expected of [
      'org.ga4gh:wes:1.1.0',
      'org.ga4gh:wes:1.0.0',
      'org.federated-imputation:cloudgene-imputation:2.0.12',
      'org.federated-imputation:cloudgene-imputation:2',
      'org.federated-imputation:job-processor:0.1.0',
    ]) {
      expect(keys).toContain(expected);
    }
    expect(keys).toHaveLength(4 + 7);
  });

  it('is not taken for a service id', async () => {
    const types = await json(await get(`${BASE}/services/types`));
    expect(Array.isArray(types)).toBe(true);
    expect(types[0]).not.toHaveProperty('url');
  });
});

describe('GET /ga4gh/registry/v1/services/{serviceId}', () => {
  it('returns one entry by id', async () => {
    const res = await get(`${BASE}/services/org.federated-imputation.catalogue.elwazi`);
    expect(res.status).toBe(200);
    const entry = await json(res);
    expectRequiredFields(entry);
    expect(entry.type.artifact).toBe('wes');
  });

  it('answers 404 with status, title and detail for an unknown id', async () => {
    for (const id of ['org.federated-imputation.catalogue.nope', 'org.federated-imputation.catalogue.retired']) {
      const res = await get(`${BASE}/services/${id}`);
      expect(res.status).toBe(404);
      const body = await json(res);
      expect(body.status).toBe(404);
      expect(typeof body.title).toBe('string');
      expect(body.detail).toContain(id);
    }
  });

  it('answers 401 without a token', async () => {
    expect((await get(`${BASE}/services/org.federated-imputation.catalogue.michigan`, null)).status).toBe(401);
  });
});

describe('GET /ga4gh/registry/v1/service-info', () => {
  it('describes the registry as org.ga4gh service-registry 1.0.0', async () => {
    const res = await get(`${BASE}/service-info`);
    expect(res.status).toBe(200);
    const info = await json(res);
    expect(info.type).toEqual({ group: 'org.ga4gh', artifact: 'service-registry', version: '1.0.0' });
    expect(info.organization).toEqual(ORG);
    expect(info.version).toBe('0.1.0');
    expect(info.id.length).toBeGreaterThan(0);
    expect(info.name.length).toBeGreaterThan(0);
  });

  it('answers 401 without a token', async () => {
    expect((await get(`${BASE}/service-info`, null)).status).toBe(401);
  });
});

describe('GA4GH views', () => {
  it('documents the routes under the GA4GH tag with the ExternalService schema', async () => {
    const doc = await json(await app.request('/openapi.json'));
    // Service + url, as the registry spec composes it (allOf over ServiceInfo).
    const parts: any[] = doc.components.schemas.ExternalService.allOf;
    const required = parts.flatMap((part) => {
      const schema = part.$ref ? doc.components.schemas[part.$ref.split('/').pop()] : part;
      return schema.required ?? [];
    });
    expect(required).toEqual(expect.arrayContaining(['id', 'name', 'type', 'organization', 'version', 'url']));
    for (const path of ['/services', '/services/types', '/services/{serviceId}', '/service-info']) {
      const op = doc.paths[`${BASE}${path}`].get;
      expect(op.tags).toEqual(['GA4GH']);
      expect(op.security).toEqual([{ bearerAuth: [] }]);
    }
  });

  it('picks the highest version numerically, not as text', () => {
    expect(highestVersion(['1.0.0', '1.10.0', '1.9.1'])).toBe('1.10.0');
    expect(highestVersion([])).toBeUndefined();
  });

  it('ignores protocolInfo values of the wrong type', () => {
    const odd = catalogueEntry(service('odd', { protocol: 'ga4gh-wes', protocolInfo: { wesVersions: 'v1', appVersion: 3 } }), ORG);
    expect(odd.type).toEqual({ group: 'org.ga4gh', artifact: 'wes', version: '1.0.0' });
    expect(odd.version).toBe('unknown');
  });

  it('dedupes types given in any order', () => {
    const t = (artifact: string, version: string) => ({ type: { group: 'g', artifact, version } });
    expect(serviceTypes([t('b', '1'), t('a', '2'), t('a', '10'), t('b', '1')])).toEqual([
      { group: 'g', artifact: 'a', version: '2' },
      { group: 'g', artifact: 'a', version: '10' },
      { group: 'g', artifact: 'b', version: '1' },
    ]);
  });
});
