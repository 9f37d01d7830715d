/**
 * The end-to-end setting: the seven services as separate processes on a scratch PostgreSQL database
 * (and REDIS_URL when set), job-processor on a fast poll schedule, the bootstrap admin signed in, and
 * fake imputation servers — a Cloudgene 3 and a GA4GH WES 1.1 — added to the catalogue as an operator
 * would. `addServers(label)` starts another pair under its own slugs, so a scenario's faults, request
 * log and per-server circuit breaker never leak into the next scenario.
 */
import { makeFakeJwt, startCloudgeneFake, type CloudgeneFake, type CloudgeneFakeOptions } from '../../fakes/cloudgene.ts';
import { startWesFake, type WesFake, type WesFakeOptions } from '../../fakes/wes.ts';
import { addFakeServers, signIn, storeCredentials, type ApiUser } from '../../support/gateway-api.ts';
import { FAST_JOBS_ENV, PLATFORM_ADMIN, startPlatformProcesses, type PlatformProcesses, type ServiceName } from '../../support/platform-processes.ts';
import { createTestDatabase, type TestDatabase } from '../../support/test-database.ts';
import { stopInOrder } from './stop-in-order.ts';
import { waitUntil, type WaitOptions } from './wait.ts';

export interface FederationOptions {
  /** Variables for one service, merged over the suite's own (fast job schedule, raised KV limits). */
  serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>;
}

export interface FakeServerOptions {
  cloudgene?: Omit<CloudgeneFakeOptions, 'tokens'>;
  wes?: Omit<WesFakeOptions, 'tokens' | 'version'>;
}

/** One Cloudgene fake and one WES fake in the catalogue, each with one account whose token a user stores. */
export interface FakeServers {
  readonly cloudgene: CloudgeneFake;
  readonly wes: WesFake;
  readonly slugs: { cloudgene: string; wes: string };
  /** Catalogue ids. */
  readonly ids: { cloudgene: string; wes: string };
  /** The tokens the fakes accept (a Cloudgene API token, a WES bearer token). */
  readonly tokens: { cloudgene: string; wes: string };
  /** The federated targets of a job on both fakes, panel hapmap-2. */
  readonly targets: { serviceId: string; panel: string }[];
  /** Stores both tokens in `user`'s vault through the gateway. */
  storeCredentials(user: ApiUser): Promise<void>;
}

export interface Federation {
  readonly platform: PlatformProcesses;
  readonly admin: ApiUser;
  /** The gateway's base URL. */
  readonly url: string;
  /** Starts a pair of fakes and adds them to the catalogue as `e2e-cloudgene-<label>` / `e2e-wes-<label>`. */
  addServers(label: string, options?: FakeServerOptions): Promise<FakeServers>;
  /** Stops the fakes and every process, removes their data and drops the database. */
  stop(): Promise<void>;
}

/** Starts the platform on a scratch database of DATABASE_URL's server (callers skip without one) and signs the admin in. */
export async function startFederation(options: FederationOptions = {}): Promise<Federation> {
  if (!process.env.DATABASE_URL) throw new Error('the end-to-end suite needs DATABASE_URL');
  const testDb: TestDatabase = await createTestDatabase();
  // The services open their own pools; this process needs only the URL.
  await testDb.database.close();
  const fakes: { stop(): Promise<void> }[] = [];
  let platform: PlatformProcesses | undefined;
  // The platform first, so no worker is left calling a fake that is gone; the database last.
  const stop = () => stopInOrder('the federation', [() => platform?.stopAll(), ...fakes.map((f) => () => f.stop()), () => testDb.drop()]);
  try {
    const serviceEnv: Partial<Record<ServiceName, Record<string, string>>> = { 'job-processor': { ...FAST_JOBS_ENV } };
    for (const [name, env] of Object.entries(options.serviceEnv ?? {}) as [ServiceName, Record<string, string>][]) serviceEnv[name] = { ...serviceEnv[name], ...env };
    platform = await startPlatformProcesses({ databaseUrl: testDb.url!, redisUrl: process.env.REDIS_URL, serviceEnv, readyTimeoutMs: 60_000 });
    const started = platform;
    const admin = await signIn(started.url, PLATFORM_ADMIN.username, PLATFORM_ADMIN.password);

    return {
      platform: started,
      admin,
      url: started.url,
      async addServers(label, serverOptions = {}) {
        const account = `e2e-${label}`;
        const tokens = { cloudgene: makeFakeJwt(account), wes: `wes-token-${label}-${crypto.randomUUID()}` };
        const cloudgene = await startCloudgeneFake({ ...serverOptions.cloudgene, tokens: { [tokens.cloudgene]: account } });
        fakes.push(cloudgene);
        const wes = await startWesFake({ ...serverOptions.wes, version: '1.1.0', tokens: [tokens.wes] });
        fakes.push(wes);
        const slugs = { cloudgene: `e2e-cloudgene-${label}`, wes: `e2e-wes-${label}` };
        const ids = await addFakeServers(admin, { cloudgene: cloudgene.url, wes: wes.url }, slugs);
        return {
          cloudgene,
          wes,
          slugs,
          ids,
          tokens,
          targets: [
            { serviceId: ids.cloudgene, panel: 'hapmap-2' },
            { serviceId: ids.wes, panel: 'hapmap-2' },
          ],
          storeCredentials: (user) => storeCredentials(user, tokens, slugs),
        };
      },
      stop,
    };
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
}

/** `GET /api/jobs/{id}` until `ok` accepts the job; the timeout error shows the job as last read. */
export function waitForJob(user: ApiUser, jobId: string, what: string, ok: (job: any) => boolean, options: WaitOptions = {}): Promise<any> {
  return waitUntil(`job ${jobId}: ${what}`, () => user.expectJson('GET', `/api/jobs/${jobId}`, 200), ok, { timeoutMs: 45_000, intervalMs: 200, ...options });
}

/** The SHA-256 of `bytes` as lowercase hex, as file-manager reports it. */
export function sha256Hex(bytes: Uint8Array | ArrayBuffer): string {
  return new Bun.CryptoHasher('sha256').update(bytes).digest('hex');
}
