/**
 * The user story end to end, through the gateway only: the seven services as separate processes on
 * the real PostgreSQL (and Redis when REDIS_URL is set), a Cloudgene fake and a WES fake in the
 * catalogue, a real SMTP sink and a webhook endpoint on loopback. A researcher registers, signs in,
 * stores tokens for both servers, uploads a VCF, subscribes to a webhook, opens the live stream,
 * submits one federated job, follows it to completion, downloads every result and checks it byte
 * for byte, and is told in the app, by email and by webhook; monitoring then reports all healthy.
 *
 * One `it` per step, in order; a step whose predecessor failed says so instead of failing obscurely.
 */
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { registerAndSignIn, uploadVcf, type ApiUser, type UploadedFile } from '../support/gateway-api.ts';
import { startMailServer, type TestMailServer } from '../support/mail-server.ts';
import { sha256Hex, startFederation, waitForJob, type FakeServers, type Federation } from './support/federation.ts';
import { openEventStream, type EventStream, type StreamedNotification } from './support/sse-reader.ts';
import { waitUntil } from './support/wait.ts';
import { startWebhookReceiver, type WebhookReceiver } from './support/webhook-receiver.ts';

const SMTP_FROM = 'noreply@imputation.example.org';
const STEP_MS = 60_000;

/** What the steps hand on to each other. */
interface Story {
  user?: ApiUser;
  email?: string;
  upload?: UploadedFile;
  webhook?: { id: string; secret: string };
  stream?: EventStream;
  job?: { id: string; name: string; childIds: string[] };
  streamed?: StreamedNotification[];
}

/** A value an earlier step produced; its absence means that step failed, which this one reports. */
function after<T>(value: T | undefined, step: string): T {
  if (value === undefined) throw new Error(`cannot run: the step "${step}" did not complete`);
  return value;
}

describe.skipIf(!process.env.DATABASE_URL)('a researcher runs a federated imputation job end to end (seven processes; skipped without DATABASE_URL)', () => {
  let federation: Federation;
  let servers: FakeServers;
  let mail: TestMailServer;
  let receiver: WebhookReceiver;
  const story: Story = {};

  beforeAll(async () => {
    mail = await startMailServer();
    receiver = startWebhookReceiver();
    federation = await startFederation({
      serviceEnv: {
        // A heartbeat longer than the gateway's 30 s upstream timeout: the stream must open without waiting for one.
        notification: { SMTP_URL: `smtp://127.0.0.1:${mail.port}`, SMTP_FROM, STREAM_HEARTBEAT_SECONDS: '120' },
        // Probe the six services every second so the last step need not wait 30 s for a first round.
        monitoring: { PROBE_INTERVAL_SECONDS: '1' },
      },
    });
    // The operator's part: the two servers are in the catalogue before the researcher arrives.
    servers = await federation.addServers('flow');
  }, 120_000);

  afterAll(async () => {
    story.stream?.close();
    await federation?.stop();
    await receiver?.stop();
    await mail?.stop();
  }, 60_000);

  it('registers a researcher account and signs in through /api/auth', async () => {
    const username = `e2e-researcher-${Date.now().toString(36)}`;
    const user = await registerAndSignIn(federation.url, username);
    const me = await user.expectJson('GET', '/api/users/me', 200);
    expect(me).toMatchObject({ username, email: `${username}@example.org`, roles: ['researcher'] });
    story.user = user;
    story.email = me.email;
  }, STEP_MS);

  it('stores the Cloudgene API token and the WES bearer token in the vault', async () => {
    const user = after(story.user, 'registers a researcher');
    await servers.storeCredentials(user);
    const res = await user.call('GET', '/api/users/me/credentials');
    const text = await res.text();
    expect(res.status).toBe(200);
    const items: { serviceId: string; type: string }[] = JSON.parse(text).items;
    expect(items.map((c) => [c.serviceId, c.type]).sort()).toEqual(
      [
        [servers.slugs.cloudgene, 'cloudgene-token'],
        [servers.slugs.wes, 'wes-bearer'],
      ].sort(),
    );
    // The vault answers metadata only: the tokens never come back to the client.
    expect(text).not.toContain(servers.tokens.cloudgene);
    expect(text).not.toContain(servers.tokens.wes);
  }, STEP_MS);

  it('uploads a bgzipped VCF that passes pre-flight validation', async () => {
    const user = after(story.user, 'registers a researcher');
    // 25 samples: inside the fakes' limits and above the 20 Michigan asks for, so no warnings either.
    const upload = await uploadVcf(user, { samples: 25, name: 'cohort.chr20.vcf.gz' });
    expect(upload.body).toMatchObject({ kind: 'input', name: 'cohort.chr20.vcf.gz', sizeBytes: upload.bytes.length, sha256: sha256Hex(upload.bytes) });
    expect(upload.body.validation).toMatchObject({ ok: true, errors: [], warnings: [] });
    expect(upload.body.validation.stats).toMatchObject({ samples: 25 });
    const stored = await user.expectJson('GET', `/api/files/${upload.id}`, 200);
    expect(stored).toMatchObject({ id: upload.id, sha256: upload.sha256, validation: { ok: true } });
    story.upload = upload;
  }, STEP_MS);

  it('registers a webhook and keeps email and webhook on for job.completed, with job progress in the app', async () => {
    const user = after(story.user, 'registers a researcher');
    const hook = await user.expectJson('POST', '/api/webhooks', 201, { url: receiver.url, eventTypes: ['job.completed', 'job.failed', 'job.cancelled'], description: 'lab pipeline' });
    expect(hook).toMatchObject({ url: receiver.url, active: true, eventTypes: ['job.completed', 'job.failed', 'job.cancelled'] });
    expect(hook.secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    story.webhook = { id: hook.id, secret: hook.secret };

    const enabled = (prefs: { items: { eventType: string; channel: string; enabled: boolean }[] }, eventType: string, channel: string) =>
      prefs.items.find((p) => p.eventType === eventType && p.channel === channel)?.enabled;
    const defaults = await user.expectJson('GET', '/api/notifications/preferences', 200);
    for (const channel of ['in_app', 'email', 'webhook']) expect(enabled(defaults, 'job.completed', channel)).toBe(true);

    // Progress lines are off in the app by default; the researcher wants to watch this job move.
    const updated = await user.expectJson('PUT', '/api/notifications/preferences', 200, {
      items: [
        { eventType: 'job.created', channel: 'in_app', enabled: true },
        { eventType: 'job.status_changed', channel: 'in_app', enabled: true },
      ],
    });
    expect(enabled(updated, 'job.created', 'in_app')).toBe(true);
    expect(enabled(updated, 'job.status_changed', 'in_app')).toBe(true);
    expect(enabled(updated, 'job.completed', 'email')).toBe(true);
  }, STEP_MS);

  it('opens the live notification stream before submitting', async () => {
    const user = after(story.user, 'registers a researcher');
    // The stream subscribes before it answers, so everything after this 200 reaches it.
    story.stream = await openEventStream(`${federation.url}/api/notifications/stream`, { authorization: `Bearer ${user.accessToken}` });
    expect(story.stream.response.headers.get('content-type')).toStartWith('text/event-stream');
  }, STEP_MS);

  it('submits one federated job to the Cloudgene fake and the WES fake', async () => {
    const user = after(story.user, 'registers a researcher');
    const upload = after(story.upload, 'uploads a bgzipped VCF');
    after(story.stream, 'opens the live notification stream');
    const name = `chr20 cohort ${crypto.randomUUID().slice(0, 8)}`;
    const job = await user.expectJson('POST', '/api/jobs', 202, {
      name,
      inputFileIds: [upload.id],
      build: 'hg19',
      population: 'eur',
      targets: servers.targets,
    });
    expect(job).toMatchObject({ name, parentId: null, service: null });
    expect(job.children.map((c: any) => c.service.slug).sort()).toEqual([servers.slugs.cloudgene, servers.slugs.wes].sort());
    story.job = { id: job.id, name, childIds: job.children.map((c: any) => c.id) };
  }, STEP_MS);

  it('follows the job on the live stream until it completes', async () => {
    const stream = after(story.stream, 'opens the live notification stream');
    const job = after(story.job, 'submits one federated job');
    const ours = (n: StreamedNotification) => n.data?.jobId === job.id || job.childIds.includes(String(n.data?.jobId));
    const statesOf = (all: StreamedNotification[], jobId: string) => all.filter((n) => n.type === 'job.status_changed' && n.data?.jobId === jobId).map((n) => n.data?.state);
    // Events of different transactions may be relayed in either order (two targets finishing together),
    // so the wait is for all of them rather than for the parent's outcome alone.
    const received = (
      await stream.until(
        (all) => all.some((n) => n.type === 'job.completed' && n.data?.jobId === job.id) && job.childIds.every((id) => statesOf(all, id).includes('completed')),
        `job.completed for ${job.id} and both targets completed`,
        45_000,
      )
    ).filter(ours);
    story.streamed = received;

    // Accepted first (its event is committed before any worker can see the job), then each target and
    // the parent ran and completed, and the parent announced the outcome exactly once.
    expect(received[0]).toMatchObject({ type: 'job.created', data: { jobId: job.id } });
    for (const id of [job.id, ...job.childIds]) {
      const states = statesOf(received, id);
      expect({ id, states }).toMatchObject({ id, states: expect.arrayContaining(['running', 'completed']) });
    }
    const outcome = received.filter((n) => n.type === 'job.completed');
    expect(outcome).toHaveLength(1);
    expect(outcome[0]).toMatchObject({ title: `Job “${job.name}” completed`, data: { jobId: job.id, state: 'completed' }, link: `/jobs/${job.id}` });
    // Each notification once, under the id the inbox uses (what a client resumes from with Last-Event-ID).
    const ids = stream.events.filter((e) => e.event === 'notification').map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toContain(outcome[0]!.id);
  }, STEP_MS);

  it('keeps every result in file-manager, downloadable with the checksum the platform reports', async () => {
    const user = after(story.user, 'registers a researcher');
    const job = after(story.job, 'submits one federated job');
    const detail = await waitForJob(user, job.id, 'completed', (j) => j.state === 'completed');
    expect(detail.children.map((c: any) => c.state)).toEqual(['completed', 'completed']);
    const childOn = (slug: string) => detail.children.find((c: any) => c.service.slug === slug);

    const { items: results } = await user.expectJson('GET', `/api/jobs/${job.id}/results`, 200);
    expect(results.every((r: any) => r.state === 'stored' && r.fileId)).toBe(true);

    // What each fake actually served, by result name.
    const cloudgeneJob = servers.cloudgene.control.jobs.get(childOn(servers.slugs.cloudgene).externalId)!;
    expect(cloudgeneJob).toBeDefined();
    const cloudgeneFiles = new Map(cloudgeneJob.files.map((f) => [f.name, f.bytes]));
    const wesFiles = await wesOutputs(servers, childOn(servers.slugs.wes).externalId);
    const fromCloudgene = results.filter((r: any) => r.service === servers.slugs.cloudgene);
    const fromWes = results.filter((r: any) => r.service === servers.slugs.wes);
    expect(fromCloudgene.map((r: any) => r.name).sort()).toEqual([...cloudgeneFiles.keys()].sort());
    expect(fromWes.map((r: any) => r.name).sort()).toEqual([...wesFiles.keys()].sort());
    expect(fromCloudgene.map((r: any) => r.name)).toContain('chr_20.zip');
    // ... and nothing from anywhere else.
    expect(fromCloudgene.length + fromWes.length).toBe(results.length);

    for (const result of results) {
      const file = await user.expectJson('GET', `/api/files/${result.fileId}`, 200);
      // file-manager keeps the base name (a name is metadata, never a path); the server's own path stays in the provenance.
      expect(file).toMatchObject({
        kind: 'result',
        name: result.name.split('/').at(-1),
        provenance: { sourceService: result.service, externalJobId: result.externalJobId, externalName: result.name },
      });
      expect(job.childIds).toContain(file.jobId);
      const res = await user.call('GET', `/api/files/${result.fileId}/content`);
      expect(res.status).toBe(200);
      const bytes = new Uint8Array(await res.arrayBuffer());
      expect({ name: result.name, sha256: sha256Hex(bytes), size: bytes.length }).toEqual({ name: result.name, sha256: file.sha256, size: file.sizeBytes });
      expect(res.headers.get('etag')?.replaceAll('"', '')).toBe(file.sha256);
      const original = result.service === servers.slugs.cloudgene ? cloudgeneFiles.get(result.name) : wesFiles.get(result.name);
      expect({ name: result.name, sha256: sha256Hex(bytes) }).toEqual({ name: result.name, sha256: sha256Hex(original!) });
    }

    // The Cloudgene zips are encrypted with the password the platform submitted and keeps for the owner.
    const { password } = await user.expectJson('GET', `/api/jobs/${job.id}/password`, 200);
    expect(cloudgeneJob.password).toBe(password);
  }, STEP_MS);

  it('puts a job.completed notification in the in-app inbox', async () => {
    const user = after(story.user, 'registers a researcher');
    const job = after(story.job, 'submits one federated job');
    const inbox = await user.expectJson('GET', '/api/notifications?limit=100', 200);
    const completed = inbox.items.filter((n: any) => n.type === 'job.completed' && n.data?.jobId === job.id);
    expect(completed).toHaveLength(1);
    expect(completed[0]).toMatchObject({ title: `Job “${job.name}” completed`, link: `/jobs/${job.id}`, readAt: null });
    // The one the stream delivered live is the same notification.
    expect(story.streamed?.find((n) => n.type === 'job.completed')?.id).toBe(completed[0].id);
    // Nothing was read yet, so the badge counts every notification in the inbox (read twice, as one
    // could arrive between the two reads).
    await waitUntil(
      'the unread count to equal the unread notifications in the inbox',
      async () => ({
        count: (await user.expectJson('GET', '/api/notifications/unread-count', 200)).count,
        inInbox: (await user.expectJson('GET', '/api/notifications?limit=100', 200)).items.filter((n: any) => n.readAt === null).length,
      }),
      (seen) => seen.count === seen.inInbox,
      { timeoutMs: 5_000 },
    );
  }, STEP_MS);

  it('emails the researcher that the job completed', async () => {
    const email = after(story.email, 'registers a researcher');
    const job = after(story.job, 'submits one federated job');
    const message = await waitUntil(
      `an email to ${email} about ${job.name}`,
      async () => mail.received.find((m) => m.envelope.to.includes(email) && (m.headers.get('subject') ?? '').includes(job.name)) ?? mail.received.map((m) => ({ to: m.envelope.to, subject: m.headers.get('subject') })),
      (found) => !Array.isArray(found),
    );
    if (Array.isArray(message)) throw new Error('unreachable');
    expect(message.envelope.from).toBe(SMTP_FROM);
    expect(message.headers.get('subject')).toBe(`[Imputation] Job “${job.name}” completed`);
    expect(message.text).toContain(`${federation.url}/jobs/${job.id}`);
    expect(message.html).toContain(`${federation.url}/jobs/${job.id}`);
    // Only the outcome is mailed: no email per status change of the job or its targets.
    expect(mail.received.filter((m) => m.envelope.to.includes(email))).toHaveLength(1);
  }, STEP_MS);

  it('delivers a job.completed webhook signed with the secret shown at registration', async () => {
    const user = after(story.user, 'registers a researcher');
    const webhook = after(story.webhook, 'registers a webhook');
    const job = after(story.job, 'submits one federated job');
    const delivery = await receiver.waitFor(`a job.completed delivery for ${job.id}`, (d) => d.payload.type === 'job.completed' && d.payload.data.jobId === job.id);
    expect(receiver.verify(delivery, webhook.secret)).toBe(true);
    // The signature covers the exact bytes: a changed body or another secret does not verify.
    expect(receiver.verify({ ...delivery, body: delivery.body.replace(job.id, crypto.randomUUID()) }, webhook.secret)).toBe(false);
    expect(receiver.verify(delivery, `whsec_${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64')}`)).toBe(false);
    expect(delivery.payload.data).toMatchObject({ jobId: job.id, state: 'completed', name: job.name });

    const log = await waitUntil(
      'the delivery logged as succeeded',
      () => user.expectJson('GET', `/api/webhooks/${webhook.id}/deliveries`, 200),
      (page) => page.items.some((d: any) => d.id === delivery.headers.get('webhook-id') && d.state === 'succeeded'),
    );
    expect(log.items.find((d: any) => d.id === delivery.headers.get('webhook-id'))).toMatchObject({ eventType: 'job.completed', responseStatus: 204, attempts: 1 });
  }, STEP_MS);

  it('reports every service healthy in monitoring and at the gateway', async () => {
    const user = after(story.user, 'registers a researcher');
    const overall = await waitUntil(
      'monitoring to report all six services healthy',
      () => user.expectJson('GET', '/api/monitoring/health/overall', 200),
      (o) => o.overall_status === 'healthy' && o.services.length === 6,
    );
    expect(overall.services.map((s: any) => s.service_name).sort()).toEqual(['api-gateway', 'file-manager', 'job-processor', 'notification', 'service-registry', 'user-service']);
    expect(overall.services.every((s: any) => s.status === 'healthy')).toBe(true);
    expect(overall.active_alerts).toEqual([]);

    const res = await fetch(`${federation.url}/health`);
    expect(res.status).toBe(200);
    const gateway = (await res.json()) as { status: string; services: Record<string, string> };
    expect(gateway.status).toBe('healthy');
    expect(Object.values(gateway.services)).toEqual(Array(6).fill('healthy'));
  }, STEP_MS);
});

/** The WES fake's outputs of a run, fetched from the fake itself with the run owner's token: name → bytes. */
async function wesOutputs(servers: FakeServers, runId: string): Promise<Map<string, Uint8Array>> {
  const auth = { authorization: `Bearer ${servers.tokens.wes}` };
  const run = (await (await fetch(`${servers.wes.url}/runs/${runId}`, { headers: auth })).json()) as { state: string; outputs: Record<string, string> };
  expect(run.state).toBe('COMPLETE');
  const out = new Map<string, Uint8Array>();
  for (const url of Object.values(run.outputs)) {
    const res = await fetch(url, { headers: auth });
    expect(res.status).toBe(200);
    out.set(new URL(url).pathname.split('/').at(-1)!, new Uint8Array(await res.arrayBuffer()));
  }
  return out;
}
