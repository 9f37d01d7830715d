/**
 * job-processor with the real services it depends on, each on its own port: user-service (vault,
 * service tokens), service-registry (catalogue pointing at the Cloudgene and WES fakes) and
 * file-manager (inputs and results), plus the two fakes. Users are real user-service accounts; the
 * registry, file-manager and job-processor verify tokens with the test identity (tests/support/test-identity.ts).
 */
import type { ServiceApp } from '@shared/app.ts';
import { createServiceCredential, serviceTokenIssuer, type ServiceCredential } from '@shared/auth.ts';
import { createHttpClient } from '@shared/http-client.ts';
import { createMemoryKv } from '@shared/kv-memory.ts';
import { createLogger } from '@shared/log.ts';
import { createSecretBox, type SecretBox } from '@shared/secret-box.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp as createJobProcessorApp } from '../../services/job-processor/src/app.ts';
import { filesClient, registryClient, vaultClient, type FilesClient, type RegistryClient, type VaultClient } from '../../services/job-processor/src/platform-clients.ts';
import { makeFakeJwt, startCloudgeneFake, type CloudgeneFake } from '../fakes/cloudgene.ts';
import { startWesFake, type WesFake } from '../fakes/wes.ts';
import { buildFileManager, serveFileManager } from './file-manager.ts';
import { json } from './json.ts';
import { createRegistryHarness, type RegistryHarness } from './service-registry.ts';
import { migrateAll } from './test-database.ts';
import { serviceTokenFor, testAuthenticator, tokenFor } from './test-identity.ts';
import { createUserServiceHarness, serveUserService, type UserServiceHarness } from './user-service.ts';
import { bgzip, makeVcf } from './vcf.ts';

export interface PlatformUser {
  id: string;
  /** A token job-processor, file-manager and the registry accept for this user. */
  token: string;
  /** A user-service session token (for the vault API). */
  sessionToken: string;
}

export interface JobPlatform {
  cloudgene: CloudgeneFake;
  wes: WesFake;
  /** The Cloudgene fake's token for the default user. */
  cloudgeneToken: string;
  users: UserServiceHarness;
  registry: RegistryHarness;
  fileManager: ServiceApp;
  fileManagerUrl: string;
  jobProcessor: ServiceApp;
  box: SecretBox;
  clients: { registry: RegistryClient; files: FilesClient; vault: VaultClient };
  /** Service ids of the catalogue entries pointing at the fakes. */
  services: { cloudgene: string; wes: string };
  newUser(options?: { credentials?: boolean }): Promise<PlatformUser>;
  upload(user: PlatformUser, options?: { samples?: number; name?: string; chromosome?: string }): Promise<string>;
  call(method: string, path: string, token: string | null, body?: unknown, headers?: Record<string, string>): Promise<Response>;
  close(): Promise<void>;
}

export async function createJobPlatform(): Promise<JobPlatform> {
  const logger = createLogger({ level: 'silent' });
  const cloudgeneToken = makeFakeJwt('researcher');
  const cloudgene = await startCloudgeneFake({ tokens: { [cloudgeneToken]: 'researcher' }, progression: 'manual' });
  const wes = await startWesFake({ version: '1.1.0', autoAdvance: 'manual' });

  const users = await createUserServiceHarness();
  await migrateAll(users.testDb.database);
  const userService = serveUserService(users.app);
  const registry = await createRegistryHarness();
  await registry.clear();
  const registryServer = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: registry.app.fetch });

  const storageDir = await mkdtemp(join(tmpdir(), 'fip-jobs-files-'));
  const kv = createMemoryKv();
  // One KV for file-manager's and job-processor's token checks, as in a deployment.
  const fileManager = buildFileManager({ database: users.testDb.database, storageDir, authenticator: testAuthenticator(kv) });
  const fileServer = serveFileManager(fileManager);
  const fileManagerUrl = fileServer.url;

  // Toward the test-identity services, job-processor presents a test-identity service token; toward
  // user-service, a real one issued for its secret.
  const testCredential: ServiceCredential = { authorization: async () => `Bearer ${await serviceTokenFor('job-processor')}` };
  const vaultCredential = createServiceCredential(
    serviceTokenIssuer(createHttpClient({ service: 'user-service', baseUrl: userService.url }), 'job-processor', users.serviceSecret),
  );
  const http = (service: string, baseUrl: string) => createHttpClient({ service, baseUrl, timeoutMs: 5_000, retries: 0 });
  const clients = {
    registry: registryClient(http('service-registry', `http://127.0.0.1:${registryServer.port}`), testCredential),
    files: filesClient(http('file-manager', fileManagerUrl), testCredential, fileManagerUrl),
    vault: vaultClient(http('user-service', userService.url), vaultCredential),
  };
  const box = await createSecretBox([{ id: 'jobs-test', key: crypto.getRandomValues(new Uint8Array(32)) }]);
  const jobProcessor = createJobProcessorApp({
    logger,
    readyTimeoutMs: 1000,
    organization: { name: 'test', url: 'https://example.org' },
    authenticator: testAuthenticator(kv),
    database: users.testDb.database,
    box,
    ...clients,
  });

  const add = async (body: Record<string, unknown>) => {
    const res = await registry.call('POST', '/services', registry.tokens.admin, body);
    if (res.status !== 201) throw new Error(`registry refused ${JSON.stringify(body)}: ${await res.text()}`);
    return (await json(res)).id as string;
  };
  const populations = [
    { id: 'eur', name: 'EUR' },
    { id: 'afr', name: 'AFR' },
    { id: 'off', name: 'Off' },
  ];
  const services = {
    cloudgene: await add({
      slug: 'fake-cloudgene',
      name: 'Fake Cloudgene',
      protocol: 'cloudgene',
      baseUrl: cloudgene.url,
      supportedBuilds: ['hg19', 'hg38'],
      limits: { minSamples: 2, maxSamples: 100, maxActiveJobsPerUser: 2 },
      panels: [{ externalId: 'hapmap-2', version: '2.0.0', displayName: 'HapMap 2', build: 'hg19', populations }],
    }),
    wes: await add({
      slug: 'fake-wes',
      name: 'Fake WES',
      protocol: 'ga4gh-wes',
      baseUrl: wes.url,
      supportedBuilds: ['hg19', 'hg38'],
      credentialType: 'none',
      panels: [{ externalId: 'hapmap-2', displayName: 'HapMap 2 (WES)', build: 'hg19', populations }],
    }),
  };

  async function newUser(options: { credentials?: boolean } = {}): Promise<PlatformUser> {
    const account = await users.register();
    const session = await users.login(account.username, account.password);
    if (options.credentials ?? true) {
      const res = await users.request('/users/me/credentials/fake-cloudgene', { method: 'PUT', token: session.accessToken, json: { type: 'cloudgene-token', token: cloudgeneToken } });
      if (res.status !== 200 && res.status !== 201) throw new Error(`vault refused the credential: ${res.status} ${await res.text()}`);
    }
    return { id: session.user.id, token: await tokenFor(session.user.id), sessionToken: session.accessToken };
  }

  async function upload(user: PlatformUser, options: { samples?: number; name?: string; chromosome?: string } = {}): Promise<string> {
    const bytes = bgzip(makeVcf({ samples: options.samples ?? 5, chromosome: options.chromosome ?? '20' }));
    const res = await fileManager.request(`/files?name=${encodeURIComponent(options.name ?? 'cohort.chr20.vcf.gz')}&build=hg19`, {
      method: 'POST',
      headers: { authorization: `Bearer ${user.token}`, 'content-type': 'application/octet-stream' },
      body: bytes,
    });
    if (res.status !== 201) throw new Error(`upload failed: ${res.status} ${await res.text()}`);
    return (await json(res)).id as string;
  }

  return {
    cloudgene,
    wes,
    cloudgeneToken,
    users,
    registry,
    fileManager,
    fileManagerUrl,
    jobProcessor,
    box,
    clients,
    services,
    newUser,
    upload,
    async call(method, path, token, body, headers = {}) {
      const h: Record<string, string> = { ...headers };
      if (token) h.authorization = `Bearer ${token}`;
      if (body !== undefined) h['content-type'] = 'application/json';
      return jobProcessor.request(path, { method, headers: h, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
    },
    async close() {
      await registryServer.stop(true);
      await fileServer.stop();
      await userService.stop();
      await registry.close();
      await users.close();
      await cloudgene.stop();
      await wes.stop();
      await rm(storageDir, { recursive: true, force: true });
    },
  };
}
