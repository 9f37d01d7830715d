/**
 * Redis stopped while the platform runs (issue 10), checked against what README.md documents for a
 * KV outage (Gateway, "When the KV is down"): with the default `RATE_LIMIT_KV_DOWN=closed-for-auth`
 * login and register answer 503 `rate_limit_unavailable` (`Retry-After: 5`); requests with access
 * tokens answer 503 `auth_unavailable` once the cached revocation mark (5 s) runs out, because the
 * mark lives in the KV; API tokens and public routes keep working, so a script with an API token can
 * still list its jobs and files and submit a job. The services that need the KV (gateway, user-service,
 * notification) name it on `/ready`; the others stay ready. Nothing is lost: a job that completes
 * while Redis is away still gets its in-app notification (the event travels through the outbox and the
 * database, not the KV), which a client resuming the live stream with `Last-Event-ID` receives once
 * Redis is back. Afterwards login works again without restarting anything.
 *
 * Redis is "stopped" by cutting a TCP link the services reach it through (see CuttableLink in
 * support/fault-platform.ts for why that is what a client sees): the machine's real Redis serves other
 * tests and is never stopped. Needs DATABASE_URL (the services run as processes on one real
 * PostgreSQL) and REDIS_URL (the KV under test).
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { TERMINAL_STATES } from '../../services/job-processor/src/domain.ts';
import { apiUser, signIn, type ApiUser } from '../support/gateway-api.ts';
import { PLATFORM_ADMIN, SERVICE_NAMES, type ServiceName } from '../support/platform-processes.ts';
import { endpointOf, federatedJobBody, pidsOf, readiness, startCuttableLink, startFaultPlatform, viaPort, type CuttableLink, type FaultPlatform } from './support/fault-platform.ts';
import { waitForJob } from './support/federation.ts';
import { openEventStream, type EventStream } from './support/sse-reader.ts';
import { waitUntil } from './support/wait.ts';

const DATABASE_URL = process.env.DATABASE_URL;
const REDIS_URL = process.env.REDIS_URL;
const PASSWORD = 'Imputation-Trial-Passphrase-5';
/** The services whose /ready checks the KV (their app.ts readiness lists). */
const KV_SERVICES: ServiceName[] = ['api-gateway', 'user-service', 'notification'];
const streamHeaders = (token: string, lastEventId: string) => ({ authorization: `Bearer ${token}`, 'last-event-id': lastEventId });

interface Problem {
  status: number;
  contentType: string | null;
  retryAfter: string | null;
  body: any;
}

async function answer(res: Response): Promise<Problem> {
  const text = await res.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.status, contentType: res.headers.get('content-type'), retryAfter: res.headers.get('retry-after'), body };
}

const postJson = (url: string, body: unknown) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe.skipIf(!DATABASE_URL || !REDIS_URL)('Redis stopped (needs DATABASE_URL and REDIS_URL: the services run as processes on a real PostgreSQL and Redis)', () => {
  let link: CuttableLink;
  let env: FaultPlatform;
  let user: ApiUser;
  /** The same user through a personal API token, which needs no KV to verify. */
  let script: ApiUser;
  let openStream: EventStream | undefined;
  const jobIds: { before?: string; during?: string; after?: string } = {};
  const seen: Record<string, unknown> = {};
  const figures: Record<string, unknown> = {};
  let lastIdBefore: string;
  let pidsBefore: Record<string, number | undefined>;

  beforeAll(async () => {
    link = startCuttableLink(endpointOf(REDIS_URL!, 6379));
    env = await startFaultPlatform({
      users: 1,
      prefix: 'kvfault',
      redisUrl: viaPort(REDIS_URL!, link.port),
      // A quiet stream catches up from the database before each heartbeat: every second here.
      serviceEnv: { notification: { STREAM_HEARTBEAT_SECONDS: '1' } },
    });
    user = env.users[0]!.api;
    const created = await user.expectJson('POST', '/api/users/me/api-tokens', 201, { name: 'fault test script' });
    script = apiUser(env.platform.url, user.username, created.token);
  }, 120_000);

  afterAll(async () => {
    openStream?.close();
    link?.restore();
    await env?.stop();
    link?.close();
  }, 60_000);

  /** Submits a federated job (with an Idempotency-Key) as `who` and waits until it ended; answers its id. */
  async function runJob(who: ApiUser, name: string): Promise<string> {
    const res = await who.call('POST', '/api/jobs', federatedJobBody(env.users[0]!, env.serviceIds, name), { 'idempotency-key': name });
    const body = await answer(res);
    if (res.status !== 202) throw new Error(`submit ${name}: ${res.status} ${JSON.stringify(body.body)}`);
    const id = body.body.id as string;
    await waitForJob(who, id, 'ended', (job) => TERMINAL_STATES.has(job.state));
    return id;
  }

  const inbox = async (who: ApiUser) => (await who.expectJson('GET', '/api/notifications?limit=100', 200)).items as { id: string; type: string; data: any }[];
  const completedFor = <T extends { type: string; data: any }>(items: T[], jobId: string) => items.filter((n) => n.type === 'job.completed' && n.data?.jobId === jobId);

  it('before: a job completes and notifies its owner; a client opens the live stream', async () => {
    jobIds.before = await runJob(user, 'kv-before');
    const [notification] = await waitUntil('the job.completed notification in the inbox', async () => completedFor(await inbox(user), jobIds.before!), (found) => found.length === 1);
    lastIdBefore = notification!.id;
    // A client keeps the live stream open (with its API token) across the outage.
    openStream = await openEventStream(`${env.platform.url}/api/notifications/stream`, streamHeaders(script.accessToken, lastIdBefore));
    pidsBefore = pidsOf(env.platform);
    // Leave job-processor's cached revocation mark for this user older than the gateway's: the mark
    // is cached 5 s in each process, refreshed only by requests that reach it. Then, during the
    // outage, the gateway still admits the first access-token request to /api/jobs while
    // job-processor's own check already needs the KV, which is the case a client must not see as a 500.
    expect((await user.call('GET', '/api/jobs')).status).toBe(200);
    await Bun.sleep(5_500);
    expect((await user.call('GET', '/api/notifications/unread-count')).status).toBe(200);
  }, 60_000);

  it('while Redis is down: /ready names the KV where it is needed, and the gateway /health is degraded', async () => {
    link.cut();
    const cutAt = Date.now();
    const failed = new Map<ServiceName, string[]>();
    await waitUntil(
      'every service that needs the KV reports its kv check failed',
      async () => {
        for (const name of KV_SERVICES) {
          const r = await readiness(env.platform.urls[name]);
          if (r.status === 503) failed.set(name, r.body?.failed ?? []);
        }
        return [...failed.keys()];
      },
      (names) => names.length === KV_SERVICES.length,
    );
    figures.kvNoticedAfterMs = Date.now() - cutAt;
    for (const name of KV_SERVICES) expect({ name, failed: failed.get(name) }).toEqual({ name, failed: ['kv'] });
    // The others do not need the KV to serve: they stay ready.
    for (const name of SERVICE_NAMES.filter((n) => !KV_SERVICES.includes(n))) expect({ name, status: (await readiness(env.platform.urls[name])).status }).toEqual({ name, status: 200 });
    const health = await answer(await fetch(`${env.platform.url}/health`));
    expect(health.status).toBe(503);
    expect(health.body.status).toBe('degraded');
    expect(health.body.services['user-service']).toBe('unhealthy');
    expect(health.body.services.notification).toBe('unhealthy');
    expect(health.body.services['job-processor']).toBe('healthy');
  }, 60_000);

  it('while Redis is down: login and register answer 503 rate_limit_unavailable (closed-for-auth)', async () => {
    const login = await answer(await postJson(`${env.platform.url}/api/auth/login`, { login: user.username, password: PASSWORD }));
    const register = await answer(
      await postJson(`${env.platform.url}/api/auth/register`, { username: 'kvfault-late', email: 'kvfault-late@example.org', password: PASSWORD, firstName: 'K', lastName: 'V' }),
    );
    seen.loginDuringOutage = login;
    for (const refused of [login, register]) {
      expect(refused.status).toBe(503);
      expect(refused.contentType).toStartWith('application/problem+json');
      expect(refused.body.code).toBe('rate_limit_unavailable');
      expect(refused.retryAfter).toBe('5');
    }
  }, 30_000);

  it('while Redis is down: access tokens get 503 auth_unavailable once the cached revocation mark runs out', async () => {
    // Admitted while the marks are still cached; the first refusal is what a client sees from then on.
    const refused = await waitUntil('an access-token request is refused', async () => answer(await user.call('GET', '/api/jobs')), (r) => r.status !== 200, { intervalMs: 250 });
    // Whichever check runs out of its cached mark first (the gateway's or the service's own), the
    // answer is the same documented 503, never a generic 500.
    expect({ status: refused.status, code: refused.body?.code, retryAfter: refused.retryAfter, contentType: refused.contentType }).toEqual({
      status: 503,
      code: 'auth_unavailable',
      retryAfter: '5',
      contentType: 'application/problem+json',
    });
  }, 60_000);

  it('while Redis is down: API tokens keep working: list jobs and files, submit a job that completes', async () => {
    const jobs = await answer(await script.call('GET', '/api/jobs'));
    expect({ status: jobs.status, code: jobs.body.code }).toEqual({ status: 200, code: undefined });
    const files = await answer(await script.call('GET', '/api/files'));
    expect({ status: files.status, code: files.body.code }).toEqual({ status: 200, code: undefined });
    const file = await answer(await script.call('GET', `/api/files/${env.users[0]!.input.id}`));
    expect({ status: file.status, code: file.body.code }).toEqual({ status: 200, code: undefined });
    jobIds.during = await runJob(script, 'kv-during');
    const job = await script.expectJson('GET', `/api/jobs/${jobIds.during}`, 200);
    expect(job.state).toBe('completed');
    // Its notification is recorded although it cannot be published live.
    await waitUntil('the job.completed notification of the job run during the outage in the inbox', async () => completedFor(await inbox(script), jobIds.during!), (found) => found.length === 1);
    // A client (re)connecting to the live stream now either gets the backlog from the database (when
    // the process already holds this user's channel, the subscription is reused) or, when it cannot
    // subscribe, a 503 problem to retry: never a hang, never a stream that skips the backlog.
    const url = `${env.platform.url}/api/notifications/stream`;
    const stream = await openEventStream(url, streamHeaders(script.accessToken, lastIdBefore)).catch((err: Error) => err);
    if (stream instanceof Error) {
      seen.newStreamDuringOutage = stream.message;
      expect(stream.message).toContain(`${url}: 503 application/problem+json`);
      expect(stream.message).toContain('"code":"live_feed_unavailable"');
    } else {
      seen.newStreamDuringOutage = 'opened, backlog served from the database';
      await stream.until((received) => completedFor(received, jobIds.during!).length === 1, 'the completion from the backlog');
      stream.close();
    }
    // The stream left open across the cut cannot get it live (the publish failed), but it is not
    // left without it: a quiet stream reads what it missed from the database before its heartbeat.
    await openStream!.until((received) => completedFor(received, jobIds.during!).length === 1, 'the completion made during the outage, on the stream left open across it');
  }, 90_000);

  it('after Redis returns: everything is ready again by itself and login works, without a restart', async () => {
    link.restore();
    const restoredAt = Date.now();
    await waitUntil(
      'every service answers /ready 200 again',
      async () => (await Promise.all(SERVICE_NAMES.map(async (name) => [name, (await readiness(env.platform.urls[name])).status] as const))).filter(([, status]) => status !== 200),
      (notReady) => notReady.length === 0,
      { intervalMs: 100 },
    );
    figures.readyAfterRestoreMs = Date.now() - restoredAt;
    const again = await waitUntil('login answers 200 again', async () => answer(await postJson(`${env.platform.url}/api/auth/login`, { login: user.username, password: PASSWORD })), (r) => r.status === 200);
    figures.loginAfterRestoreMs = Date.now() - restoredAt;
    expect(again.body.accessToken).toBeString();
    expect((await user.call('GET', '/api/jobs')).status).toBe(200);
    const admin = await signIn(env.platform.url, PLATFORM_ADMIN.username, PLATFORM_ADMIN.password);
    expect((await admin.call('GET', '/api/admin/users?limit=1')).status).toBe(200);
    expect(pidsOf(env.platform)).toEqual(pidsBefore);
  }, 90_000);

  it('after Redis returns: nothing was lost: every job notified once, and a resumed stream delivers what the outage held', async () => {
    jobIds.after = await runJob(user, 'kv-after');
    const items = await waitUntil('the job.completed notification of the job run after the outage in the inbox', () => inbox(user), (all) => completedFor(all, jobIds.after!).length === 1);
    for (const id of [jobIds.before!, jobIds.during!, jobIds.after!]) expect({ id, count: completedFor(items, id).length }).toEqual({ id, count: 1 });

    // A client that reconnects with the last id it saw gets the rest, in order, once each.
    const resumed = await openEventStream(`${env.platform.url}/api/notifications/stream`, streamHeaders(user.accessToken, lastIdBefore));
    const received = await resumed.until((all) => all.filter((n) => n.type === 'job.completed').length >= 2, 'the two later completions');
    resumed.close();
    expect(received.filter((n) => n.type === 'job.completed').map((n) => n.data?.jobId)).toEqual([jobIds.during!, jobIds.after!]);

    // The stream that stayed open across the outage is subscribed again: it gets the later completion live.
    // The stream left open across the outage got every completion after its start, once each, in order.
    const live = await openStream!.until((all) => completedFor(all, jobIds.after!).length === 1, 'the completion after the outage, on the stream left open across it');
    expect(live.filter((n) => n.type === 'job.completed').map((n) => n.data?.jobId)).toEqual([jobIds.during!, jobIds.after!]);
    console.log('[fault-redis] figures', JSON.stringify({ ...figures, ...seen }, null, 2));
  }, 90_000);
});
