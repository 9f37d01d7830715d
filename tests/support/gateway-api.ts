/**
 * The platform's public API as a user drives it, through the gateway only: register and sign in, add
 * the fake imputation servers to the catalogue (as an admin), store credentials in the vault, upload a
 * generated VCF. Every helper throws with the status and body when the platform answers otherwise than
 * a working platform would, so a broken step names itself. Used by tests/e2e and bench/platform-load.ts.
 */
import { bgzip, makeVcf } from './vcf.ts';

export interface ApiUser {
  readonly username: string;
  readonly accessToken: string;
  /** A request through the gateway with this user's token; JSON bodies are serialised. */
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Response>;
  /** `call`, then the JSON body; throws unless the status is `expected`. */
  expectJson<T = any>(method: string, path: string, expected: number, body?: unknown): Promise<T>;
}

/** Signs in with a username (or email) and password. */
export async function signIn(gatewayUrl: string, login: string, password: string): Promise<ApiUser> {
  const res = await post(gatewayUrl, '/api/auth/login', { login, password });
  if (res.status !== 200) throw new Error(`login ${login}: ${res.status} ${await res.text()}`);
  const { accessToken } = (await res.json()) as { accessToken: string };
  return apiUser(gatewayUrl, login, accessToken);
}

/** Registers a researcher account, then signs in. */
export async function registerAndSignIn(gatewayUrl: string, username: string, password = 'Imputation-Trial-Passphrase-5'): Promise<ApiUser> {
  const res = await post(gatewayUrl, '/api/auth/register', { username, email: `${username}@example.org`, password, firstName: 'E', lastName: 'Two' });
  if (res.status !== 201) throw new Error(`register ${username}: ${res.status} ${await res.text()}`);
  return signIn(gatewayUrl, username, password);
}

/** A user handle for an access token (also a personal `fip_` API token). */
export function apiUser(gatewayUrl: string, username: string, accessToken: string): ApiUser {
  const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const h: Record<string, string> = { authorization: `Bearer ${accessToken}`, ...headers };
    if (body !== undefined && !(body instanceof Uint8Array)) h['content-type'] ??= 'application/json';
    const payload = body === undefined ? undefined : body instanceof Uint8Array ? body : JSON.stringify(body);
    return fetch(`${gatewayUrl}${path}`, { method, headers: h, body: payload });
  };
  return {
    username,
    accessToken,
    call,
    async expectJson(method, path, expected, body) {
      const res = await call(method, path, body);
      const text = await res.text();
      if (res.status !== expected) throw new Error(`${method} ${path}: expected ${expected}, got ${res.status} ${text}`);
      return text ? JSON.parse(text) : undefined;
    },
  };
}

export interface FakeServerUrls {
  /** Base URL of a Cloudgene fake (tests/fakes/cloudgene.ts). */
  cloudgene: string;
  /** Base URL of a WES fake's API, `.../ga4gh/wes/v1` (tests/fakes/wes.ts). */
  wes: string;
}

export const FAKE_SLUGS = { cloudgene: 'e2e-cloudgene', wes: 'e2e-wes' } as const;
const POPULATIONS = [
  { id: 'eur', name: 'EUR' },
  { id: 'afr', name: 'AFR' },
];

/** Adds the two fakes to the catalogue as an admin; answers their service ids. */
export async function addFakeServers(admin: ApiUser, urls: FakeServerUrls, slugs: { cloudgene: string; wes: string } = FAKE_SLUGS): Promise<{ cloudgene: string; wes: string }> {
  const cloudgene = await admin.expectJson('POST', '/api/services', 201, {
    slug: slugs.cloudgene,
    name: 'Cloudgene fake',
    protocol: 'cloudgene',
    baseUrl: urls.cloudgene,
    supportedBuilds: ['hg19', 'hg38'],
    limits: { minSamples: 1, maxSamples: 1000, maxActiveJobsPerUser: 2 },
    panels: [{ externalId: 'hapmap-2', version: '2.0.0', displayName: 'HapMap 2', build: 'hg19', populations: POPULATIONS }],
  });
  const wes = await admin.expectJson('POST', '/api/services', 201, {
    slug: slugs.wes,
    name: 'WES fake',
    protocol: 'ga4gh-wes',
    baseUrl: urls.wes,
    supportedBuilds: ['hg19', 'hg38'],
    credentialType: 'wes-bearer',
    panels: [{ externalId: 'hapmap-2', displayName: 'HapMap 2 (WES)', build: 'hg19', populations: POPULATIONS }],
  });
  return { cloudgene: cloudgene.id, wes: wes.id };
}

/** Stores the user's Cloudgene API token and WES bearer token in the vault. */
export async function storeCredentials(user: ApiUser, tokens: { cloudgene: string; wes: string }, slugs: { cloudgene: string; wes: string } = FAKE_SLUGS): Promise<void> {
  for (const [slug, credential] of [
    [slugs.cloudgene, { type: 'cloudgene-token', token: tokens.cloudgene }],
    [slugs.wes, { type: 'wes-bearer', token: tokens.wes }],
  ] as const) {
    const res = await user.call('PUT', `/api/users/me/credentials/${slug}`, credential);
    if (res.status !== 200 && res.status !== 201) throw new Error(`vault refused ${slug}: ${res.status} ${await res.text()}`);
  }
}

export interface UploadedFile {
  id: string;
  sha256: string;
  bytes: Uint8Array;
  body: any;
}

/** Uploads a generated bgzipped VCF through the gateway; answers the stored file (validated on upload). */
export async function uploadVcf(user: ApiUser, options: { samples?: number; name?: string; chromosome?: string; bytes?: Uint8Array } = {}): Promise<UploadedFile> {
  const bytes = options.bytes ?? bgzip(makeVcf({ samples: options.samples ?? 5, chromosome: options.chromosome ?? '20' }));
  const name = options.name ?? `cohort.chr${options.chromosome ?? '20'}.vcf.gz`;
  const res = await user.call('POST', `/api/files?name=${encodeURIComponent(name)}&build=hg19`, bytes, { 'content-type': 'application/octet-stream' });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`upload ${name}: ${res.status} ${text}`);
  const body = JSON.parse(text);
  return { id: body.id, sha256: body.sha256, bytes, body };
}

function post(gatewayUrl: string, path: string, body: unknown): Promise<Response> {
  return fetch(`${gatewayUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}
