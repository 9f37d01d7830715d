/**
 * job-processor's protocol adapters against the faithful fake servers (tests/fakes): the Cloudgene 3
 * / MIS2 adapter and the GA4GH WES 1.0/1.1 adapter, plus the streamed multipart body they upload with.
 * Inputs are small in-memory bgzipped VCFs; WES input links point at a tiny local server.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'bun:test';
import { gunzipSync } from 'node:zlib';
import { outboundPolicy } from '@shared/outbound.ts';
import type { JobTarget } from '../../services/job-processor/src/domain.ts';
import { AdapterError, type InputFile, type ProtocolAdapter, type ResultRef, type ServerCredential, type SubmitRequest } from '../../services/job-processor/src/adapters/adapter.ts';
import { createAdapters } from '../../services/job-processor/src/adapters/adapters.ts';
import { createCloudgeneAdapter, parseSize } from '../../services/job-processor/src/adapters/cloudgene-adapter.ts';
import { multipartBody, type MultipartPart } from '../../services/job-processor/src/adapters/multipart-body.ts';
import { createWesAdapter, outputRefs } from '../../services/job-processor/src/adapters/wes-adapter.ts';
import { DEFAULT_QC_FAILURE_MESSAGE, makeFakeJwt, startCloudgeneFake, type CloudgeneFake } from '../fakes/cloudgene.ts';
import { FAKE_VCF, startWesFake, type WesFake, type WesState } from '../fakes/wes.ts';
import { bgzip, makeVcf } from '../support/vcf.ts';

const ALICE = makeFakeJwt('alice');
const cloudgeneCredential: ServerCredential = { type: 'cloudgene-token', token: ALICE };
const WES_TOKEN = 'wes-token-alice';
const wesCredential: ServerCredential = { type: 'wes-bearer', token: WES_TOKEN };
const WORKFLOW = { url: 'https://example.org/imputation/main.nf', type: 'Nextflow', typeVersion: '23.04' };

const CHR20 = bgzip(makeVcf({ chromosome: '20', samples: 4, positions: [100, 200, 300, 400] }));
const CHR21 = bgzip(makeVcf({ chromosome: '21', samples: 4, positions: [150, 250], seed: 7 }));

const encoder = new TextEncoder();
const unique = () => crypto.randomUUID().slice(0, 8);

/** Serves input bytes at `/inputs/{id}` (what a signed file-manager link would be) and records who asked. */
let inputServer: ReturnType<typeof Bun.serve>;
const inputBytes = new Map<string, Uint8Array>();
const inputServerRequests: { path: string; authorization: string | null }[] = [];

/** An input whose bytes stream in small chunks, as file-manager would stream them. */
function inputFile(name: string, bytes: Uint8Array, chunkSize = 64): InputFile {
  const id = crypto.randomUUID();
  inputBytes.set(id, bytes);
  return {
    id,
    name,
    sizeBytes: bytes.length,
    async open() {
      let offset = 0;
      return new ReadableStream<Uint8Array>({
        pull(controller) {
          if (offset >= bytes.length) return controller.close();
          controller.enqueue(bytes.slice(offset, offset + chunkSize));
          offset += chunkSize;
        },
      });
    },
    async link() {
      return `http://127.0.0.1:${inputServer.port}/inputs/${id}?signature=test`;
    },
  };
}

function target(protocol: 'cloudgene' | 'ga4gh-wes', baseUrl: string, panel: Partial<JobTarget['panel']> = {}): JobTarget {
  return {
    service: {
      id: crypto.randomUUID(),
      slug: protocol === 'cloudgene' ? 'michigan' : 'elwazi',
      name: protocol === 'cloudgene' ? 'Fake Michigan' : 'Fake WES',
      protocol,
      baseUrl,
      appId: protocol === 'cloudgene' ? 'imputationserver2' : null,
      credentialType: protocol === 'cloudgene' ? 'cloudgene-token' : 'wes-bearer',
      limits: {},
    },
    panel: { id: crypto.randomUUID(), externalId: 'hapmap-2', externalKey: 'apps@hapmap-2@2.0.0', displayName: 'HapMap 2', build: 'hg19', ...panel },
  };
}

function submitRequest(t: JobTarget, credential: ServerCredential, overrides: Partial<SubmitRequest> = {}): SubmitRequest {
  return {
    target: t,
    credential,
    externalName: `fip-${unique()}-1`,
    inputs: [inputFile('cohort.chr20.vcf.gz', CHR20)],
    build: 'hg19',
    phasing: 'eagle',
    population: 'eur',
    mode: 'imputation',
    r2Filter: 0.3,
    password: 'Escrowed-pw_1!',
    ...overrides,
  };
}

/** Runs `fn` and returns the AdapterError it throws (failing when it throws something else or nothing). */
async function adapterError(fn: () => Promise<unknown>): Promise<AdapterError> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof AdapterError) return err;
    throw err;
  }
  throw new Error('expected an AdapterError, but the call succeeded');
}

async function bytesOf(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer()) as Uint8Array;
}

async function fileBytes(file: File): Promise<Uint8Array> {
  return new Uint8Array(await file.arrayBuffer()) as Uint8Array;
}

beforeAll(() => {
  inputServer = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch(req) {
      const url = new URL(req.url);
      inputServerRequests.push({ path: url.pathname, authorization: req.headers.get('authorization') });
      const bytes = inputBytes.get(url.pathname.replace('/inputs/', ''));
      return bytes ? new Response(bytes) : new Response('not found', { status: 404 });
    },
  });
});
afterAll(async () => {
  await inputServer.stop(true);
});

// ---------------------------------------------------------------------------------------------

describe('multipartBody', () => {
  it('streams text fields and file parts that a form parser reads back byte for byte, with the exact length', async () => {
    const parts: MultipartPart[] = [
      { name: 'refpanel', value: 'apps@hapmap-2@2.0.0' },
      { name: 'job-name', value: 'fip-ünïcode-1' },
      { name: 'files', filename: 'a.vcf.gz', contentType: 'application/gzip', size: CHR20.length, open: () => inputFile('a', CHR20, 7).open() },
      { name: 'files', filename: 'b.vcf.gz', contentType: 'application/gzip', size: CHR21.length, open: () => inputFile('b', CHR21).open() },
    ];
    const form = multipartBody(parts);
    const raw = await bytesOf(form.body);
    expect(form.contentLength).toBe(raw.length);
    const parsed = await new Response(raw, { headers: { 'content-type': form.contentType } }).formData();
    expect(parsed.get('refpanel')).toBe('apps@hapmap-2@2.0.0');
    expect(parsed.get('job-name')).toBe('fip-ünïcode-1');
    const files = parsed.getAll('files') as unknown as File[];
    expect(files.map((f) => f.name)).toEqual(['a.vcf.gz', 'b.vcf.gz']);
    expect(await fileBytes(files[0]!)).toEqual(CHR20);
    expect(await fileBytes(files[1]!)).toEqual(CHR21);
  });

  it('opens each file only when the body reaches it and pulls it chunk by chunk', async () => {
    const opened: string[] = [];
    const lazy = (name: string, bytes: Uint8Array): MultipartPart => ({
      name: 'files',
      filename: name,
      size: bytes.length,
      open: async () => {
        opened.push(name);
        return inputFile(name, bytes, 16).open();
      },
    });
    const form = multipartBody([lazy('first', CHR20), lazy('second', CHR21)]);
    const reader = form.body.getReader();
    await reader.read(); // the first part's header
    expect(opened).toEqual([]);
    const chunk = await reader.read(); // the first 16 bytes of the first file, not the whole file
    expect(opened).toEqual(['first']);
    expect(chunk.value).toEqual(CHR20.slice(0, 16));
    await reader.cancel();
    expect(opened).toEqual(['first']);
  });

  it('has no length when a size is unknown, so the body goes out chunked', () => {
    const form = multipartBody([{ name: 'files', filename: 'x', size: null, open: () => inputFile('x', CHR20).open() }]);
    expect(form.contentLength).toBeNull();
  });

  it('fails the body when a file yields fewer bytes than declared', async () => {
    const form = multipartBody([{ name: 'files', filename: 'x', size: CHR20.length + 5, open: () => inputFile('x', CHR20).open() }]);
    await expect(bytesOf(form.body)).rejects.toThrow(/declared/);
  });

  it('percent-encodes quotes and line breaks in file names so a name cannot forge a part', async () => {
    const form = multipartBody([{ name: 'files', filename: 'evil"\r\nContent-Disposition: x.vcf.gz', size: 1, open: () => inputFile('x', new Uint8Array([1])).open() }]);
    const text = new TextDecoder().decode(await bytesOf(form.body));
    expect(text).toContain('filename="evil%22%0D%0AContent-Disposition: x.vcf.gz"');
    expect(text.split('\r\n').filter((line) => line.startsWith('Content-Disposition')).length).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------

describe('Cloudgene adapter', () => {
  let fake: CloudgeneFake;
  let adapter: ProtocolAdapter;
  let t: JobTarget;
  /** Raw submit bodies as the adapter sent them (the fake records names and sizes, not bytes). */
  const sentBodies: { headers: Record<string, string>; body: Uint8Array }[] = [];
  const capturingFetch = (async (input: Parameters<typeof fetch>[0], init?: RequestInit) => {
    if (init?.body instanceof ReadableStream) {
      const [toServer, toTest] = (init.body as ReadableStream<Uint8Array>).tee();
      const captured = bytesOf(toTest);
      const response = await fetch(input, { ...init, body: toServer });
      sentBodies.push({ headers: init.headers as Record<string, string>, body: await captured });
      return response;
    }
    return fetch(input, init);
  }) as typeof fetch;

  beforeAll(async () => {
    fake = await startCloudgeneFake({ tokens: { [ALICE]: 'alice' }, progression: 'manual', maxActiveJobs: 1000 });
    adapter = createCloudgeneAdapter({ fetch: capturingFetch, timeoutMs: 5000, userAgent: 'fip-test' });
    t = target('cloudgene', fake.url);
  });
  afterAll(async () => {
    await fake.stop();
  });
  beforeEach(() => {
    fake.control.clearFaults();
    fake.control.clearRequests();
    fake.control.maintenance = false;
  });

  async function submitted(overrides: Partial<SubmitRequest> = {}): Promise<string> {
    return (await adapter.submit(submitRequest(t, cloudgeneCredential, overrides))).externalId;
  }

  describe('submit', () => {
    it('sends X-Auth-Token (never Authorization), every field, and one files part per input with its bytes', async () => {
      const request = submitRequest(t, cloudgeneCredential, {
        inputs: [inputFile('cohort.chr20.vcf.gz', CHR20), inputFile('cohort.chr21.vcf.gz', CHR21)],
        build: 'hg38',
        phasing: 'beagle',
        population: 'afr',
        mode: 'qc_only',
        r2Filter: 0.001,
      });
      const { externalId } = await adapter.submit(request);
      expect(externalId).toMatch(/^job-\d{8}-\d{6}-\d{3}$/);

      const [recorded] = fake.control.requestsTo('/api/v2/jobs/submit/imputationserver2', 'POST');
      expect(recorded!.headers['x-auth-token']).toBe(ALICE);
      expect(recorded!.headers.authorization).toBeUndefined();
      expect(recorded!.headers['user-agent']).toBe('fip-test');
      expect(recorded!.status).toBe(200);
      expect(recorded!.form).toMatchObject({
        refpanel: 'apps@hapmap-2@2.0.0',
        build: 'hg38',
        phasing: 'beagle',
        population: 'afr',
        mode: 'qc_only',
        r2Filter: '0.001',
        password: 'Escrowed-pw_1!',
        'job-name': request.externalName,
      });
      expect(recorded!.files).toEqual([
        { field: 'files', name: 'cohort.chr20.vcf.gz', size: CHR20.length, type: 'application/gzip' },
        { field: 'files', name: 'cohort.chr21.vcf.gz', size: CHR21.length, type: 'application/gzip' },
      ]);
      const job = fake.control.jobs.get(externalId)!;
      expect(job.name).toBe(request.externalName);
      expect(job.password).toBe('Escrowed-pw_1!');

      // The exact bytes went out, with a Content-Length the server could rely on.
      const sent = sentBodies.at(-1)!;
      expect(Number(sent.headers['content-length'])).toBe(sent.body.length);
      const form = await new Response(sent.body, { headers: { 'content-type': sent.headers['content-type']! } }).formData();
      const files = form.getAll('files') as unknown as File[];
      expect(await fileBytes(files[0]!)).toEqual(CHR20);
      expect(await fileBytes(files[1]!)).toEqual(CHR21);
    });

    it('sends the bare panel id when the apps@ key is unknown, and population off when none was chosen', async () => {
      await submitted({ target: target('cloudgene', fake.url, { externalKey: null, externalId: 'hrc-r1.1' }), population: '' });
      const [recorded] = fake.control.requestsTo('/api/v2/jobs/submit', 'POST');
      expect(recorded!.form).toMatchObject({ refpanel: 'hrc-r1.1', population: 'off' });
    });

    it("answers busy when the user's active-job limit is reached (the third concurrent job)", async () => {
      const limited = await startCloudgeneFake({ tokens: { [ALICE]: 'alice' }, progression: 'manual' });
      try {
        const lt = target('cloudgene', limited.url);
        await adapter.submit(submitRequest(lt, cloudgeneCredential));
        await adapter.submit(submitRequest(lt, cloudgeneCredential));
        const err = await adapterError(() => adapter.submit(submitRequest(lt, cloudgeneCredential)));
        expect(err.kind).toBe('busy');
        expect(err.httpStatus).toBe(400);
        expect(err.message).toBe('Only 2 jobs per user can be executed simultaneously.');
      } finally {
        await limited.stop();
      }
    });

    it('answers auth for a token the server does not know', async () => {
      const err = await adapterError(() => adapter.submit(submitRequest(t, { type: 'cloudgene-token', token: makeFakeJwt('mallory') })));
      expect(err.kind).toBe('auth');
      expect(err.httpStatus).toBe(401);
      expect(err.hint).toContain('API token');
    });

    it('answers auth without calling the server when the credential is not a Cloudgene token', async () => {
      const err = await adapterError(() => adapter.submit(submitRequest(t, { type: 'wes-bearer', token: 'x' })));
      expect(err.kind).toBe('auth');
      expect(fake.control.requestsTo('/api/v2/jobs/submit')).toHaveLength(0);
    });

    it("rejects with the server's message when the server refuses a field (400)", async () => {
      const err = await adapterError(() => submitted({ target: target('cloudgene', fake.url, { externalKey: null, externalId: '' }) }));
      expect(err.kind).toBe('rejected');
      expect(err.httpStatus).toBe(400);
      expect(err.message).toBe("Parameter 'refpanel' is required.");
    });

    it('rejects when the server does not host the app (404)', async () => {
      const other = target('cloudgene', fake.url);
      other.service.appId = 'minimac4';
      const err = await adapterError(() => adapter.submit(submitRequest(other, cloudgeneCredential)));
      expect(err.kind).toBe('rejected');
      expect(err.httpStatus).toBe(404);
    });

    it("rejects with the server's message for an unknown parameter and for a plain-text 400 (an older app)", async () => {
      // The fake knows every field the adapter sends; an older app that lacks one answers like this.
      const bodies = [
        { body: JSON.stringify({ message: "Parameter 'r2Filter' not found.", success: false }), type: 'application/json', expected: "Parameter 'r2Filter' not found." },
        { body: 'java.lang.NullPointerException: Cannot invoke "String.trim()"', type: 'text/plain', expected: 'java.lang.NullPointerException: Cannot invoke "String.trim()"' },
      ];
      for (const { body, type, expected } of bodies) {
        const old = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: async (req) => (await req.arrayBuffer(), new Response(body, { status: 400, headers: { 'content-type': type } })) });
        try {
          const err = await adapterError(() => adapter.submit(submitRequest(target('cloudgene', `http://127.0.0.1:${old.port}`), cloudgeneCredential)));
          expect(err.kind).toBe('rejected');
          expect(err.message).toBe(expected);
        } finally {
          await old.stop(true);
        }
      }
    });

    it('answers transient for a 500, for maintenance (503) and for a refused connection', async () => {
      fake.control.addFault({ kind: 'status500', path: '/api/v2/jobs/submit', times: 1 });
      const e500 = await adapterError(() => submitted());
      expect(e500.kind).toBe('transient');
      expect(e500.httpStatus).toBe(500);

      fake.control.maintenance = true;
      const e503 = await adapterError(() => submitted());
      expect(e503.kind).toBe('transient');
      expect(e503.message).toContain('under maintenance');

      const closed = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('') });
      const port = closed.port;
      await closed.stop(true);
      const refused = await adapterError(() => adapter.submit(submitRequest(target('cloudgene', `http://127.0.0.1:${port}`), cloudgeneCredential)));
      expect(refused.kind).toBe('transient');
    });

    it('answers transient when the server hangs past the timeout', async () => {
      const quick = createCloudgeneAdapter({ timeoutMs: 300 });
      fake.control.addFault({ kind: 'hang', path: '/api/v2/jobs/submit' });
      const err = await adapterError(() => quick.submit(submitRequest(t, cloudgeneCredential)));
      expect(err.kind).toBe('transient');
      expect(err.message).toContain('did not answer');
      fake.control.clearFaults();
    });

    it("stops the upload when the caller's signal aborts, without classifying it as a server fault", async () => {
      const controller = new AbortController();
      fake.control.addFault({ kind: 'hang', path: '/api/v2/jobs/submit' });
      const pending = adapter.submit(submitRequest(t, cloudgeneCredential, { signal: controller.signal }));
      setTimeout(() => controller.abort(new Error('worker stopping')), 50);
      await expect(pending).rejects.toThrow('worker stopping');
      fake.control.clearFaults();
    });
  });

  describe('status', () => {
    // Every Cloudgene state (§1.6) and how the fake is driven into it.
    const cases: { state: number; drive: (id: string) => void; expected: string; code?: string }[] = [
      { state: 1, drive: () => {}, expected: 'queued' },
      { state: 2, drive: (id) => fake.control.advance(id, 2), expected: 'running' },
      { state: 3, drive: (id) => fake.control.advance(id, 3), expected: 'exporting' },
      { state: 4, drive: (id) => fake.control.advance(id, 4), expected: 'completed' },
      { state: 5, drive: (id) => fake.control.advance(id, 5), expected: 'failed', code: 'qc_failed' },
      { state: 6, drive: (id) => fake.control.advance(id, 6), expected: 'cancelled' },
      { state: 7, drive: (id) => (fake.control.advance(id, 4), fake.control.advance(id, 7)), expected: 'expired', code: 'results_expired' },
      { state: 8, drive: (id) => (fake.control.advance(id, 4), fake.control.advance(id, 8)), expected: 'completed' },
      { state: 9, drive: (id) => (fake.control.advance(id, 5), fake.control.advance(id, 9)), expected: 'failed', code: 'qc_failed' },
      { state: 10, drive: (id) => fake.control.advance(id, 10), expected: 'failed', code: 'deleted_upstream' },
      { state: -1, drive: (id) => (fake.control.advance(id, 2), fake.control.kill(id)), expected: 'failed', code: 'server_restarted' },
    ];
    for (const c of cases) {
      it(`maps state ${c.state} to ${c.expected}${c.code ? ` (${c.code})` : ''}`, async () => {
        const id = await submitted();
        c.drive(id);
        expect(fake.control.jobs.get(id)!.state).toBe(c.state);
        const status = await adapter.status(t, cloudgeneCredential, id);
        expect(status.state).toBe(c.expected as never);
        expect(status.externalState).toBe(String(c.state));
        expect(status.error?.code).toBe(c.code as never);
        if (c.code) expect(status.error!.hint).toBeTruthy();
        expect(status.progress).toBeGreaterThanOrEqual(0);
        expect(status.progress).toBeLessThanOrEqual(100);
      });
    }

    it('polls GET /api/v2/jobs/{id}/status with the raw token', async () => {
      const id = await submitted();
      fake.control.clearRequests();
      await adapter.status(t, cloudgeneCredential, id);
      expect(fake.control.requests.map((r) => `${r.method} ${r.path}`)).toEqual([`GET /api/v2/jobs/${id}/status`]);
      expect(fake.control.requests[0]!.headers['x-auth-token']).toBe(ALICE);
    });

    it('gives the queue position of a waiting job', async () => {
      const id = await submitted();
      const status = await adapter.status(t, cloudgeneCredential, id);
      // The newest of the waiting jobs is last in the queue.
      const waiting = [...fake.control.jobs.values()].filter((j) => j.state === 1).length;
      expect(status.queuePosition).toBe(waiting - 1);
    });

    it('tells a cancelled job with a retire date (9) from a failed one', async () => {
      const id = await submitted();
      await adapter.cancel(t, cloudgeneCredential, id);
      fake.control.advance(id, 9);
      const status = await adapter.status(t, cloudgeneCredential, id);
      expect(status.state).toBe('cancelled');
      expect(status.externalState).toBe('9');
    });

    it('gives a retire-noticed job (8) the date the server deletes its results', async () => {
      const id = await submitted();
      fake.control.advance(id, 8);
      const noticed = await adapter.status(t, cloudgeneCredential, id);
      expect(noticed.state).toBe('completed');
      expect(noticed.resultsExpireAt).toEqual(new Date(fake.control.jobs.get(id)!.deletedOn));
      expect(noticed.resultsExpireAt!.getTime()).toBeGreaterThan(Date.now());
    });

    it('follows the fake clock: success → retire notice (8) after 4 days → expired (7) after 7', async () => {
      const clocked = await startCloudgeneFake({ tokens: { [ALICE]: 'alice' }, progression: 'manual' });
      try {
        const ct = target('cloudgene', clocked.url);
        const { externalId: id } = await adapter.submit(submitRequest(ct, cloudgeneCredential));
        clocked.control.complete(id);
        expect((await adapter.status(ct, cloudgeneCredential, id)).state).toBe('completed');
        clocked.control.advanceClockDays(4);
        const noticed = await adapter.status(ct, cloudgeneCredential, id);
        expect(noticed.externalState).toBe('8');
        expect(noticed.state).toBe('completed');
        expect(noticed.resultsExpireAt).toEqual(new Date(clocked.control.jobs.get(id)!.deletedOn));
        clocked.control.advanceClockDays(3);
        const expired = await adapter.status(ct, cloudgeneCredential, id);
        expect(expired.externalState).toBe('7');
        expect(expired.state).toBe('expired');
      } finally {
        await clocked.stop();
      }
    });

    it('fails an unknown state number as unknown_state instead of hiding it', async () => {
      const id = await submitted();
      fake.control.jobs.get(id)!.state = 42;
      const status = await adapter.status(t, cloudgeneCredential, id);
      expect(status.state).toBe('failed');
      expect(status.externalState).toBe('42');
      expect(status.error?.code).toBe('unknown_state');
    });

    it("surfaces a QC failure with the server's step message, HTML stripped", async () => {
      const id = await submitted();
      fake.control.failQc(id);
      fake.control.complete(id);
      const status = await adapter.status(t, cloudgeneCredential, id);
      expect(status.state).toBe('failed');
      expect(status.error!.code).toBe('qc_failed');
      expect(status.error!.message).toBe('Error: More than 100 obvious strand flips have been detected. Please check strand. Imputation cannot be started!');
      expect(DEFAULT_QC_FAILURE_MESSAGE).toContain('<b>Error:</b>');
      expect(status.error!.hint).toContain('strand');
      expect(status.steps).toContainEqual(expect.objectContaining({ step: 'Quality Control', level: 'error', message: status.error!.message }));
      expect(status.steps.find((s) => s.step === 'Input Validation' && s.level === 'info')!.message).toContain('Samples: 51\nChromosomes: 20');
    });

    it('classifies an input-validation failure as pipeline_failed with the server message', async () => {
      const id = await submitted({ target: target('cloudgene', fake.url, { externalKey: 'apps@no-such-panel@1.0.0' }) });
      fake.control.complete(id);
      const status = await adapter.status(t, cloudgeneCredential, id);
      expect(status.state).toBe('failed');
      expect(status.error!.code).toBe('pipeline_failed');
      expect(status.error!.message).toBe("Error: Application 'apps@no-such-panel@1.0.0' is not installed or wrong permissions.");
    });

    it('maps steps to lines with levels and times, keeping the escrowed password out of them', async () => {
      const id = await submitted();
      fake.control.complete(id);
      const status = await adapter.status(t, cloudgeneCredential, id);
      expect(status.state).toBe('completed');
      expect(status.progress).toBe(100);
      expect(status.steps.map((s) => s.step)).toEqual(['Input Validation', 'Quality Control', 'Phasing and Imputation', 'Summary']);
      for (const line of status.steps) {
        expect(line.level).toBe('info');
        expect(line.message).not.toContain('<');
        expect(new Date(line.at!).toISOString()).toBe(line.at!);
        expect(line.message).not.toContain('Escrowed-pw_1!');
      }
      expect(status.steps.at(-1)!.message).toContain('password: [kept by the platform]');
    });

    it('answers gone for a job the server does not have', async () => {
      const err = await adapterError(() => adapter.status(t, cloudgeneCredential, 'job-20990101-000000-000'));
      expect(err.kind).toBe('gone');
      expect(err.httpStatus).toBe(404);
    });

    it('answers transient for a malformed job document', async () => {
      const id = await submitted();
      fake.control.addFault({ kind: 'malformedJson', path: `/api/v2/jobs/${id}/status`, times: 1 });
      const err = await adapterError(() => adapter.status(t, cloudgeneCredential, id));
      expect(err.kind).toBe('transient');
    });
  });

  describe('cancel', () => {
    it('cancels upstream with a GET, and the server marks the job cancelled (6)', async () => {
      const id = await submitted();
      fake.control.advance(id, 2);
      fake.control.clearRequests();
      await adapter.cancel(t, cloudgeneCredential, id);
      expect(fake.control.requests.map((r) => `${r.method} ${r.path}`)).toEqual([`GET /api/v2/jobs/${id}/cancel`]);
      expect(fake.control.jobs.get(id)!.state).toBe(6);
      expect((await adapter.status(t, cloudgeneCredential, id)).state).toBe('cancelled');
    });

    it('answers gone when the job is not there', async () => {
      expect((await adapterError(() => adapter.cancel(t, cloudgeneCredential, 'job-20990101-000000-001'))).kind).toBe('gone');
    });
  });

  describe('results and download', () => {
    it("lists outputParams files with /share/results URLs and downloads the fake's zip byte for byte, without credentials", async () => {
      const id = await submitted();
      fake.control.complete(id);
      const refs = await adapter.results(t, cloudgeneCredential, id);
      const job = fake.control.jobs.get(id)!;
      expect(refs.map((r) => r.name).sort()).toEqual(['chr_20.zip', 'qc_report.txt', 'quality-control.html', 'statistics/snps-excluded.txt']);
      const zipRef = refs.find((r) => r.name === 'chr_20.zip')!;
      const zipFile = job.files.find((f) => f.name === 'chr_20.zip')!;
      expect(zipRef.source).toMatchObject({ hash: zipFile.hash, count: 10, downloadUrl: `${fake.url}/share/results/${zipFile.hash}/chr_20.zip` });
      expect(refs.find((r) => r.name === 'statistics/snps-excluded.txt')!.source.downloadUrl).toBe(
        `${fake.url}/share/results/${job.files.find((f) => f.name === 'statistics/snps-excluded.txt')!.hash}/statistics/snps-excluded.txt`,
      );

      fake.control.clearRequests();
      const { body, sizeBytes } = await adapter.download(t, cloudgeneCredential, zipRef);
      const bytes = await bytesOf(body);
      expect(bytes).toEqual(zipFile.bytes);
      expect(sizeBytes).toBe(zipFile.bytes.length);
      expect(fake.control.requests).toHaveLength(1);
      expect(fake.control.requests[0]!.headers['x-auth-token']).toBeUndefined();
      expect(fake.control.requests[0]!.headers.authorization).toBeUndefined();
      expect(zipFile.count).toBe(9);
    });

    it('answers gone once the per-file download counter is used up', async () => {
      const id = await submitted();
      fake.control.complete(id);
      const ref = (await adapter.results(t, cloudgeneCredential, id)).find((r) => r.name === 'qc_report.txt')!;
      fake.control.jobs.get(id)!.files.find((f) => f.name === 'qc_report.txt')!.count = 1;
      await bytesOf((await adapter.download(t, cloudgeneCredential, ref)).body);
      const err = await adapterError(() => adapter.download(t, cloudgeneCredential, ref));
      expect(err.kind).toBe('gone');
      expect(err.httpStatus).toBe(400);
      expect(err.message).toContain('download limit');
      expect(err.message).toContain('number of max downloads exceeded.');
    });

    it('answers gone for a file hash the server does not know (404)', async () => {
      const ref: ResultRef = { name: 'chr_1.zip', sizeBytes: null, source: { hash: 'a'.repeat(64), fileName: 'chr_1.zip' } };
      expect((await adapterError(() => adapter.download(t, cloudgeneCredential, ref))).kind).toBe('gone');
    });

    it('follows one redirect to a presigned URL (S3 workspace) without credentials', async () => {
      const id = await submitted();
      fake.control.complete(id);
      const ref = (await adapter.results(t, cloudgeneCredential, id)).find((r) => r.name === 'chr_20.zip')!;
      const redirects: string[] = [];
      const s3Like = Bun.serve({
        hostname: '127.0.0.1',
        port: 0,
        fetch(req) {
          const url = new URL(req.url);
          redirects.push(`${url.pathname} ${req.headers.get('x-auth-token') ?? '-'}`);
          return new Response(null, { status: 302, headers: { location: `${fake.url}${url.pathname}?X-Amz-Signature=abc` } });
        },
      });
      try {
        fake.control.clearRequests();
        const { body } = await adapter.download(target('cloudgene', `http://127.0.0.1:${s3Like.port}`), cloudgeneCredential, ref);
        expect(await bytesOf(body)).toEqual(fake.control.jobs.get(id)!.files.find((f) => f.name === 'chr_20.zip')!.bytes);
        expect(redirects).toEqual([`/share/results/${ref.source.hash}/chr_20.zip -`]);
        expect(fake.control.requests).toHaveLength(1);
        expect(fake.control.requests[0]!.headers['x-auth-token']).toBeUndefined();
      } finally {
        await s3Like.stop(true);
      }
    });

    it('answers gone for the results of a retired job (7)', async () => {
      const id = await submitted();
      fake.control.complete(id);
      fake.control.advance(id, 7);
      expect((await adapterError(() => adapter.results(t, cloudgeneCredential, id))).kind).toBe('gone');
    });

    it('lists only the QC files of a QC-failed job', async () => {
      const id = await submitted();
      fake.control.failQc(id);
      fake.control.complete(id);
      const names = (await adapter.results(t, cloudgeneCredential, id)).map((r) => r.name).sort();
      expect(names).toEqual(['qc_report.txt', 'quality-control.html', 'statistics/snps-excluded.txt']);
    });

    it("reads Cloudgene's rounded sizes as hints", () => {
      expect(parseSize('17 KB')).toBe(17 * 1024);
      expect(parseSize('512 bytes')).toBe(512);
      expect(parseSize('1.5 MB')).toBe(1.5 * 1024 * 1024);
      expect(parseSize('about a lot')).toBeNull();
      expect(parseSize(undefined)).toBeNull();
    });
  });

  describe('find', () => {
    it('finds a submission by its externalName in the jobs list, also beyond the first page, and null when absent', async () => {
      const name = `fip-${unique()}-2`;
      const id = await submitted({ externalName: name });
      // Push it off the first page (15 jobs, newest first).
      for (let i = 0; i < 16; i++) await submitted();
      fake.control.clearRequests();
      expect(await adapter.find(t, cloudgeneCredential, name)).toBe(id);
      expect(fake.control.requestsTo('/api/v2/jobs', 'GET').map((r) => r.query.page)).toEqual(['1', '2']);
      expect(await adapter.find(t, cloudgeneCredential, `fip-${unique()}-9`)).toBeNull();
    });

    it('accepts a server that answers the jobs list as a bare array', async () => {
      const id = 'job-20240101-000000-000';
      const old = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => Response.json([{ id, name: 'fip-old-1', state: 4 }]) });
      try {
        const ot = target('cloudgene', `http://127.0.0.1:${old.port}`);
        expect(await adapter.find(ot, cloudgeneCredential, 'fip-old-1')).toBe(id);
        expect(await adapter.find(ot, cloudgeneCredential, 'fip-other-1')).toBeNull();
      } finally {
        await old.stop(true);
      }
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('WES adapter', () => {
  let wes11: WesFake;
  let wes10: WesFake;
  let open: WesFake;
  let adapter: ProtocolAdapter;
  let t11: JobTarget;
  let t10: JobTarget;

  beforeAll(async () => {
    wes11 = await startWesFake({ version: '1.1.0', tokens: [WES_TOKEN], autoAdvance: 'manual' });
    wes10 = await startWesFake({ version: '1.0.0', tokens: [WES_TOKEN], autoAdvance: 'manual' });
    open = await startWesFake({ version: '1.1.0', autoAdvance: 'manual' });
    adapter = createWesAdapter({ timeoutMs: 5000, workflow: WORKFLOW });
    t11 = target('ga4gh-wes', wes11.url, { externalId: 'h3africa-v6', externalKey: null });
    t10 = target('ga4gh-wes', wes10.url, { externalId: 'h3africa-v6', externalKey: null });
  });
  afterAll(async () => {
    await Promise.all([wes11.stop(), wes10.stop(), open.stop()]);
  });
  beforeEach(() => {
    wes11.control.setBehavior(null);
    wes11.control.requests.length = 0;
  });

  describe('submit', () => {
    for (const version of ['1.1.0', '1.0.0'] as const) {
      it(`submits a multipart run with JSON-encoded params and tags that WES ${version} accepts`, async () => {
        const fake = version === '1.1.0' ? wes11 : wes10;
        const request = submitRequest(version === '1.1.0' ? t11 : t10, wesCredential, {
          inputs: [inputFile('cohort.chr20.vcf.gz', CHR20), inputFile('cohort.chr21.vcf.gz', CHR21)],
          population: 'afr',
        });
        const { externalId } = await adapter.submit(request);
        const run = fake.control.runs.get(externalId)!;
        expect(run.request.workflow_url).toBe(WORKFLOW.url);
        expect(run.request.workflow_type).toBe('Nextflow');
        expect(run.request.workflow_type_version).toBe('23.04');
        expect(run.request.tags).toEqual({ fip_job: request.externalName });
        expect(run.request.workflow_params).toEqual({
          inputs: [await request.inputs[0]!.link(), await request.inputs[1]!.link()],
          build: 'hg19',
          phasing: 'eagle',
          population: 'afr',
          mode: 'imputation',
          r2_filter: 0.3,
          panel: 'h3africa-v6',
          password: 'Escrowed-pw_1!',
          job_name: request.externalName,
        });
        const post = fake.control.requests.find((r) => r.method === 'POST' && r.path.endsWith('/runs'))!;
        expect(post.contentType).toStartWith('multipart/form-data; boundary=');
        expect(post.authorization).toBe(`Bearer ${WES_TOKEN}`);
        expect(post.parts!.map((p) => p.name)).toEqual(['workflow_url', 'workflow_type', 'workflow_type_version', 'workflow_params', 'tags']);
        // The links the server is given really serve the inputs.
        const links = run.request.workflow_params.inputs as string[];
        expect(await bytesOf((await fetch(links[0]!)).body!)).toEqual(CHR20);
        expect(await bytesOf((await fetch(links[1]!)).body!)).toEqual(CHR21);
      });
    }

    it('sends no Authorization header when the credential has no token', async () => {
      const { externalId } = await adapter.submit(submitRequest(target('ga4gh-wes', open.url), { type: 'none' }));
      expect(open.control.runs.has(externalId)).toBe(true);
      expect(open.control.requests.filter((r) => r.method === 'POST').map((r) => r.authorization)).toEqual([null]);
    });

    it('answers auth for a token the server does not accept', async () => {
      const err = await adapterError(() => adapter.submit(submitRequest(t11, { type: 'wes-bearer', token: 'stolen' })));
      expect(err.kind).toBe('auth');
      expect(err.httpStatus).toBe(401);
    });

    it("rejects with the server's {msg} when it refuses the workflow (400)", async () => {
      const cwl = createWesAdapter({ timeoutMs: 5000, workflow: { url: 'https://example.org/impute.cwl', type: 'CWL', typeVersion: 'v1.2' } });
      const err = await adapterError(() => cwl.submit(submitRequest(t11, wesCredential)));
      expect(err.kind).toBe('rejected');
      expect(err.httpStatus).toBe(400);
      expect(err.message).toBe('workflow_type CWL is not supported');
    });

    it('answers transient for a 500 and for a server that hangs past the timeout', async () => {
      wes11.control.setBehavior({ mode: 'status500', match: '/runs', times: 1 });
      expect((await adapterError(() => adapter.submit(submitRequest(t11, wesCredential)))).kind).toBe('transient');
      wes11.control.setBehavior({ mode: 'hang', match: '/runs', times: 1 });
      const quick = createWesAdapter({ timeoutMs: 300, workflow: WORKFLOW });
      const err = await adapterError(() => quick.submit(submitRequest(t11, wesCredential)));
      expect(err.kind).toBe('transient');
      expect(err.message).toContain('did not answer');
    });
  });

  describe('status', () => {
    const cases: { state: WesState; expected: string; code?: string }[] = [
      { state: 'QUEUED', expected: 'queued' },
      { state: 'INITIALIZING', expected: 'queued' },
      { state: 'RUNNING', expected: 'running' },
      { state: 'PAUSED', expected: 'running' },
      { state: 'CANCELING', expected: 'running' },
      { state: 'COMPLETE', expected: 'completed' },
      { state: 'EXECUTOR_ERROR', expected: 'failed', code: 'executor_error' },
      { state: 'SYSTEM_ERROR', expected: 'failed', code: 'system_error' },
      { state: 'PREEMPTED', expected: 'failed', code: 'preempted' },
      { state: 'CANCELED', expected: 'cancelled' },
    ];
    for (const c of cases) {
      it(`maps ${c.state} to ${c.expected}${c.code ? ` (${c.code})` : ''}`, async () => {
        const { externalId } = await adapter.submit(submitRequest(t11, wesCredential));
        wes11.control.setState(externalId, c.state);
        const status = await adapter.status(t11, wesCredential, externalId);
        expect(status.state).toBe(c.expected as never);
        expect(status.externalState).toBe(c.state);
        expect(status.error?.code).toBe(c.code as never);
        if (c.state === 'PREEMPTED') expect(status.error!.hint).toContain('retry');
        if (c.state === 'CANCELING') expect(status.steps).toContainEqual(expect.objectContaining({ level: 'warning', message: expect.stringContaining('Cancellation requested') }));
      });
    }

    it('answers transient for UNKNOWN: look again later', async () => {
      const { externalId } = await adapter.submit(submitRequest(t11, wesCredential));
      wes11.control.setState(externalId, 'UNKNOWN');
      const err = await adapterError(() => adapter.status(t11, wesCredential, externalId));
      expect(err.kind).toBe('transient');
    });

    it("explains an executor error with the server's stderr and exit code", async () => {
      wes11.control.queueOutcome({ state: 'EXECUTOR_ERROR', stderr: 'Error: chromosome 20 not found in panel', exitCode: 3 });
      const { externalId } = await adapter.submit(submitRequest(t11, wesCredential));
      wes11.control.finish(externalId);
      const status = await adapter.status(t11, wesCredential, externalId);
      expect(status.state).toBe('failed');
      expect(status.error!.code).toBe('executor_error');
      expect(status.error!.message).toContain('exit code 3');
      expect(status.error!.message).toContain('Error: chromosome 20 not found in panel');
      expect(status.steps.filter((s) => s.level === 'error').length).toBeGreaterThan(0);
    });

    it('reads the stderr log from the server when the run log has no system logs', async () => {
      wes11.control.queueOutcome({ state: 'EXECUTOR_ERROR', stderr: 'minimac4: out of memory', exitCode: 137 });
      const { externalId } = await adapter.submit(submitRequest(t11, wesCredential));
      wes11.control.finish(externalId);
      wes11.control.runs.get(externalId)!.systemLogs = [];
      const status = await adapter.status(t11, wesCredential, externalId);
      expect(status.error!.message).toBe('The workflow failed (exit code 137).\nminimac4: out of memory');
      expect(wes11.control.requests.at(-1)).toMatchObject({ path: `/fake-logs/${externalId}/stderr`, authorization: `Bearer ${WES_TOKEN}` });
    });

    it("carries a system error's message", async () => {
      wes11.control.queueOutcome({ state: 'SYSTEM_ERROR', message: 'Kubernetes node lost' });
      const { externalId } = await adapter.submit(submitRequest(t11, wesCredential));
      wes11.control.finish(externalId);
      const status = await adapter.status(t11, wesCredential, externalId);
      expect(status.error).toMatchObject({ code: 'system_error', message: expect.stringContaining('Kubernetes node lost') });
    });

    it('fails an unknown state string as unknown_state', async () => {
      const { externalId } = await adapter.submit(submitRequest(t11, wesCredential));
      wes11.control.runs.get(externalId)!.state = 'SUSPENDED' as WesState;
      const status = await adapter.status(t11, wesCredential, externalId);
      expect(status).toMatchObject({ state: 'failed', externalState: 'SUSPENDED', error: { code: 'unknown_state' } });
    });

    it('turns 1.1 task logs (/tasks) and 1.0 inline task logs into step lines', async () => {
      for (const [fake, tt] of [
        [wes11, t11],
        [wes10, t10],
      ] as const) {
        const { externalId } = await adapter.submit(submitRequest(tt, wesCredential));
        fake.control.advance(externalId); // INITIALIZING
        fake.control.advance(externalId); // RUNNING, tasks started
        const running = await adapter.status(tt, wesCredential, externalId);
        expect(running.state).toBe('running');
        expect(running.steps.map((s) => `${s.step}:${s.level}`)).toEqual(['input_validation:running', 'quality_control:running', 'phasing:running']);
        fake.control.finish(externalId);
        const done = await adapter.status(tt, wesCredential, externalId);
        expect(done.state).toBe('completed');
        expect(done.steps.every((s) => s.level === 'info' && s.at !== null)).toBe(true);
      }
      expect(wes11.control.requests.some((r) => r.path.endsWith('/tasks'))).toBe(true);
      expect(wes10.control.requests.some((r) => r.path.endsWith('/tasks'))).toBe(false);
    });

    it('answers gone for a run the server does not have', async () => {
      const err = await adapterError(() => adapter.status(t11, wesCredential, 'run-9999-nothere'));
      expect(err.kind).toBe('gone');
    });
  });

  describe('cancel', () => {
    it('POSTs /runs/{id}/cancel; the run is CANCELING (still running) and then CANCELED', async () => {
      const { externalId } = await adapter.submit(submitRequest(t11, wesCredential));
      wes11.control.advance(externalId);
      await adapter.cancel(t11, wesCredential, externalId);
      expect(wes11.control.requests.filter((r) => r.path.endsWith('/cancel')).map((r) => r.method)).toEqual(['POST']);
      expect(wes11.control.runs.get(externalId)!.state).toBe('CANCELING');
      expect((await adapter.status(t11, wesCredential, externalId)).state).toBe('running');
      wes11.control.advance(externalId);
      expect((await adapter.status(t11, wesCredential, externalId)).state).toBe('cancelled');
    });
  });

  describe('results and download', () => {
    it("lists the run's outputs and downloads them with the token on the server's own origin", async () => {
      const { externalId } = await adapter.submit(submitRequest(t11, wesCredential));
      wes11.control.finish(externalId);
      const refs = await adapter.results(t11, wesCredential, externalId);
      expect(refs.map((r) => r.name).sort()).toEqual(['chr20.dose.vcf.gz', 'chr20.info.txt', 'qc_report.txt']);
      const vcf = refs.find((r) => r.name === 'chr20.dose.vcf.gz')!;
      expect(vcf.source).toEqual({ url: `${wes11.origin}/fake-files/${externalId}/chr20.dose.vcf.gz`, output: 'imputed_vcf' });
      const { body } = await adapter.download(t11, wesCredential, vcf);
      expect(new TextDecoder().decode(gunzipSync(await bytesOf(body)))).toBe(FAKE_VCF);
      expect(wes11.control.requests.at(-1)!.authorization).toBe(`Bearer ${WES_TOKEN}`);
      const report = await adapter.download(t11, wesCredential, refs.find((r) => r.name === 'qc_report.txt')!);
      expect(new TextDecoder().decode(await bytesOf(report.body))).toContain(`QC report for ${externalId}`);
    });

    it('never sends the token to another host named in the outputs', async () => {
      const input = inputFile('elsewhere.vcf.gz', CHR21);
      const ref: ResultRef = { name: 'elsewhere.vcf.gz', sizeBytes: null, source: { url: await input.link() } };
      const { body } = await adapter.download(t11, wesCredential, ref);
      expect(await bytesOf(body)).toEqual(CHR21);
      expect(inputServerRequests.at(-1)).toEqual({ path: `/inputs/${input.id}`, authorization: null });
    });

    it('ends a download that stalls mid-file with a transient error instead of hanging', async () => {
      const stalling = Bun.serve({
        hostname: '127.0.0.1',
        port: 0,
        idleTimeout: 0,
        fetch: () =>
          new Response(
            new ReadableStream<Uint8Array>({
              start(controller) {
                controller.enqueue(CHR20.slice(0, 10)); // then nothing more, connection left open
              },
            }),
          ),
      });
      try {
        const quick = createWesAdapter({ timeoutMs: 300, workflow: WORKFLOW });
        const ref: ResultRef = { name: 'slow.vcf.gz', sizeBytes: null, source: { url: `http://127.0.0.1:${stalling.port}/slow.vcf.gz` } };
        const { body } = await quick.download(t11, wesCredential, ref);
        const err = await adapterError(() => bytesOf(body));
        expect(err.kind).toBe('transient');
      } finally {
        await stalling.stop(true);
      }
    });

    it('answers gone for an output that is not there any more, and rejected for a location it cannot fetch', async () => {
      const { externalId } = await adapter.submit(submitRequest(t11, wesCredential));
      const missing: ResultRef = { name: 'x', sizeBytes: null, source: { url: `${wes11.origin}/fake-files/${externalId}/chr20.dose.vcf.gz` } };
      expect((await adapterError(() => adapter.download(t11, wesCredential, missing))).kind).toBe('gone');
      const s3: ResultRef = { name: 'y', sizeBytes: null, source: { url: 's3://bucket/y.vcf.gz' } };
      expect((await adapterError(() => adapter.download(t11, wesCredential, s3))).kind).toBe('rejected');
    });

    it('reads url maps, File-like objects, arrays and directories from RunLog.outputs', () => {
      const refs = outputRefs(
        {
          imputed: 'https://storage.example.org/runs/1/chr20.dose.vcf.gz',
          info: { class: 'File', location: 'https://storage.example.org/runs/1/chr20.info.gz', basename: 'chr20.info.gz', size: 1234 },
          reports: [{ url: '/files/1/qc_report.txt' }, { path: 'https://storage.example.org/runs/1/chr20.dose.vcf.gz' }],
          folder: { class: 'Directory', listing: [{ class: 'File', location: 'https://storage.example.org/runs/1/stats/excluded.txt' }] },
          sample_count: 4,
          note: 'all fine',
        },
        'https://wes.example.org/ga4gh/wes/v1',
      );
      expect(refs).toEqual([
        { name: 'chr20.dose.vcf.gz', sizeBytes: null, source: { url: 'https://storage.example.org/runs/1/chr20.dose.vcf.gz', output: 'imputed' } },
        { name: 'chr20.info.gz', sizeBytes: 1234, source: { url: 'https://storage.example.org/runs/1/chr20.info.gz', output: 'info' } },
        { name: 'qc_report.txt', sizeBytes: null, source: { url: 'https://wes.example.org/files/1/qc_report.txt', output: 'reports' } },
        { name: 'reports/chr20.dose.vcf.gz', sizeBytes: null, source: { url: 'https://storage.example.org/runs/1/chr20.dose.vcf.gz', output: 'reports' } },
        { name: 'excluded.txt', sizeBytes: null, source: { url: 'https://storage.example.org/runs/1/stats/excluded.txt', output: 'folder' } },
      ]);
      expect(outputRefs({}, 'https://wes.example.org/ga4gh/wes/v1')).toEqual([]);
    });
  });

  describe('find', () => {
    it('finds a 1.1 run by its fip_job tag in the paged runs list, and null when absent', async () => {
      const name = `fip-${unique()}-1`;
      const { externalId } = await adapter.submit(submitRequest(t11, wesCredential, { externalName: name }));
      for (let i = 0; i < 3; i++) await adapter.submit(submitRequest(t11, wesCredential));
      wes11.control.requests.length = 0;
      expect(await adapter.find(t11, wesCredential, name)).toBe(externalId);
      expect(wes11.control.requests.every((r) => r.path.endsWith('/runs') && r.method === 'GET')).toBe(true);
      expect(await adapter.find(t11, wesCredential, `fip-${unique()}-1`)).toBeNull();
    });

    it('walks opaque page tokens to the end of a long list', async () => {
      const paged = await startWesFake({ version: '1.1.0', autoAdvance: 'manual' });
      try {
        const pt = target('ga4gh-wes', paged.url);
        const name = `fip-${unique()}-1`;
        for (let i = 0; i < 120; i++) paged.control.addRun({ tags: { fip_job: `fip-other-${i}` } });
        const { externalId } = await adapter.submit(submitRequest(pt, { type: 'none' }, { externalName: name }));
        expect(await adapter.find(pt, { type: 'none' }, name)).toBe(externalId);
        const listCalls = paged.control.requests.filter((r) => r.method === 'GET' && r.path.endsWith('/runs'));
        expect(listCalls.map((r) => Boolean(r.query.page_token))).toEqual([false, true]);
      } finally {
        await paged.stop();
      }
    });

    it('finds a 1.0 run (no tags in the list) through the run request tags', async () => {
      const name = `fip-${unique()}-1`;
      const { externalId } = await adapter.submit(submitRequest(t10, wesCredential, { externalName: name }));
      await adapter.submit(submitRequest(t10, wesCredential));
      expect(await adapter.find(t10, wesCredential, name)).toBe(externalId);
      expect(await adapter.find(t10, wesCredential, `fip-${unique()}-1`)).toBeNull();
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('createAdapters', () => {
  it('gives one adapter per protocol', () => {
    const adapters = createAdapters({ timeoutMs: 1000, workflow: WORKFLOW });
    expect(adapters.cloudgene.protocol).toBe('cloudgene');
    expect(adapters['ga4gh-wes'].protocol).toBe('ga4gh-wes');
  });

  it('refuses non-loopback servers when external calls are off, before anything is sent, and still reaches local fakes', async () => {
    let calls = 0;
    const counting = ((input: Parameters<typeof fetch>[0], init?: RequestInit) => {
      calls++;
      return fetch(input, init);
    }) as typeof fetch;
    const adapters = createAdapters({ fetch: counting, policy: outboundPolicy(false), timeoutMs: 2000, workflow: WORKFLOW });
    const remote = target('cloudgene', 'https://imputationserver.sph.umich.edu');
    const err = await adapterError(() => adapters.cloudgene.submit(submitRequest(remote, cloudgeneCredential)));
    expect(err.kind).toBe('rejected');
    expect(err.message).toContain('imputationserver.sph.umich.edu');
    expect(calls).toBe(0);

    const wes = await startWesFake({ version: '1.1.0', autoAdvance: 'manual' });
    try {
      const { externalId } = await adapters['ga4gh-wes'].submit(submitRequest(target('ga4gh-wes', wes.url), { type: 'none' }));
      expect(wes.control.runs.has(externalId)).toBe(true);
      expect(calls).toBe(1);
    } finally {
      await wes.stop();
    }
  });
});
