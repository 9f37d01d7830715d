/**
 * PostgreSQL restarted while the platform is under load (issue 10): several researchers submit
 * federated jobs continuously (each intended job under its own `Idempotency-Key`, retried with the same
 * key after a 5xx or no answer until it gets 202 or a 4xx, as a careful client does) and read their jobs
 * and files, while the database goes away for a few seconds and comes back. During the outage every
 * service's `/ready` names the failed `database` check, the gateway's `/health` says degraded, and
 * clients get problems (503 `database_unavailable`, or a 502/503 naming the service a call failed in),
 * never a hang and never a generic 500. After it, every service is ready again by itself (same
 * processes), every intended job exists exactly once and completes, each fake saw exactly one
 * submission per child job, and no result was stored twice. The figures printed (outage length, time
 * to ready, 5xx answers, slowest answer) are measurements, not assertions.
 *
 * The database is "restarted" by cutting a TCP link the services reach it through (see CuttableLink in
 * support/fault-platform.ts for why that is what a client sees during a restart): the machine's real
 * PostgreSQL serves other tests and is never stopped. Needs DATABASE_URL (seven processes on one real
 * database); REDIS_URL is used when set.
 */
import { jobs } from '@db/schema/jobs.ts';
import { storedFiles } from '@db/schema/files.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { and, eq, inArray, isNotNull, isNull, sql } from 'drizzle-orm';
import {
  createAnswerLog,
  DATABASE_SERVICES,
  endpointOf,
  federatedJobBody,
  pidsOf,
  readiness,
  startCuttableLink,
  startFaultPlatform,
  storedObjectCount,
  viaPort,
  whenConnectionFree,
  type CuttableLink,
  type FaultPlatform,
  type FaultUser,
} from './support/fault-platform.ts';
import { SERVICE_NAMES } from '../support/platform-processes.ts';
import { TERMINAL_STATES } from '../../services/job-processor/src/domain.ts';
import { waitUntil } from './support/wait.ts';

const DATABASE_URL = process.env.DATABASE_URL;
const USERS = 3;
const JOBS_PER_USER = 6;
/** How long the database stays away, at least (about what a quick restart takes). */
const OUTAGE_MS = 4_000;
/** Generous: the machine is shared with other suites. */
const RECOVERY_DEADLINE_MS = 30_000;
const COMPLETION_DEADLINE_MS = 120_000;

describe.skipIf(!DATABASE_URL)('PostgreSQL restarted during load (needs DATABASE_URL: the services run as processes on one real PostgreSQL)', () => {
  let link: CuttableLink;
  let env: FaultPlatform;
  const log = createAnswerLog();
  /** Per intended job: its key, owner and the job id it got (once a 202 came back), or the 4xx that lost it. */
  const intended: { key: string; user: FaultUser; jobId?: string; refused?: { status: number; body: unknown } }[] = [];
  const figures: Record<string, unknown> = {};
  const notReady = new Map<string, { status: number | 'network'; failed?: string[] }>();
  let gatewayHealthDuringOutage: { status: number; body: any } | undefined;
  let pidsBefore: Record<string, number | undefined>;
  let pidsAfter: Record<string, number | undefined>;
  let finalJobs: Map<string, any>;
  /** The checks below read what the scenario recorded; they fail with this message when it stopped early. */
  let scenarioFinished = false;
  let outageObserved = false;
  const scenario = () => expect({ scenarioFinished }).toEqual({ scenarioFinished: true });

  beforeAll(async () => {
    link = startCuttableLink(endpointOf(DATABASE_URL!, 5432));
    env = await startFaultPlatform({
      users: USERS,
      prefix: 'pgfault',
      databaseUrl: (scratch) => viaPort(scratch, link.port),
      redisUrl: process.env.REDIS_URL,
    });
  }, 120_000);

  afterAll(async () => {
    link?.restore();
    await env?.stop();
    link?.close();
  }, 60_000);

  it('keeps working through a database restart mid-load', async () => {
    const { platform, users, serviceIds } = env;
    pidsBefore = pidsOf(platform);
    let loadRunning = true;
    let submittersDone = 0;

    // Submitters: one intended job after another per user; a 5xx or no answer is retried with the same key.
    const submitters = users.map(async (user) => {
      for (let i = 0; i < JOBS_PER_USER && loadRunning; i++) {
        const entry: (typeof intended)[number] = { key: `${user.api.username}-job-${i}`, user };
        intended.push(entry);
        const body = federatedJobBody(user, serviceIds, entry.key);
        while (loadRunning) {
          const res = await log.request(platform.url, user.api.accessToken, 'POST /api/jobs', 'POST', '/api/jobs', body, { 'idempotency-key': entry.key });
          if (res.status === 202) {
            entry.jobId = res.body.id;
            break;
          }
          if (typeof res.status === 'number' && res.status < 500) {
            entry.refused = { status: res.status, body: res.body };
            break;
          }
          await Bun.sleep(200);
        }
        await Bun.sleep(250);
      }
      submittersDone += 1;
    });
    // Readers: the pages a signed-in user keeps open.
    const readers = users.map(async (user) => {
      while (loadRunning) {
        const mine = intended.filter((e) => e.user === user && e.jobId);
        const pick = mine[Math.floor(Math.random() * mine.length)];
        await Promise.all([
          log.request(platform.url, user.api.accessToken, 'GET /api/jobs', 'GET', '/api/jobs?limit=10'),
          log.request(platform.url, user.api.accessToken, 'GET /api/files', 'GET', '/api/files?limit=10'),
          pick ? log.request(platform.url, user.api.accessToken, 'GET /api/jobs/{id}', 'GET', `/api/jobs/${pick.jobId}`) : undefined,
        ]);
        await Bun.sleep(150);
      }
    });

    /** Rethrows a failed wait with the log tail of every service that stopped answering: a process that died says why. */
    const withLogsOf = async (err: unknown): Promise<never> => {
      const silent = (await Promise.all(SERVICE_NAMES.map(async (name) => [name, (await readiness(platform.urls[name])).status] as const))).filter(([, status]) => status === 'network');
      const logs = await Promise.all(silent.map(async ([name]) => `--- ${name} does not answer; its log ends with:\n${(await platform.log(name)).slice(-3_000)}`));
      throw new Error([String(err), ...logs].join('\n'));
    };

    try {
      // Let the load get going: some jobs accepted and on their way to the fakes.
      await waitUntil(
        'every user has two jobs accepted',
        async () => users.map((u) => intended.filter((e) => e.user === u && e.jobId).length),
        (counts) => counts.every((n) => n >= 2),
        { timeoutMs: 60_000 },
      );

      // --- the database goes away ---
      log.phase = 'outage';
      const cutAt = Date.now();
      link.cut();
      // Every database service says so on /ready (503 naming `database`), and the gateway's /health is degraded.
      await waitUntil(
        'every database service reports its database check failed, and the gateway /health degraded',
        async () => {
          const unanswered: string[] = [];
          await Promise.all(
            DATABASE_SERVICES.filter((name) => !notReady.has(name)).map(async (name) => {
              const answer = await readiness(platform.urls[name]);
              if (answer.status === 503 && answer.body?.failed?.includes('database')) notReady.set(name, { status: 503, failed: answer.body.failed });
              if (answer.status === 'network') unanswered.push(name);
            }),
          );
          if (!gatewayHealthDuringOutage) {
            const res = await fetch(`${platform.url}/health`, { signal: AbortSignal.timeout(5_000) });
            const body = await res.json();
            if (res.status === 503) gatewayHealthDuringOutage = { status: res.status, body };
          }
          return { notReady: [...notReady.keys()], unanswered, gatewayHealth: gatewayHealthDuringOutage?.status };
        },
        (seen) => seen.notReady.length === DATABASE_SERVICES.length && seen.gatewayHealth === 503,
        { timeoutMs: 20_000 },
      ).catch((err) => withLogsOf(err));
      const noticedAt = Date.now();
      outageObserved = true;
      // Keep it away for a restart's length (the load keeps running meanwhile).
      if (Date.now() - cutAt < OUTAGE_MS) await Bun.sleep(OUTAGE_MS - (Date.now() - cutAt));

      // --- the database is back ---
      link.restore();
      const restoredAt = Date.now();
      log.phase = 'recovering';
      await waitUntil(
        'every service answers /ready 200 again by itself',
        async () => {
          const answers = await Promise.all(SERVICE_NAMES.map(async (name) => [name, await readiness(platform.urls[name])] as const));
          return Object.fromEntries(answers.filter(([, answer]) => answer.status !== 200));
        },
        (stillDown) => Object.keys(stillDown).length === 0,
        { timeoutMs: RECOVERY_DEADLINE_MS, intervalMs: 100 },
      ).catch((err) => withLogsOf(err));
      const recoveredAt = Date.now();
      log.phase = 'after';
      pidsAfter = pidsOf(platform);

      await waitUntil('the submitters got an answer for every intended job', async () => submittersDone, (n) => n === users.length, { timeoutMs: COMPLETION_DEADLINE_MS });
      loadRunning = false;
      await Promise.all([...submitters, ...readers]);

      // Wait for every accepted job to end (through the API, as its owner).
      finalJobs = new Map();
      await waitUntil(
        'every accepted job ended',
        async () => {
          for (const entry of intended) {
            if (!entry.jobId || TERMINAL_STATES.has(finalJobs.get(entry.jobId)?.state)) continue;
            const res = await entry.user.api.call('GET', `/api/jobs/${entry.jobId}`);
            if (res.status === 200) finalJobs.set(entry.jobId, await res.json());
          }
          return intended.filter((e) => e.jobId && !TERMINAL_STATES.has(finalJobs.get(e.jobId)?.state)).map((e) => `${e.key}: ${finalJobs.get(e.jobId!)?.state}`);
        },
        (unfinished) => unfinished.length === 0,
        { timeoutMs: COMPLETION_DEADLINE_MS, intervalMs: 250 },
      );

      Object.assign(figures, {
        outageMs: restoredAt - cutAt,
        allNoticedAfterMs: noticedAt - cutAt,
        recoveredAfterRestoreMs: recoveredAt - restoredAt,
        jobsIntended: intended.length,
        jobsCompleted: [...finalJobs.values()].filter((j) => j.state === 'completed').length,
        incompleteCloudgeneUploads: env.cloudgene.control.requestsTo('/api/v2/jobs/submit', 'POST').filter((r) => r.form?.['job-name'] === undefined).length,
        serverErrorsDuringOutage: log.answers.filter((a) => a.phase === 'outage' && typeof a.status === 'number' && a.status >= 500).length,
        slowestAnswerMs: Math.max(...log.answers.map((a) => a.ms)),
        answers: log.summary(),
      });
      console.log('[fault-postgres] figures', JSON.stringify(figures, null, 2));
      scenarioFinished = true;
    } finally {
      loadRunning = false;
    }
  }, 300_000);

  it('reported the database as the failed check while it was away', () => {
    expect({ outageObserved }).toEqual({ outageObserved: true });
    expect([...notReady.keys()].sort()).toEqual([...DATABASE_SERVICES].sort());
    for (const [, answer] of notReady) expect(answer.failed).toContain('database');
    expect(gatewayHealthDuringOutage?.status).toBe(503);
    expect(gatewayHealthDuringOutage?.body.status).toBe('degraded');
    for (const name of ['user-service', 'job-processor', 'file-manager']) expect(gatewayHealthDuringOutage?.body.services[name]).not.toBe('healthy');
  });

  it('recovered without restarting any process', () => {
    scenario();
    expect(pidsAfter).toEqual(pidsBefore);
    for (const name of SERVICE_NAMES) expect(pidsAfter[name]).toBeNumber();
  });

  it('answered clients with problems (never a hang) during the outage, and no generic 500 after it', () => {
    scenario();
    const failures = log.answers.filter((a) => a.status === 'timeout' || a.status === 'network' || (typeof a.status === 'number' && a.status >= 500));
    // No request hung until the client gave up, and the gateway always answered.
    expect(failures.filter((a) => a.status === 'timeout' || a.status === 'network')).toEqual([]);
    // Every 5xx was an RFC 9457 problem with a code, and none was the generic "unexpected error" 500:
    // a database that is away is a condition to retry (503), not a bug.
    expect(failures.filter((a) => !a.code)).toEqual([]);
    expect(failures.filter((a) => a.code === 'internal_error')).toEqual([]);
    // The outage was felt (otherwise this test proves nothing) ...
    expect(failures.filter((a) => a.phase === 'outage').length).toBeGreaterThan(0);
    // ... and once every service was ready again, nothing failed with a generic error. (A 503 from a
    // server full of other suites' connections is the platform answering correctly, not a relapse.)
    expect(log.answers.filter((a) => a.phase === 'after' && (a.status === 500 || a.code === 'internal_error' || typeof a.status !== 'number'))).toEqual([]);
  });

  it('lost no intended job: each exists exactly once, as its owner lists it', async () => {
    scenario();
    expect(intended.filter((e) => e.refused).map((e) => ({ key: e.key, ...e.refused }))).toEqual([]);
    expect(intended.every((e) => e.jobId)).toBe(true);
    for (const user of env.users) {
      const page = await user.api.expectJson('GET', '/api/jobs?limit=100', 200);
      const names = (page.items as { name: string }[]).map((j) => j.name).sort();
      expect(names).toEqual(intended.filter((e) => e.user === user).map((e) => e.key).sort());
    }
    // The API shows one job per name; the table proves no second row hides behind a key.
    const db = env.testDb.database.db;
    const perKey = await whenConnectionFree(() =>
      db
        .select({ key: jobs.idempotencyKey, count: sql<number>`count(*)::int` })
        .from(jobs)
        .where(and(isNull(jobs.parentId), isNotNull(jobs.idempotencyKey)))
        .groupBy(jobs.idempotencyKey),
    );
    expect(perKey.length).toBe(intended.length);
    expect(perKey.filter((r) => r.count !== 1)).toEqual([]);
    const [{ parents, children }] = (await whenConnectionFree(() =>
      db
        .select({ parents: sql<number>`count(*) filter (where parent_id is null)::int`, children: sql<number>`count(*) filter (where parent_id is not null)::int` })
        .from(jobs),
    )) as [{ parents: number; children: number }];
    expect({ parents, children }).toEqual({ parents: intended.length, children: intended.length * 2 });
  });

  it('completed every job, with exactly one submission per child on each server', () => {
    scenario();
    const states = [...finalJobs.values()].map((j) => `${j.name}: ${j.state} [${j.children.map((c: any) => c.state).join(', ')}]`);
    expect(states.filter((s) => !s.includes(': completed [completed, completed]'))).toEqual([]);

    const children = [...finalJobs.values()].flatMap((j) => j.children as { id: string; attempt: number; service: { id: string } }[]);
    const expectedNames = (serviceId: string) => children.filter((c) => c.service.id === serviceId).map((c) => `fip-${c.id}-${c.attempt}`).sort();
    // A submission whose upload was cut short (its input stream failed with the database) never
    // carried a job name and was refused (400 invalid form data): no job exists for it on the server.
    const submits = env.cloudgene.control.requestsTo('/api/v2/jobs/submit', 'POST');
    const incomplete = submits.filter((r) => r.form?.['job-name'] === undefined);
    expect(incomplete.filter((r) => r.status !== 400)).toEqual([]);
    const named = submits.filter((r) => r.form?.['job-name'] !== undefined).map((r) => String(r.form!['job-name']));
    expect(named.sort()).toEqual(expectedNames(env.serviceIds.cloudgene));
    expect([...env.cloudgene.control.jobs.values()].map((j) => j.name).sort()).toEqual(expectedNames(env.serviceIds.cloudgene));
    const wesRuns = [...env.wes.control.runs.values()].map((r) => r.request.tags.fip_job ?? '(untagged)');
    expect(wesRuns.sort()).toEqual(expectedNames(env.serviceIds.wes));
  });

  it('stored every result once', async () => {
    scenario();
    const results = [...finalJobs.values()].flatMap((j) => j.results as { jobId: string; name: string; state: string; fileId: string }[]);
    // Every child of every job brought results home (both fakes always publish some).
    const from = (j: any, ids: string[]) => ({ job: j.name, children: [...new Set(ids)].sort() });
    expect([...finalJobs.values()].map((j) => from(j, j.results.map((r: { jobId: string }) => r.jobId)))).toEqual(
      [...finalJobs.values()].map((j) => from(j, j.children.map((c: { id: string }) => c.id))),
    );
    expect(results.filter((r) => r.state !== 'stored')).toEqual([]);
    const keys = results.map((r) => `${r.jobId}:${r.name}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(new Set(results.map((r) => r.fileId)).size).toBe(results.length);
    // file-manager holds exactly those results (plus the inputs), in its table and on disk.
    const db = env.testDb.database.db;
    const childIds = [...finalJobs.values()].flatMap((j) => j.children.map((c: any) => c.id as string));
    const rows = await whenConnectionFree(() =>
      db.select({ id: storedFiles.id }).from(storedFiles).where(and(eq(storedFiles.kind, 'result'), inArray(storedFiles.jobId, childIds))),
    );
    expect(rows.map((r) => r.id).sort()).toEqual(results.map((r) => r.fileId).sort());
    const [{ total }] = (await whenConnectionFree(() => db.select({ total: sql<number>`count(*)::int` }).from(storedFiles))) as [{ total: number }];
    expect(total).toBe(results.length + env.users.length);
    expect(await storedObjectCount(env.platform.dataDir)).toBe(total);
  });
});
