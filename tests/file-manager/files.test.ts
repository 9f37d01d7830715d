/**
 * file-manager's upload, metadata, download and delete endpoints on real storage (a temp directory)
 * and the real database, with real token verification.
 */
import type { ServiceApp } from '@shared/app.ts';
import { createLogger } from '@shared/log.ts';
import { migrate } from '@shared/migrations.ts';
import { fileHolds, storedFiles } from '@db/schema/files.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { eq, inArray } from 'drizzle-orm';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRetentionWorker } from '../../services/file-manager/src/retention.ts';
import { createLocalStorage } from '../../services/file-manager/src/storage.ts';
import { bgzip, makeVcf } from '../support/vcf.ts';
import { buildFileManager } from '../support/file-manager.ts';
import { json } from '../support/json.ts';
import { createTestDatabase, MIGRATIONS_DIR, type TestDatabase } from '../support/test-database.ts';
import { serviceTokenFor, tokenFor } from '../support/test-identity.ts';

const MAX_BYTES = 2 * 1024 * 1024;
const QUOTA_BYTES = 3 * 1024 * 1024;
let testDb: TestDatabase;
let storageDir: string;
let app: ServiceApp;
const alice = crypto.randomUUID();
const bob = crypto.randomUUID();
let aliceToken: string;
let bobToken: string;

const sha256 = (bytes: Uint8Array) => new Bun.CryptoHasher('sha256').update(bytes).digest('hex');
const md5 = (bytes: Uint8Array) => new Bun.CryptoHasher('md5').update(bytes).digest('hex');
const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));

function upload(bytes: Uint8Array | ReadableStream<Uint8Array>, name: string, token = aliceToken, extraHeaders: Record<string, string> = {}) {
  return app.request(`/files?name=${encodeURIComponent(name)}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', ...extraHeaders },
    body: bytes,
  });
}

async function tempFiles(): Promise<string[]> {
  return readdir(join(storageDir, 'tmp')).catch(() => []);
}

async function rowsFor(userId: string) {
  return testDb.database.db.select().from(storedFiles).where(eq(storedFiles.userId, userId));
}

beforeAll(async () => {
  testDb = await createTestDatabase();
  await migrate(testDb.database, { schema: 'files', migrationsDir: MIGRATIONS_DIR });
  storageDir = await mkdtemp(join(tmpdir(), 'fip-files-'));
  app = buildFileManager({
    database: testDb.database,
    storageDir,
    limits: { maxBytes: MAX_BYTES, quotaBytes: QUOTA_BYTES },
    publicApiUrl: 'https://imputation.example.org/api',
  });
  aliceToken = await tokenFor(alice);
  bobToken = await tokenFor(bob);
}, 60_000);

afterAll(async () => {
  await testDb.drop();
  await rm(storageDir, { recursive: true, force: true });
});

describe('POST /files', () => {
  it('stores a binary upload with its SHA-256, MD5 and size, and serves the same bytes back', async () => {
    const bytes = random(300_000);
    const res = await upload(bytes, 'genotypes.bin');
    expect(res.status).toBe(201);
    const file = await json(res);
    expect(file).toMatchObject({ name: 'genotypes.bin', kind: 'input', sizeBytes: bytes.length, sha256: sha256(bytes), md5: md5(bytes), validation: null });
    const back = await app.request(`/files/${file.id}/content`, { headers: { authorization: `Bearer ${aliceToken}` } });
    expect(back.status).toBe(200);
    expect(back.headers.get('etag')).toBe(`"${sha256(bytes)}"`);
    expect(back.headers.get('content-length')).toBe(String(bytes.length));
    expect(sha256(new Uint8Array(await back.arrayBuffer()))).toBe(sha256(bytes));
    expect(await tempFiles()).toEqual([]);
  });

  it('keeps a path-trick name as metadata only and stores under a generated key', async () => {
    const res = await upload(random(10), '../../etc/passwd');
    expect(res.status).toBe(201);
    const file = await json(res);
    expect(file.name).toBe('passwd');
    const [row] = await testDb.database.db.select().from(storedFiles).where(eq(storedFiles.id, file.id));
    expect(row!.storageKey).toMatch(/^[0-9a-f]{32}$/);
    expect(await readdir(storageDir)).toEqual(expect.arrayContaining(['objects']));
    expect((await readdir(storageDir)).includes('etc')).toBe(false);
  });

  it('keeps a unicode name and offers it in Content-Disposition', async () => {
    const name = 'Kohorte-Ωmega-染色体20.bin';
    const file = await json(await upload(random(16), name));
    expect(file.name).toBe(name);
    const res = await app.request(`/files/${file.id}/content`, { headers: { authorization: `Bearer ${aliceToken}` } });
    expect(res.headers.get('content-disposition')).toContain(`filename*=UTF-8''${encodeURIComponent(name)}`);
    await res.arrayBuffer();
  });

  it('refuses an upload over the size limit with 413 and keeps nothing', async () => {
    const before = (await rowsFor(alice)).length;
    const res = await upload(random(MAX_BYTES + 1), 'big.bin');
    expect(res.status).toBe(413);
    expect((await json(res)).code).toBe('file_too_large');
    expect((await rowsFor(alice)).length).toBe(before);
    expect(await tempFiles()).toEqual([]);
  });

  it('refuses an upload that would exceed the quota with 413 quota_exceeded', async () => {
    const user = crypto.randomUUID();
    const token = await tokenFor(user);
    expect((await upload(random(MAX_BYTES - 10), 'one.bin', token)).status).toBe(201);
    const res = await upload(random(QUOTA_BYTES - MAX_BYTES + 20), 'two.bin', token);
    expect(res.status).toBe(413);
    expect((await json(res)).code).toBe('quota_exceeded');
    expect((await rowsFor(user)).length).toBe(1);
  });

  it('answers an empty upload with 422 and a missing name with 400', async () => {
    expect((await upload(new Uint8Array(0), 'empty.bin')).status).toBe(422);
    const res = await app.request('/files', { method: 'POST', headers: { authorization: `Bearer ${aliceToken}` }, body: random(4) });
    expect(res.status).toBe(400);
    expect(await tempFiles()).toEqual([]);
  });

  it('needs a token', async () => {
    const res = await app.request('/files?name=x.bin', { method: 'POST', body: random(4) });
    expect(res.status).toBe(401);
  });

  it('stores two concurrent uploads intact', async () => {
    const a = random(700_000);
    const b = random(900_000);
    const [ra, rb] = await Promise.all([upload(a, 'a.bin'), upload(b, 'b.bin')]);
    expect((await json(ra)).sha256).toBe(sha256(a));
    expect((await json(rb)).sha256).toBe(sha256(b));
  });

  it('leaves no record and no temporary file when the client disconnects half-way', async () => {
    let requests = 0;
    let tempSeenMidway = 0;
    const server = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch: (req, srv) => {
        requests += 1;
        return app.fetch(req, srv);
      },
    });
    try {
      const before = (await rowsFor(alice)).length;
      const controller = new AbortController();
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(ctl) {
          if (sent >= 256 * 1024) {
            await Bun.sleep(150);
            // The upload is under way: its bytes are in a temporary file.
            tempSeenMidway = (await tempFiles()).length;
            controller.abort();
            return;
          }
          sent += 64 * 1024;
          ctl.enqueue(random(64 * 1024));
        },
      });
      await fetch(`http://127.0.0.1:${server.port}/files?name=partial.bin`, {
        method: 'POST',
        headers: { authorization: `Bearer ${aliceToken}` },
        body,
        signal: controller.signal,
        duplex: 'half',
      } as RequestInit).catch(() => {});
      for (let i = 0; i < 50 && (await tempFiles()).length > 0; i++) await Bun.sleep(20);
      expect(requests).toBe(1);
      expect(tempSeenMidway).toBe(1);
      expect(await tempFiles()).toEqual([]);
      expect((await rowsFor(alice)).length).toBe(before);
    } finally {
      server.stop(true);
    }
  });
});

describe('POST /files as a browser form (multipart/form-data)', () => {
  /** A real form body as a browser sends it, delivered in small chunks so delimiters straddle them. */
  async function formRequest(form: FormData, token = aliceToken, chunkSize = 1000) {
    const encoded = new Response(form);
    const contentType = encoded.headers.get('content-type')!;
    const bytes = new Uint8Array(await encoded.arrayBuffer());
    let offset = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(ctl) {
        if (offset >= bytes.length) return ctl.close();
        ctl.enqueue(bytes.slice(offset, offset + chunkSize));
        offset += chunkSize;
      },
    });
    return app.request('/files', { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': contentType }, body });
  }

  for (const chunkSize of [1, 37, 1000, 65_536]) {
    it(`streams the file part byte-identical (${chunkSize}-byte chunks) and reads fields before it`, async () => {
      const bytes = chunkSize === 1 ? random(3_000) : random(200_000);
      const form = new FormData();
      form.append('build', 'hg38');
      form.append('file', new File([bytes], 'Kohorte ñ.bin', { type: 'application/octet-stream' }));
      form.append('after', 'ignored');
      const res = await formRequest(form, aliceToken, chunkSize);
      expect(res.status).toBe(201);
      const file = await json(res);
      expect(file).toMatchObject({ name: 'Kohorte ñ.bin', sizeBytes: bytes.length, sha256: sha256(bytes) });
    });
  }

  it('validates a VCF sent as a form with the build from its field', async () => {
    const form = new FormData();
    form.append('build', 'hg19');
    form.append('file', new File([bgzip(makeVcf({ samples: 25, chromosome: 'chr20' }))], 'c.vcf.gz'));
    const file = await json(await formRequest(form));
    expect(file.validation.errors.map((e: { code: string }) => e.code)).toContain('build_mismatch');
  });

  it('answers a form without a file, a bad build field and a cut-off body with 4xx, keeping nothing', async () => {
    const before = (await rowsFor(alice)).length;
    const noFile = new FormData();
    noFile.append('build', 'hg19');
    expect((await formRequest(noFile)).status).toBe(400);
    const badBuild = new FormData();
    badBuild.append('build', 'hg42');
    badBuild.append('file', new File([random(10)], 'x.bin'));
    expect((await formRequest(badBuild)).status).toBe(422);
    const whole = new FormData();
    whole.append('file', new File([random(5000)], 'cut.bin'));
    const encoded = new Response(whole);
    // Read before the body: Bun fills a form response's content type lazily.
    const contentType = encoded.headers.get('content-type')!;
    const cut = new Uint8Array(await encoded.arrayBuffer()).slice(0, 3000);
    const res = await app.request('/files', {
      method: 'POST',
      headers: { authorization: `Bearer ${aliceToken}`, 'content-type': contentType },
      body: cut,
    });
    expect(res.status).toBe(400);
    expect((await json(res)).code).toBe('malformed_multipart');
    expect((await rowsFor(alice)).length).toBe(before);
    expect(await tempFiles()).toEqual([]);
  });
});

describe('VCF pre-flight validation on upload', () => {
  it('stores a valid bgzipped VCF with a passing report and its stats', async () => {
    const vcf = bgzip(makeVcf({ samples: 25, chromosome: '20', positions: [100, 200, 300, 400] }));
    const res = await upload(vcf, 'cohort.chr20.vcf.gz');
    expect(res.status).toBe(201);
    const file = await json(res);
    expect(file.contentType).toBe('application/gzip');
    expect(file.validation).toMatchObject({ ok: true, errors: [], stats: { samples: 25, variants: 4, chromosome: '20', buildGuess: 'hg19', container: 'bgzf' } });
    const again = await json(await app.request(`/files/${file.id}`, { headers: { authorization: `Bearer ${aliceToken}` } }));
    expect(again.validation.ok).toBe(true);
  });

  it('stores a broken VCF with a report that says what is wrong and how to fix it', async () => {
    const twoChromosomes = makeVcf({ samples: 25, records: [{ pos: 100, chrom: '20' }, { pos: 50, chrom: '21' }] });
    const file = await json(await upload(bgzip(twoChromosomes), 'mixed.vcf.gz', aliceToken));
    expect(file.validation.ok).toBe(false);
    const codes = file.validation.errors.map((e: { code: string }) => e.code);
    expect(codes).toContain('multiple_chromosomes');
    expect(file.validation.errors[0].hint.length).toBeGreaterThan(10);
  });

  it('flags a plain-gzip VCF and a declared build that contradicts the contig names', async () => {
    const plain = Bun.gzipSync(new TextEncoder().encode(makeVcf({ samples: 25 })));
    expect((await json(await upload(plain, 'plain.vcf.gz'))).validation.errors[0].code).toBe('plain_gzip');
    const hg38Named = bgzip(makeVcf({ samples: 25, chromosome: 'chr20' }));
    const res = await app.request(`/files?name=x.vcf.gz&build=hg19`, {
      method: 'POST',
      headers: { authorization: `Bearer ${aliceToken}` },
      body: hg38Named,
    });
    expect((await json(res)).validation.errors.map((e: { code: string }) => e.code)).toContain('build_mismatch');
  });
});

describe('GET /files/{id}/content ranges', () => {
  const bytes = random(1000);
  let id: string;
  const get = (headers: Record<string, string> = {}, method = 'GET') =>
    app.request(`/files/${id}/content`, { method, headers: { authorization: `Bearer ${aliceToken}`, ...headers } });

  beforeAll(async () => {
    id = (await json(await upload(bytes, 'ranges.bin'))).id;
  });

  for (const [header, start, end] of [
    ['bytes=0-9', 0, 9],
    ['bytes=990-', 990, 999],
    ['bytes=-5', 995, 999],
    ['bytes=500-5000', 500, 999],
  ] as const) {
    it(`answers ${header} with 206 and exactly bytes ${start}–${end}`, async () => {
      const res = await get({ range: header });
      expect(res.status).toBe(206);
      expect(res.headers.get('content-range')).toBe(`bytes ${start}-${end}/1000`);
      expect(res.headers.get('content-length')).toBe(String(end - start + 1));
      expect(new Uint8Array(await res.arrayBuffer())).toEqual(bytes.slice(start, end + 1));
    });
  }

  it('answers an unsatisfiable range with 416 and the size', async () => {
    const res = await get({ range: 'bytes=1000-1001' });
    expect(res.status).toBe(416);
    expect(res.headers.get('content-range')).toBe('bytes */1000');
  });

  it('answers 304 for a matching If-None-Match and HEAD with headers only', async () => {
    const etag = `"${sha256(bytes)}"`;
    expect((await get({ 'if-none-match': etag })).status).toBe(304);
    const head = await get({}, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe('1000');
    expect((await head.arrayBuffer()).byteLength).toBe(0);
  });
});

describe('signed download links', () => {
  it('opens the file without a token until it expires; a tampered or foreign link gets 403', async () => {
    const bytes = random(2048);
    const file = await json(await upload(bytes, 'shared.bin'));
    const res = await app.request(`/files/${file.id}/link`, {
      method: 'POST',
      headers: { authorization: `Bearer ${aliceToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ expiresInSeconds: 120 }),
    });
    expect(res.status).toBe(201);
    const link = await json(res);
    expect(link.url).toBe(`https://imputation.example.org/api${link.path}`);
    expect(Date.parse(link.expiresAt) - Date.now()).toBeGreaterThan(100_000);

    const anonymous = await app.request(link.path);
    expect(anonymous.status).toBe(200);
    expect(new Uint8Array(await anonymous.arrayBuffer())).toEqual(bytes);
    const ranged = await app.request(link.path, { headers: { range: 'bytes=0-3' } });
    expect(ranged.status).toBe(206);
    expect(new Uint8Array(await ranged.arrayBuffer())).toEqual(bytes.slice(0, 4));

    const other = await json(await upload(random(16), 'other.bin'));
    const sig = new URL(link.path, 'http://x').searchParams;
    expect((await app.request(`/files/${other.id}/content?${sig}`)).status).toBe(403);
    const tampered = link.path.replace(/sig=(.)/, (_: string, ch: string) => `sig=${ch === 'A' ? 'B' : 'A'}`);
    expect((await app.request(tampered)).status).toBe(403);
    const later = `/files/${file.id}/content?expires=${Number(sig.get('expires')) + 1000}&sig=${sig.get('sig')}`;
    expect((await app.request(later)).status).toBe(403);
    const expired = `/files/${file.id}/content?expires=${Math.floor(Date.now() / 1000) - 1}&sig=${sig.get('sig')}`;
    expect((await app.request(expired)).status).toBe(403);
    expect((await app.request(`/files/${file.id}/content`)).status).toBe(401);
  });

  it("refuses to sign another user's file", async () => {
    const file = await json(await upload(random(16), 'mine.bin'));
    const res = await app.request(`/files/${file.id}/link`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bobToken}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(404);
  });
});

describe('POST /internal/results', () => {
  const store = (bytes: Uint8Array, token: string, params: Record<string, string>) =>
    app.request(`/internal/results?${new URLSearchParams(params)}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
      body: bytes,
    });

  it('stores a verified result for the user and job, with provenance, outside the quota', async () => {
    const user = crypto.randomUUID();
    const userToken = await tokenFor(user);
    // Fill the user's quota with inputs first.
    expect((await upload(random(MAX_BYTES - 1), 'a.bin', userToken)).status).toBe(201);
    expect((await upload(random(QUOTA_BYTES - MAX_BYTES), 'b.bin', userToken)).status).toBe(201);
    const bytes = random(50_000);
    const jobId = crypto.randomUUID();
    const res = await store(bytes, await serviceTokenFor('job-processor'), {
      userId: user,
      jobId,
      name: 'chr20.dose.vcf.gz',
      sha256: sha256(bytes),
      sizeBytes: String(bytes.length),
      sourceService: 'michigan',
      externalJobId: 'job-20261128-1',
      externalName: 'chr_20.zip',
      panel: '1000g-phase-3-v5',
    });
    expect(res.status).toBe(201);
    const file = await json(res);
    expect(file).toMatchObject({ kind: 'result', jobId, sha256: sha256(bytes), provenance: { sourceService: 'michigan', externalName: 'chr_20.zip' } });
    const listed = await json(await app.request(`/files?kind=result&jobId=${jobId}`, { headers: { authorization: `Bearer ${userToken}` } }));
    expect(listed.items.map((f: { id: string }) => f.id)).toEqual([file.id]);
    const back = await app.request(`/files/${file.id}/content`, { headers: { authorization: `Bearer ${userToken}` } });
    expect(sha256(new Uint8Array(await back.arrayBuffer()))).toBe(sha256(bytes));
    // Deleting one input frees quota even though a large result exists: results do not count.
    const inputs = await json(await app.request('/files?kind=input', { headers: { authorization: `Bearer ${userToken}` } }));
    await app.request(`/files/${inputs.items[0].id}`, { method: 'DELETE', headers: { authorization: `Bearer ${userToken}` } });
    expect((await upload(random(QUOTA_BYTES - MAX_BYTES), 'c.bin', userToken)).status).toBe(201);
  });

  it('keeps nothing when the checksum or size does not match', async () => {
    const user = crypto.randomUUID();
    const token = await serviceTokenFor('job-processor');
    const base = { userId: user, jobId: crypto.randomUUID(), name: 'r.zip', sourceService: 'topmed' };
    const bytes = random(1000);
    const wrongSum = await store(bytes, token, { ...base, sha256: sha256(random(10)) });
    expect(wrongSum.status).toBe(422);
    expect((await json(wrongSum)).code).toBe('checksum_mismatch');
    expect((await store(bytes, token, { ...base, sizeBytes: '999' })).status).toBe(422);
    expect(await rowsFor(user)).toEqual([]);
    expect(await tempFiles()).toEqual([]);
  });

  it('refuses users and other services', async () => {
    const params = { userId: alice, jobId: crypto.randomUUID(), name: 'r.zip', sourceService: 'x' };
    expect((await store(random(10), aliceToken, params)).status).toBe(403);
    expect((await store(random(10), await serviceTokenFor('notification'), params)).status).toBe(403);
  });
});

describe('holds and retention', () => {
  const holdPath = (fileId: string, jobId: string) => `/internal/files/${fileId}/holds/${jobId}`;

  it('refuses to delete a file a job holds (409) until the hold is released', async () => {
    const file = await json(await upload(random(32), 'held.bin'));
    const jobId = crypto.randomUUID();
    const jp = await serviceTokenFor('job-processor');
    expect((await app.request(holdPath(file.id, jobId), { method: 'PUT', headers: { authorization: `Bearer ${aliceToken}` } })).status).toBe(403);
    expect((await app.request(holdPath(file.id, jobId), { method: 'PUT', headers: { authorization: `Bearer ${jp}` } })).status).toBe(204);
    expect((await app.request(holdPath(file.id, jobId), { method: 'PUT', headers: { authorization: `Bearer ${jp}` } })).status).toBe(204);
    const refused = await app.request(`/files/${file.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${aliceToken}` } });
    expect(refused.status).toBe(409);
    expect((await json(refused)).code).toBe('file_in_use');
    expect((await app.request(holdPath(file.id, jobId), { method: 'DELETE', headers: { authorization: `Bearer ${jp}` } })).status).toBe(204);
    expect((await app.request(`/files/${file.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${aliceToken}` } })).status).toBe(204);
  });

  it('deletes expired files and their bytes, keeps held and unexpired ones, sweeps old temp files, and reports the space freed', async () => {
    const lines: string[] = [];
    const storage = createLocalStorage(storageDir);
    const expired = await json(await upload(random(1000), 'old.bin'));
    const heldExpired = await json(await upload(random(2000), 'old-but-held.bin'));
    const fresh = await json(await upload(random(3000), 'fresh.bin'));
    const past = new Date(Date.now() - 1000);
    await testDb.database.db.update(storedFiles).set({ expiresAt: past }).where(inArray(storedFiles.id, [expired.id, heldExpired.id]));
    await testDb.database.db.insert(fileHolds).values({ fileId: heldExpired.id, jobId: crypto.randomUUID() });
    const leftover = await storage.createWriter();
    await leftover.write(random(10));

    const worker = createRetentionWorker({
      db: testDb.database.db,
      storage,
      logger: createLogger({ level: 'info', sink: (line) => lines.push(line) }),
      intervalMs: 60_000,
      temporaryMaxAgeMs: 0,
    });
    const round = await worker.runOnce();
    await leftover.abort();
    expect(round.deleted).toBeGreaterThanOrEqual(1);
    expect(round.temporaryRemoved).toBe(1);
    const status = async (id: string) => (await app.request(`/files/${id}`, { headers: { authorization: `Bearer ${aliceToken}` } })).status;
    expect(await status(expired.id)).toBe(404);
    expect(await status(heldExpired.id)).toBe(200);
    expect(await status(fresh.id)).toBe(200);
    const [row] = await testDb.database.db.select().from(storedFiles).where(eq(storedFiles.id, fresh.id));
    expect(row!.expiresAt).toBeNull();
    expect(lines.some((l) => JSON.parse(l).msg === 'retention round' && JSON.parse(l).freedBytes >= 1000)).toBe(true);
    expect(await tempFiles()).toEqual([]);
  });
});

describe('ownership', () => {
  it("gives another user 404 for metadata, content and delete; the owner can delete", async () => {
    const file = await json(await upload(random(64), 'private.bin'));
    for (const [method, path] of [
      ['GET', `/files/${file.id}`],
      ['GET', `/files/${file.id}/content`],
      ['DELETE', `/files/${file.id}`],
    ] as const) {
      const res = await app.request(path, { method, headers: { authorization: `Bearer ${bobToken}` } });
      expect(res.status).toBe(404);
    }
    const admin = await tokenFor(crypto.randomUUID(), ['admin']);
    expect((await app.request(`/files/${file.id}`, { headers: { authorization: `Bearer ${admin}` } })).status).toBe(200);
    const del = await app.request(`/files/${file.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${aliceToken}` } });
    expect(del.status).toBe(204);
    expect((await app.request(`/files/${file.id}`, { headers: { authorization: `Bearer ${aliceToken}` } })).status).toBe(404);
  });

  it('lists only your own files, newest first, with a working cursor', async () => {
    const user = crypto.randomUUID();
    const token = await tokenFor(user);
    for (let i = 0; i < 3; i++) await upload(random(8), `f${i}.bin`, token);
    const first = await json(await app.request('/files?limit=2', { headers: { authorization: `Bearer ${token}` } }));
    expect(first.items.map((f: { name: string }) => f.name)).toEqual(['f2.bin', 'f1.bin']);
    const second = await json(await app.request(`/files?limit=2&cursor=${first.nextCursor}`, { headers: { authorization: `Bearer ${token}` } }));
    expect(second.items.map((f: { name: string }) => f.name)).toEqual(['f0.bin']);
    expect(second.nextCursor).toBeNull();
  });
});
