/**
 * What a researcher sees when an imputation server lets them down, end to end through the gateway
 * (the seven services as processes on the real PostgreSQL, Redis when REDIS_URL is set): the server's
 * QC rejects the input; the server is down when the job is submitted; the researcher cancels a
 * federated job while it runs. Each scenario has its own pair of fakes in the catalogue, so one
 * scenario's faults and request log never reach another; the fakes' control APIs script the servers
 * and show what the platform sent them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { DEFAULT_QC_FAILURE_MESSAGE } from '../fakes/cloudgene.ts';
import { TERMINAL_STATES } from '../../services/job-processor/src/domain.ts';
import { registerAndSignIn, uploadVcf, type ApiUser, type UploadedFile } from '../support/gateway-api.ts';
import { startFederation, waitForJob, type Federation } from './support/federation.ts';
import { waitUntil } from './support/wait.ts';

/** job-processor gives up on a server after this many failed tries in a row. */
const RETRY_MAX_ATTEMPTS = 3;
const SCENARIO_MS = 60_000;

describe.skipIf(!process.env.DATABASE_URL)('when an imputation server fails the researcher (seven processes; skipped without DATABASE_URL)', () => {
  let federation: Federation;
  let user: ApiUser;
  let input: UploadedFile;

  beforeAll(async () => {
    federation = await startFederation({ serviceEnv: { 'job-processor': { RETRY_MAX_ATTEMPTS: String(RETRY_MAX_ATTEMPTS) } } });
    user = await registerAndSignIn(federation.url, `e2e-failures-${Date.now().toString(36)}`);
    input = await uploadVcf(user, { samples: 25 });
    expect(input.body.validation.ok).toBe(true);
  }, 120_000);

  afterAll(async () => {
    await federation?.stop();
  }, 60_000);

  const submit = (name: string, targets: { serviceId: string; panel: string }[]) =>
    user.expectJson('POST', '/api/jobs', 202, { name, inputFileIds: [input.id], build: 'hg19', population: 'eur', targets });

  /** The inbox entry of `type` for `jobId`, once the event has travelled outbox → relay → notification. */
  const notificationOf = (type: string, jobId: string) =>
    waitUntil(
      `a ${type} notification for ${jobId}`,
      () => user.expectJson('GET', '/api/notifications?limit=100', 200),
      (page) => page.items.some((n: any) => n.type === type && n.data?.jobId === jobId),
    ).then((page) => page.items.find((n: any) => n.type === type && n.data?.jobId === jobId));

  it("fails the job with qc_failed, the server's own message and a hint when the server's QC rejects the input", async () => {
    const servers = await federation.addServers('qc', { cloudgene: { qcFailure: true } });
    await servers.storeCredentials(user);
    const name = 'strand-flipped cohort';
    const created = await submit(name, [{ serviceId: servers.ids.cloudgene, panel: 'hapmap-2' }]);

    const job = await waitForJob(user, created.id, 'ended', (j) => TERMINAL_STATES.has(j.state));
    expect(job.state).toBe('failed');
    expect(job.externalId).not.toBeNull();
    expect(servers.cloudgene.control.jobs.get(job.externalId)?.state).toBe(5);
    // The server's message, without its HTML, and what to do about it.
    const serverMessage = DEFAULT_QC_FAILURE_MESSAGE.replace(/<[^>]+>/g, '');
    expect(job.error.code).toBe('qc_failed');
    expect(job.error.message).toContain(serverMessage);
    expect(job.error.message).not.toContain('<b>');
    expect(job.error.hint).toContain('quality control');
    expect(job.history.at(-1)).toMatchObject({ state: 'failed' });

    const { items: lines } = await user.expectJson('GET', `/api/jobs/${job.id}/logs`, 200);
    expect(lines).toContainEqual(expect.objectContaining({ jobId: job.id, step: 'Quality Control', level: 'error', message: serverMessage }));

    const notification = await notificationOf('job.failed', job.id);
    expect(notification).toMatchObject({ title: `Job “${name}” failed`, link: `/jobs/${job.id}`, data: { errorCode: 'qc_failed', state: 'failed' } });
    expect(notification.body).toContain('(qc_failed)');
  }, SCENARIO_MS);

  it("retries a submission the server answers with 500, looks the job up before each retry, then fails with the server's answer as the reason", async () => {
    const servers = await federation.addServers('down');
    await servers.storeCredentials(user);
    const cloudgene = servers.cloudgene.control;
    cloudgene.addFault({ kind: 'status500', method: 'POST', path: '/api/v2/jobs/submit' });
    const created = await submit('cohort on a broken server', [{ serviceId: servers.ids.cloudgene, panel: 'hapmap-2' }]);

    const job = await waitForJob(user, created.id, 'ended', (j) => TERMINAL_STATES.has(j.state));
    expect(job.state).toBe('failed');
    expect(job.service).toMatchObject({ id: servers.ids.cloudgene, slug: servers.slugs.cloudgene, name: 'Cloudgene fake' });
    expect(job.error.code).toBe('server_unavailable');
    expect(job.error.message).toStartWith('Cloudgene fake: ');
    expect(job.error.message).toContain('Cloudgene server answered HTTP 500: Internal Server Error');
    expect(job.error.message).toContain(`gave up after ${RETRY_MAX_ATTEMPTS} tries`);
    expect(job.error.hint).toBe('Cloudgene fake kept failing; run the job again later, or on another server.');
    expect(job.externalId).toBeNull();

    // Every try reached the server, and each retry first asked it for the job by name (it might have
    // kept an earlier try whose answer was lost) before submitting again.
    const traffic = cloudgene.requests.map((r) => `${r.method} ${r.path}`);
    const submits = traffic.flatMap((t, i) => (t.startsWith('POST /api/v2/jobs/submit/') ? [i] : []));
    expect(submits).toHaveLength(RETRY_MAX_ATTEMPTS);
    for (let n = 1; n < submits.length; n++) expect(traffic.slice(submits[n - 1]! + 1, submits[n])).toContain('GET /api/v2/jobs');
    // Nothing was accepted, so nothing can run twice.
    expect(cloudgene.jobs.size).toBe(0);

    // The researcher can follow the retries in the job's history.
    const { items: history } = await user.expectJson('GET', `/api/jobs/${job.id}/events`, 200);
    const said = (state: string, pattern: RegExp) => history.filter((h: any) => h.state === state && pattern.test(h.message ?? '')).length;
    expect(said('submitting', /^submitting to Cloudgene fake as fip-/)).toBe(RETRY_MAX_ATTEMPTS);
    expect(said('queued', /^submission failed: The Cloudgene server answered HTTP 500/)).toBe(RETRY_MAX_ATTEMPTS - 1);
    expect(said('submitting', /^Cloudgene fake has no submission named fip-.*; submitting$/)).toBe(RETRY_MAX_ATTEMPTS - 1);
    expect(history.at(-1)).toMatchObject({ state: 'failed' });
    expect(history.at(-1).message).toStartWith(`gave up on Cloudgene fake after ${RETRY_MAX_ATTEMPTS} failed tries: The Cloudgene server answered HTTP 500`);

    const notification = await notificationOf('job.failed', job.id);
    expect(notification.data).toMatchObject({ errorCode: 'server_unavailable', state: 'failed' });
  }, SCENARIO_MS);

  it('cancels a running federated job on both servers when the researcher cancels it', async () => {
    const servers = await federation.addServers('cancel', { cloudgene: { progression: 'manual' }, wes: { autoAdvance: 'manual' } });
    await servers.storeCredentials(user);
    const created = await submit('cohort cancelled mid-run', servers.targets);
    const childOn = (job: any, slug: string) => job.children.find((c: any) => c.service.slug === slug);

    // Both servers accepted their part; the test then starts both runs, as the servers would.
    const submitted = await waitForJob(user, created.id, 'both targets submitted', (j) => j.children.length === 2 && j.children.every((c: any) => c.externalId !== null));
    const cloudgeneId: string = childOn(submitted, servers.slugs.cloudgene).externalId;
    const runId: string = childOn(submitted, servers.slugs.wes).externalId;
    servers.cloudgene.control.advance(cloudgeneId);
    servers.wes.control.advance(runId);
    servers.wes.control.advance(runId);
    expect(servers.cloudgene.control.jobs.get(cloudgeneId)?.state).toBe(2);
    expect(servers.wes.control.runs.get(runId)?.state).toBe('RUNNING');
    await waitForJob(user, created.id, 'running on both servers', (j) => j.state === 'running' && j.children.every((c: any) => c.state === 'running'));

    const res = await user.call('POST', `/api/jobs/${created.id}/cancel`);
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({ id: created.id, cancelRequested: true });

    // Cloudgene cancels with a GET; WES with a POST, after which the run is CANCELING until the server stops it.
    const upstream = await waitUntil(
      'the cancellation to reach both servers',
      async () => ({
        cloudgeneCancels: servers.cloudgene.control.requestsTo(`/api/v2/jobs/${cloudgeneId}/cancel`, 'GET').length,
        cloudgeneState: servers.cloudgene.control.jobs.get(cloudgeneId)?.state,
        wesCancels: servers.wes.control.requests.filter((r) => r.method === 'POST' && r.path.endsWith(`/runs/${runId}/cancel`)).length,
        wesState: servers.wes.control.runs.get(runId)?.state,
      }),
      (seen) => seen.cloudgeneState === 6 && seen.wesState === 'CANCELING',
    );
    expect(upstream.cloudgeneCancels).toBeGreaterThan(0);
    expect(upstream.wesCancels).toBeGreaterThan(0);
    servers.wes.control.advance(runId);

    const job = await waitForJob(user, created.id, 'cancelled', (j) => TERMINAL_STATES.has(j.state));
    expect(job.state).toBe('cancelled');
    expect(job.children.map((c: any) => [c.service.slug, c.state, c.error]).sort()).toEqual(
      [
        [servers.slugs.cloudgene, 'cancelled', null],
        [servers.slugs.wes, 'cancelled', null],
      ].sort(),
    );
    expect(servers.wes.control.runs.get(runId)?.state).toBe('CANCELED');
    // Cancelled on the servers, not just forgotten: nothing else was submitted or deleted there.
    expect(servers.cloudgene.control.requestsTo('/api/v2/jobs/submit', 'POST')).toHaveLength(1);
    expect(servers.cloudgene.control.requests.filter((r) => r.method === 'DELETE')).toHaveLength(0);

    const notification = await notificationOf('job.cancelled', created.id);
    expect(notification).toMatchObject({ title: 'Job “cohort cancelled mid-run” was cancelled', data: { state: 'cancelled' } });
  }, SCENARIO_MS);
});
