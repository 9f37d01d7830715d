/**
 * Panel discovery (sync) against the fake Cloudgene and WES servers, on the real registry tables;
 * and where the operator's token comes from (configuration, or the admin's vault via user-service).
 */
import { panels, services } from '@db/schema/registry.ts';
import { createServiceCredential, serviceTokenIssuer } from '@shared/auth.ts';
import type { Db } from '@shared/db.ts';
import { HttpProblem } from '@shared/errors.ts';
import { createHttpClient, UpstreamError } from '@shared/http-client.ts';
import { outboundPolicy } from '@shared/outbound.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { asc, eq } from 'drizzle-orm';
import { createOperatorCredentials, operatorTokensEnv, vaultRelease } from '../../services/service-registry/src/operator-credentials.ts';
import { inferPanelBuild, SyncReportSchema, syncService, type PanelSyncDeps } from '../../services/service-registry/src/panel-sync.ts';
import { parseAppForm } from '../../services/service-registry/src/sync/cloudgene-app-form.ts';
import { parseWesServiceInfo } from '../../services/service-registry/src/sync/wes-service-info.ts';
import type { ServiceRow } from '../../services/service-registry/src/domain.ts';
import { makeFakeJwt, startCloudgeneFake, type CloudgeneFake } from '../fakes/cloudgene.ts';
import { startWesFake, type WesFake } from '../fakes/wes.ts';
import { createTestDatabase, migrateAll, type TestDatabase } from '../support/test-database.ts';
import { createUserServiceHarness, serveUserService, type UserServiceHarness } from '../support/user-service.ts';

const run = Bun.randomUUIDv7().replaceAll('-', '').slice(-8);
const OPERATOR_TOKEN = makeFakeJwt('operator');
let testDb: TestDatabase;
let db: Db;
let cloudgene: CloudgeneFake;
const stops: (() => Promise<void>)[] = [];

function deps(overrides: Partial<PanelSyncDeps> = {}): PanelSyncDeps {
  return { db, policy: outboundPolicy(false), timeoutMs: 3_000, ...overrides };
}

async function createService(values: { protocol: 'cloudgene' | 'ga4gh-wes'; baseUrl: string; supportedBuilds?: string[]; appId?: string }): Promise<ServiceRow> {
  const slug = `sync-${values.protocol === 'cloudgene' ? 'cg' : 'wes'}-${run}-${Math.random().toString(36).slice(2, 8)}`;
  const [row] = await db
    .insert(services)
    .values({
      id: Bun.randomUUIDv7(),
      slug,
      name: `Sync test ${slug}`,
      protocol: values.protocol,
      baseUrl: values.baseUrl,
      appId: values.appId ?? 'imputationserver2',
      supportedBuilds: values.supportedBuilds ?? [],
      credentialType: values.protocol === 'cloudgene' ? 'cloudgene-token' : 'wes-bearer',
    })
    .returning();
  return row!;
}

const serviceRow = async (id: string) => (await db.select().from(services).where(eq(services.id, id)))[0]!;
const panelRows = (serviceId: string) => db.select().from(panels).where(eq(panels.serviceId, serviceId)).orderBy(asc(panels.externalId));

/** The service row and its panels, for "nothing was written" checks. */
async function snapshot(serviceId: string) {
  return { service: await serviceRow(serviceId), panels: await panelRows(serviceId) };
}

async function problemOf(promise: Promise<unknown>): Promise<HttpProblem> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof HttpProblem) return err;
    throw err;
  }
  throw new Error('expected the sync to fail');
}

beforeAll(async () => {
  testDb = await createTestDatabase();
  await migrateAll(testDb.database);
  db = testDb.database.db;
  cloudgene = await startCloudgeneFake({ tokens: { [OPERATOR_TOKEN]: 'operator' } });
  stops.push(() => cloudgene.stop());
}, 60_000);

afterAll(async () => {
  for (const stop of stops.reverse()) await stop();
  await testDb.drop();
});

describe('syncService for a Cloudgene server', () => {
  let service: ServiceRow;

  beforeAll(async () => {
    cloudgene.control.panels.push({
      id: 'topmed-r3',
      version: '1.0.0',
      label: 'TOPMed r3 (GRCh38/hg38)',
      build: 'hg38',
      populations: [{ id: 'all', label: 'All' }],
    });
    service = await createService({ protocol: 'cloudgene', baseUrl: cloudgene.url, supportedBuilds: ['hg19'] });
  });

  it("adds the server's panels with keys, versions, populations and builds, and stores what the app form says", async () => {
    cloudgene.control.clearRequests();
    const report = await syncService(deps(), service, OPERATOR_TOKEN);

    expect(SyncReportSchema.safeParse(report).success).toBe(true);
    expect(report.added.map((p) => p.externalId)).toEqual(['hapmap-2', '1000g-phase-3-v5', 'hrc-r1.1', 'topmed-r3']);
    expect(report).toMatchObject({ serviceId: service.id, protocol: 'cloudgene', updated: [], retired: [], restored: [], unchanged: 0, protocolInfoChanged: true });
    const byId = Object.fromEntries(report.added.map((p) => [p.externalId, p]));
    expect(byId['hapmap-2']).toMatchObject({
      externalKey: 'apps@hapmap-2@2.0.0',
      version: '2.0.0',
      displayName: 'HapMap 2',
      build: 'hg19', // no build in the label: the service's single supported build
      buildInferred: false,
      populations: [
        { id: 'eur', name: 'EUR', samples: null },
        { id: 'afr', name: 'AFR', samples: null },
        { id: 'asn', name: 'ASN', samples: null },
        { id: 'off', name: 'Off', samples: null },
      ],
      retiredAt: null,
    });
    expect(byId['1000g-phase-3-v5']).toMatchObject({ build: 'hg19', displayName: '1000G Phase 3 (GRCh37/hg19)' });
    expect(byId['topmed-r3']).toMatchObject({ build: 'hg38', externalKey: 'apps@topmed-r3@1.0.0', populations: [{ id: 'all', name: 'All', samples: null }] });

    const stored = await panelRows(service.id);
    expect(stored.map((p) => p.externalId)).toEqual(['1000g-phase-3-v5', 'hapmap-2', 'hrc-r1.1', 'topmed-r3']);
    expect(stored.find((p) => p.externalId === 'hrc-r1.1')).toMatchObject({ externalKey: 'apps@hrc-r1.1@2.0.0', build: 'hg19', retiredAt: null });
    expect(stored.every((p) => /^[0-9a-f]{8}-[0-9a-f]{4}-7/.test(p.id))).toBe(true);

    const row = await serviceRow(service.id);
    expect(row.protocolInfo).toEqual({
      appId: 'imputationserver2',
      appName: 'Genotype Imputation',
      appVersion: '2.0.12',
      builds: ['hg19', 'hg38'],
      phasing: ['beagle', 'eagle', 'no_phasing'],
      modes: ['imputation', 'qc_only'],
      r2Filters: ['0', '0.001', '0.1', '0.2', '0.3'],
    });
    expect(row.supportedBuilds).toEqual(['hg19', 'hg38']);
    expect(report.supportedBuilds).toEqual(['hg19', 'hg38']);
    expect(row.syncedAt?.toISOString()).toBe(report.syncedAt);

    // The token goes raw in X-Auth-Token; Cloudgene answers 401 to a Bearer header.
    const [request] = cloudgene.control.requestsTo('/api/v2/server/apps/imputationserver2', 'GET');
    expect(request?.headers['x-auth-token']).toBe(OPERATOR_TOKEN);
    expect(request?.headers.authorization).toBeUndefined();
  });

  it('reports everything unchanged when the server lists the same panels again', async () => {
    const before = await panelRows(service.id);
    const report = await syncService(deps(), service, OPERATOR_TOKEN);
    expect(report).toMatchObject({ added: [], updated: [], retired: [], restored: [], unchanged: 4, protocolInfoChanged: false });
    const after = await panelRows(service.id);
    expect(after.map((p) => [p.id, p.updatedAt.getTime()])).toEqual(before.map((p) => [p.id, p.updatedAt.getTime()]));
  });

  it('updates a renamed panel and changed populations, listing the changes and keeping known sample counts', async () => {
    const hapmap = (await panelRows(service.id)).find((p) => p.externalId === 'hapmap-2')!;
    await db
      .update(panels)
      .set({ populations: [{ id: 'eur', name: 'EUR', samples: 120 }, { id: 'afr', name: 'AFR', samples: 90 }, { id: 'asn', name: 'ASN', samples: 60 }, { id: 'off', name: 'Off', samples: null }] })
      .where(eq(panels.id, hapmap.id));
    const upstream = cloudgene.control.panels.find((p) => p.id === 'hapmap-2')!;
    upstream.label = 'HapMap 2 (legacy)';
    upstream.populations = [
      { id: 'eur', label: 'European' },
      { id: 'afr', label: 'AFR' },
      { id: 'off', label: 'Off' },
    ];

    const report = await syncService(deps(), service, OPERATOR_TOKEN);
    expect(report.added).toEqual([]);
    expect(report.unchanged).toBe(3);
    expect(report.updated).toHaveLength(1);
    const [update] = report.updated;
    expect(update!.panel).toMatchObject({ id: hapmap.id, displayName: 'HapMap 2 (legacy)' });
    expect(Object.keys(update!.changes).sort()).toEqual(['displayName', 'populations']);
    expect(update!.changes.displayName).toEqual({ from: 'HapMap 2', to: 'HapMap 2 (legacy)' });
    const newPopulations = [
      { id: 'eur', name: 'European', samples: 120 },
      { id: 'afr', name: 'AFR', samples: 90 },
      { id: 'off', name: 'Off', samples: null },
    ];
    expect(update!.changes.populations!.to).toEqual(newPopulations);
    expect((update!.changes.populations!.from as { id: string }[]).map((p) => p.id)).toEqual(['eur', 'afr', 'asn', 'off']);

    const stored = (await panelRows(service.id)).find((p) => p.externalId === 'hapmap-2')!;
    expect(stored).toMatchObject({ id: hapmap.id, displayName: 'HapMap 2 (legacy)', build: 'hg19', populations: newPopulations });
  });

  it('updates the key and version when the server installs a new panel version', async () => {
    cloudgene.control.panels.find((p) => p.id === 'hrc-r1.1')!.version = '2.1.0';
    const report = await syncService(deps(), service, OPERATOR_TOKEN);
    expect(report.updated.map((u) => u.changes)).toEqual([
      { externalKey: { from: 'apps@hrc-r1.1@2.0.0', to: 'apps@hrc-r1.1@2.1.0' }, version: { from: '2.0.0', to: '2.1.0' } },
    ]);
    expect((await panelRows(service.id)).find((p) => p.externalId === 'hrc-r1.1')).toMatchObject({ externalKey: 'apps@hrc-r1.1@2.1.0', version: '2.1.0' });
  });

  it('retires a panel the server no longer lists, keeping its row, and restores it when it comes back', async () => {
    const upstream = cloudgene.control.panels.find((p) => p.id === '1000g-phase-3-v5')!;
    const original = (await panelRows(service.id)).find((p) => p.externalId === '1000g-phase-3-v5')!;
    cloudgene.control.panels.splice(cloudgene.control.panels.indexOf(upstream), 1);

    const retiring = await syncService(deps(), service, OPERATOR_TOKEN);
    expect(retiring.retired.map((p) => p.id)).toEqual([original.id]);
    expect(retiring.retired[0]!.retiredAt).toBe(retiring.syncedAt);
    expect(retiring.unchanged).toBe(3);
    const retiredRow = (await panelRows(service.id)).find((p) => p.id === original.id)!;
    expect(retiredRow.retiredAt?.toISOString()).toBe(retiring.syncedAt);

    const again = await syncService(deps(), service, OPERATOR_TOKEN);
    expect(again).toMatchObject({ retired: [], restored: [], added: [], unchanged: 3 });

    cloudgene.control.panels.push(upstream);
    const restoring = await syncService(deps(), service, OPERATOR_TOKEN);
    expect(restoring.restored.map((p) => p.id)).toEqual([original.id]);
    expect(restoring).toMatchObject({ added: [], updated: [], retired: [] });
    expect((await panelRows(service.id)).find((p) => p.id === original.id)).toMatchObject({ retiredAt: null, externalKey: 'apps@1000g-phase-3-v5@2.0.0' });
  });

  it('assumes hg38 for a panel whose build nothing names, says so, and writes the app version the server reports', async () => {
    const other = await startCloudgeneFake({
      tokens: { [OPERATOR_TOKEN]: 'operator' },
      appVersion: '2.1.3',
      panels: [{ id: 'h3africa-v6', version: '1.0.0', label: 'H3Africa v6', build: 'hg38', populations: [{ id: 'afr', label: 'African' }] }],
    });
    stops.push(() => other.stop());
    const noBuilds = await createService({ protocol: 'cloudgene', baseUrl: other.url, supportedBuilds: [] });
    const report = await syncService(deps(), noBuilds, OPERATOR_TOKEN);
    expect(report.added).toHaveLength(1);
    expect(report.added[0]).toMatchObject({ externalId: 'h3africa-v6', build: 'hg38', buildInferred: true });
    expect(report.notes.join(' ')).toContain('h3africa-v6');
    expect((await serviceRow(noBuilds.id)).protocolInfo).toMatchObject({ appVersion: '2.1.3' });
  });

  it('rejects an unknown token with 502 operator_credential_rejected and writes nothing', async () => {
    const fresh = await createService({ protocol: 'cloudgene', baseUrl: cloudgene.url, supportedBuilds: ['hg19'] });
    const problem = await problemOf(syncService(deps(), fresh, makeFakeJwt('nobody')));
    expect([problem.status, problem.code]).toEqual([502, 'operator_credential_rejected']);
    const after = await snapshot(fresh.id);
    expect(after.panels).toEqual([]);
    expect(after.service).toEqual(fresh);
  });

  it('answers 409 operator_credential_missing without a token, naming how to configure one, and calls nothing', async () => {
    cloudgene.control.clearRequests();
    const problem = await problemOf(syncService(deps(), service, null));
    expect([problem.status, problem.code]).toEqual([409, 'operator_credential_missing']);
    expect(problem.detail).toContain('OPERATOR_TOKENS');
    expect(problem.detail).toContain(service.slug);
    expect(cloudgene.control.requests).toEqual([]);
  });

  it('answers 409 external_calls_disabled for a non-loopback server when external calls are off, without calling it', async () => {
    const remote = await createService({ protocol: 'cloudgene', baseUrl: 'https://imputationserver.sph.umich.edu' });
    const calls: string[] = [];
    const recordingFetch = (async (input: string | URL | Request) => {
      calls.push(String(input));
      return new Response('{}');
    }) as typeof fetch;
    const problem = await problemOf(syncService(deps({ fetch: recordingFetch }), remote, OPERATOR_TOKEN));
    expect([problem.status, problem.code]).toEqual([409, 'external_calls_disabled']);
    expect(calls).toEqual([]);
    expect((await snapshot(remote.id)).service).toEqual(remote);
  });

  it('answers 504 upstream_timeout when the server hangs, and writes nothing', async () => {
    const before = await snapshot(service.id);
    cloudgene.control.addFault({ kind: 'hang', path: '/api/v2/server/apps', times: 1 });
    try {
      const problem = await problemOf(syncService(deps({ timeoutMs: 150 }), service, OPERATOR_TOKEN));
      expect([problem.status, problem.code]).toEqual([504, 'upstream_timeout']);
    } finally {
      cloudgene.control.clearFaults();
    }
    expect(await snapshot(service.id)).toEqual(before);
  });

  it('answers 502 upstream_malformed for a broken JSON body, and writes nothing', async () => {
    const before = await snapshot(service.id);
    cloudgene.control.addFault({ kind: 'malformedJson', path: '/api/v2/server/apps', times: 1 });
    const problem = await problemOf(syncService(deps(), service, OPERATOR_TOKEN));
    expect([problem.status, problem.code]).toEqual([502, 'upstream_malformed']);
    expect(await snapshot(service.id)).toEqual(before);
  });

  it('answers 502 upstream_error when the server fails with 500', async () => {
    cloudgene.control.addFault({ kind: 'status500', path: '/api/v2/server/apps', times: 1 });
    const problem = await problemOf(syncService(deps(), service, OPERATOR_TOKEN));
    expect([problem.status, problem.code, problem.extensions.upstreamStatus]).toEqual([502, 'upstream_error', 500]);
  });

  it('does not follow a redirect (it could leave the approved host) and answers 502 upstream_error', async () => {
    const fresh = await createService({ protocol: 'cloudgene', baseUrl: cloudgene.url });
    const redirecting = (async () => new Response(null, { status: 302, headers: { location: 'https://elsewhere.example.org/api' } })) as unknown as typeof fetch;
    const problem = await problemOf(syncService(deps({ fetch: redirecting }), fresh, OPERATOR_TOKEN));
    expect([problem.status, problem.code]).toEqual([502, 'upstream_error']);
    expect(problem.detail).toContain('not followed');
  });

  it('answers 502 app_not_installed when the server does not host the app', async () => {
    const wrongApp = await createService({ protocol: 'cloudgene', baseUrl: cloudgene.url, appId: 'minimac4' });
    const problem = await problemOf(syncService(deps(), wrongApp, OPERATOR_TOKEN));
    expect([problem.status, problem.code]).toEqual([502, 'app_not_installed']);
    expect(await panelRows(wrongApp.id)).toEqual([]);
  });

  it('answers 502 upstream_unreachable when nothing listens at the address', async () => {
    const gone = await createService({ protocol: 'cloudgene', baseUrl: 'http://127.0.0.1:1' });
    const problem = await problemOf(syncService(deps(), gone, OPERATOR_TOKEN));
    expect([problem.status, problem.code]).toEqual([502, 'upstream_unreachable']);
  });

  it('answers 502 upstream_malformed for JSON that is not an app form, and writes nothing', async () => {
    const fresh = await createService({ protocol: 'cloudgene', baseUrl: cloudgene.url });
    const notAForm = (async () => Response.json({ message: 'hello', success: true })) as unknown as typeof fetch;
    const problem = await problemOf(syncService(deps({ fetch: notAForm }), fresh, OPERATOR_TOKEN));
    expect([problem.status, problem.code]).toEqual([502, 'upstream_malformed']);
    expect(await snapshot(fresh.id)).toEqual({ service: fresh, panels: [] });
  });
});

describe('syncService for a GA4GH WES node', () => {
  async function wesNode(options: Parameters<typeof startWesFake>[0]): Promise<WesFake> {
    const fake = await startWesFake(options);
    stops.push(() => fake.stop());
    return fake;
  }

  it('writes the 1.1 service-info (workflow types, versions, engines) and leaves the panels alone', async () => {
    const wes = await wesNode({ version: '1.1.0', tokens: ['wes-operator'] });
    const service = await createService({ protocol: 'ga4gh-wes', baseUrl: wes.url, supportedBuilds: ['hg38'] });
    const [panel] = await db
      .insert(panels)
      .values({ id: Bun.randomUUIDv7(), serviceId: service.id, externalId: 'h3a-afr', displayName: 'H3Africa AFR', build: 'hg38' })
      .returning();

    const report = await syncService(deps(), service, 'wes-operator');
    expect(SyncReportSchema.safeParse(report).success).toBe(true);
    expect(report).toMatchObject({ protocol: 'ga4gh-wes', added: [], updated: [], retired: [], restored: [], unchanged: 1, protocolInfoChanged: true, supportedBuilds: ['hg38'] });
    expect(report.notes.join(' ')).toContain('does not report reference panels');
    const expected = {
      serviceInfoShape: '1.1',
      wesVersions: ['1.1.0'],
      workflowTypes: { Nextflow: ['22.10', '23.04'], Snakemake: ['7.32'] },
      engines: { nextflow: ['23.04.1'] },
      filesystemProtocols: ['http', 'https', 'file'],
      authInstructionsUrl: 'https://fake-wes.example.org/auth',
      name: 'Fake WES',
      version: '0.0.1-fake',
    };
    expect(report.protocolInfo).toEqual(expected);
    const row = await serviceRow(service.id);
    expect(row.protocolInfo).toEqual(expected);
    expect(row.syncedAt?.toISOString()).toBe(report.syncedAt);
    expect(await panelRows(service.id)).toEqual([panel!]);
    expect(wes.control.requests.at(-1)).toMatchObject({ path: '/ga4gh/wes/v1/service-info', authorization: 'Bearer wes-operator' });

    const again = await syncService(deps(), service, 'wes-operator');
    expect(again.protocolInfoChanged).toBe(false);
  });

  it('reads a 1.0 service-info whose workflow_type_versions are bare arrays, without a token when none is needed', async () => {
    const wes = await wesNode({ version: '1.0.0', workflowTypeVersionsShape: 'array', workflowTypes: { CWL: ['v1.0', 'v1.2'], WDL: ['1.0'] } });
    const service = await createService({ protocol: 'ga4gh-wes', baseUrl: wes.url });
    const report = await syncService(deps(), service, null);
    expect(report.protocolInfo).toEqual({
      serviceInfoShape: '1.0',
      wesVersions: ['1.0.0'],
      workflowTypes: { CWL: ['v1.0', 'v1.2'], WDL: ['1.0'] },
      engines: { nextflow: ['23.04.1'] },
      filesystemProtocols: ['http', 'https', 'file'],
      authInstructionsUrl: 'https://fake-wes.example.org/auth',
    });
    expect(wes.control.requests.at(-1)?.authorization).toBeNull();
  });

  it('answers 409 operator_credential_missing when the node wants a token and none is configured, 502 when it refuses one', async () => {
    const wes = await wesNode({ version: '1.1.0', tokens: ['right-token'] });
    const service = await createService({ protocol: 'ga4gh-wes', baseUrl: wes.url });
    const missing = await problemOf(syncService(deps(), service, null));
    expect([missing.status, missing.code]).toEqual([409, 'operator_credential_missing']);
    const rejected = await problemOf(syncService(deps(), service, 'wrong-token'));
    expect([rejected.status, rejected.code]).toEqual([502, 'operator_credential_rejected']);
    expect(await serviceRow(service.id)).toEqual(service);
  });

  it('answers 502 upstream_malformed for a truncated body and 504 for a hung node, writing nothing', async () => {
    const wes = await wesNode({ version: '1.1.0', behavior: { mode: 'malformedJson', match: '/service-info', times: 1 } });
    const service = await createService({ protocol: 'ga4gh-wes', baseUrl: wes.url });
    const malformed = await problemOf(syncService(deps(), service, null));
    expect([malformed.status, malformed.code]).toEqual([502, 'upstream_malformed']);
    wes.control.setBehavior({ mode: 'hang', match: '/service-info', times: 1 });
    const hung = await problemOf(syncService(deps({ timeoutMs: 150 }), service, null));
    expect([hung.status, hung.code]).toEqual([504, 'upstream_timeout']);
    expect(await serviceRow(service.id)).toEqual(service);
  });
});

describe('parseAppForm', () => {
  const refpanel = (values: unknown[]) => ({ id: 'refpanel', type: 'app_list', values });

  it('tolerates a form without optional lists or population binding', () => {
    const form = parseAppForm({ id: 'imputationserver2', name: 'Imputation', version: '2.0.0', params: [refpanel([{ key: 'apps@hapmap-2@2.0.0', value: 'HapMap 2' }])] });
    expect(form).toEqual({
      appId: 'imputationserver2',
      appName: 'Imputation',
      appVersion: '2.0.0',
      panels: [{ externalId: 'hapmap-2', externalKey: 'apps@hapmap-2@2.0.0', version: '2.0.0', displayName: 'HapMap 2', populations: [] }],
      builds: [],
      phasing: [],
      modes: [],
      r2Filters: [],
    });
  });

  it('keeps the latest of two installed versions of one panel', () => {
    const form = parseAppForm({
      id: 'imputationserver2',
      params: [refpanel([{ key: 'apps@hrc@2.0.10', value: 'HRC new' }, { key: 'apps@hrc@2.0.9', value: 'HRC old' }, { key: 'topmed-r3', value: 'TOPMed' }])],
    });
    expect(form.panels.map((p) => [p.externalId, p.version, p.displayName])).toEqual([
      ['hrc', '2.0.10', 'HRC new'],
      ['topmed-r3', null, 'TOPMed'],
    ]);
  });

  it('rejects bodies that are not an app form with upstream_malformed', () => {
    for (const body of [null, [], 'text', { id: 'x' }, { id: 'x', params: [{ id: 'build', type: 'list', values: [] }] }, { params: [refpanel([])] }]) {
      expect(() => parseAppForm(body)).toThrow(expect.objectContaining({ status: 502, code: 'upstream_malformed' }));
    }
  });
});

describe('parseWesServiceInfo', () => {
  it('reads engines given as strings, objects or arrays and ignores junk entries', () => {
    const info = parseWesServiceInfo({
      workflow_type_versions: { Nextflow: { workflow_type_version: ['23.04', 7, ''] }, CWL: 'v1.2', __proto__: ['x'] },
      workflow_engine_versions: { nextflow: '23.04.1', cromwell: { workflow_engine_version: ['85'] }, toil: ['5.12'] },
      supported_wes_versions: '1.0.0',
    });
    expect(info.workflowTypes).toEqual({ Nextflow: ['23.04'], CWL: ['v1.2'] });
    expect(info.engines).toEqual({ nextflow: ['23.04.1'], cromwell: ['85'], toil: ['5.12'] });
    expect(info).toMatchObject({ serviceInfoShape: '1.0', wesVersions: ['1.0.0'], filesystemProtocols: [], authInstructionsUrl: null });
  });

  it('rejects a body without workflow_type_versions with upstream_malformed', () => {
    for (const body of [null, {}, { workflow_type_versions: [] }, { id: 'org.example', type: {} }]) {
      expect(() => parseWesServiceInfo(body)).toThrow(expect.objectContaining({ status: 502, code: 'upstream_malformed' }));
    }
  });
});

describe('inferPanelBuild', () => {
  it('reads the label first, then the stored build, then a single service build, else assumes hg38', () => {
    expect(inferPanelBuild('TOPMed (b38)', 'hg19', ['hg19'])).toEqual({ build: 'hg38', inferred: false });
    expect(inferPanelBuild('HRC r1.1 (GRCh37/hg19)', undefined, [])).toEqual({ build: 'hg19', inferred: false });
    expect(inferPanelBuild('lifted hg19 → hg38', 'hg19', [])).toEqual({ build: 'hg19', inferred: false });
    expect(inferPanelBuild('HapMap 2', undefined, ['hg19'])).toEqual({ build: 'hg19', inferred: false });
    expect(inferPanelBuild('HapMap 2', undefined, ['hg19', 'hg38'])).toEqual({ build: 'hg38', inferred: true });
    expect(inferPanelBuild('HapMap 2', undefined, ['hg19', 'hg38'], 'hg19')).toEqual({ build: 'hg19', inferred: false });
    expect(inferPanelBuild('HapMap 2', 'hg38', ['hg19', 'hg38'], 'hg19')).toEqual({ build: 'hg38', inferred: false });
    expect(inferPanelBuild('GRCh38.p14 panel', undefined, [])).toEqual({ build: 'hg38', inferred: false });
    expect(inferPanelBuild('Lab38 panel', undefined, [])).toEqual({ build: 'hg38', inferred: true });
    expect(inferPanelBuild('Lab37 panel', undefined, [])).toEqual({ build: 'hg38', inferred: true });
  });
});

describe('operator credentials', () => {
  it('uses the configured token first and never asks the vault for it', async () => {
    const asked: [string, string][] = [];
    const credentials = createOperatorCredentials({
      configured: { michigan: 'configured-token' },
      release: async (userId, slug) => {
        asked.push([userId, slug]);
        return `vault-token-of-${userId}`;
      },
    });
    expect(await credentials.forSync('michigan', 'admin-1')).toBe('configured-token');
    expect(asked).toEqual([]);
    expect(await credentials.forSync('topmed', 'admin-1')).toBe('vault-token-of-admin-1');
    expect(asked).toEqual([['admin-1', 'topmed']]);
    expect(credentials.forProbe('michigan')).toBe('configured-token');
    expect(credentials.forProbe('topmed')).toBeUndefined();
    expect(await createOperatorCredentials({ configured: {} }).forSync('topmed', 'admin-1')).toBeNull();
  });

  it('parses OPERATOR_TOKENS as a JSON object of slug → token', () => {
    expect(operatorTokensEnv.OPERATOR_TOKENS.parse(undefined)).toEqual({});
    expect(operatorTokensEnv.OPERATOR_TOKENS.parse('{"michigan":"abc"}')).toEqual({ michigan: 'abc' });
    expect(operatorTokensEnv.OPERATOR_TOKENS.safeParse('not json').success).toBe(false);
    expect(operatorTokensEnv.OPERATOR_TOKENS.safeParse('{"Bad Slug":"abc"}').success).toBe(false);
    expect(operatorTokensEnv.OPERATOR_TOKENS.safeParse('{"michigan":""}').success).toBe(false);
  });

  describe('vaultRelease against user-service', () => {
    let harness: UserServiceHarness;
    let served: { url: string; stop(): Promise<void> };
    const registrySecret = `registry-secret-${crypto.randomUUID()}`;

    beforeAll(async () => {
      harness = await createUserServiceHarness();
      // The harness configures job-processor only; service-registry gets its own secret here, read per request.
      harness.config.serviceSecrets.set('service-registry', registrySecret);
      served = serveUserService(harness.app);
    }, 60_000);

    afterAll(async () => {
      await served?.stop();
      await harness?.close();
    });

    function release() {
      const client = createHttpClient({ service: 'user-service', baseUrl: served.url, timeoutMs: 3_000, retries: 0 });
      return vaultRelease(client, createServiceCredential(serviceTokenIssuer(client, 'service-registry', registrySecret)));
    }

    it("returns an admin's stored token, null when they have none, and refuses a researcher's", async () => {
      const admin = await harness.register();
      await harness.domain.admin.update(admin.id, { roles: ['admin'] });
      const session = await harness.login(admin.username, admin.password);
      const slug = `vault-sync-${run}`;
      const put = await harness.request(`/users/me/credentials/${slug}`, { method: 'PUT', token: session.accessToken, json: { type: 'cloudgene-token', token: 'admin-operator-token' } });
      expect(put.status).toBe(201);

      const credentials = createOperatorCredentials({ configured: {}, release: release() });
      expect(await credentials.forSync(slug, admin.id)).toBe('admin-operator-token');
      expect(await credentials.forSync(`unknown-${run}`, admin.id)).toBeNull();

      const { user, session: researcherSession } = await harness.signedInUser();
      await harness.request(`/users/me/credentials/${slug}`, { method: 'PUT', token: researcherSession.accessToken, json: { type: 'cloudgene-token', token: 'researcher-token' } });
      const refused = await credentials.forSync(slug, user.id).catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(UpstreamError);
      expect((refused as UpstreamError).upstreamStatus).toBe(403);
    });
  });
});
