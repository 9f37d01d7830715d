/**
 * file-manager's internal endpoints for job-processor: reading any user's input (metadata with owner
 * and validation report, streamed bytes, a signed link for a WES server) and storing results exactly
 * once under a result key. Real storage (a temp directory), the real database, real token checks.
 */
import type { ServiceApp } from '@shared/app.ts';
import { migrate } from '@shared/migrations.ts';
import { storedFiles } from '@db/schema/files.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { eq } from 'drizzle-orm';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildFileManager } from '../support/file-manager.ts';
import { json } from '../support/json.ts';
import { createTestDatabase, MIGRATIONS_DIR, type TestDatabase } from '../support/test-database.ts';
import { serviceTokenFor, tokenFor } from '../support/test-identity.ts';
import { bgzip, makeVcf } from '../support/vcf.ts';

const PUBLIC_API_URL = 'https://imputation.example.org/api';
let testDb: TestDatabase;
let storageDir: string;
let app: ServiceApp;
const alice = crypto.randomUUID();
let aliceToken: string;
let jobProcessor: string;
let notification: string;

const sha256 = (bytes: Uint8Array) => new Bun.CryptoHasher('sha256').update(bytes).digest('hex');
const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
const bearer = (token: string | undefined): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {});

function upload(bytes: Uint8Array, name: string, token = aliceToken) {
  return app.request(`/files?name=${encodeURIComponent(name)}`, { method: 'POST', headers: bearer(token), body: bytes });
}

/** Every stored object's key in this file's storage directory. */
async function objects(): Promise<string[]> {
  const root = join(storageDir, 'objects');
  const shards = await readdir(root).catch(() => [] as string[]);
  const keys: string[] = [];
  for (const shard of shards) keys.push(...(await readdir(join(root, shard))));
  return keys.sort();
}

async function rowsWithKey(key: string) {
  return testDb.database.db.select().from(storedFiles).where(eq(storedFiles.resultKey, key));
}

beforeAll(async () => {
  testDb = await createTestDatabase();
  await migrate(testDb.database, { schema: 'files', migrationsDir: MIGRATIONS_DIR });
  storageDir = await mkdtemp(join(tmpdir(), 'fip-internal-files-'));
  app = buildFileManager({
    database: testDb.database,
    storageDir,
    limits: { maxBytes: 4 * 1024 * 1024, quotaBytes: 8 * 1024 * 1024 },
    publicApiUrl: PUBLIC_API_URL,
  });
  aliceToken = await tokenFor(alice);
  jobProcessor = await serviceTokenFor('job-processor');
  notification = await serviceTokenFor('notification');
}, 60_000);

afterAll(async () => {
  await testDb.drop();
  await rm(storageDir, { recursive: true, force: true });
});

describe('who may call the internal file endpoints', () => {
  let fileId: string;
  beforeAll(async () => {
    fileId = (await json(await upload(random(64), 'guarded.bin'))).id;
  });
  const calls: [string, (token?: string) => Response | Promise<Response>][] = [
    ['GET /internal/files/{id}', (token) => app.request(`/internal/files/${fileId}`, { headers: bearer(token) })],
    ['GET /internal/files/{id}/content', (token) => app.request(`/internal/files/${fileId}/content`, { headers: bearer(token) })],
    [
      'POST /internal/files/{id}/link',
      (token) =>
        app.request(`/internal/files/${fileId}/link`, {
          method: 'POST',
          headers: { ...bearer(token), 'content-type': 'application/json' },
          body: JSON.stringify({ expiresInSeconds: 600 }),
        }),
    ],
    ['GET /internal/results', (token) => app.request(`/internal/results?key=${encodeURIComponent(`${fileId}:1:x`)}`, { headers: bearer(token) })],
  ];

  for (const [name, call] of calls) {
    it(`${name} answers job-processor, 403 for another service and for the file's owner, 401 without a token`, async () => {
      const ok = await call(jobProcessor);
      expect([200, 201, 404]).toContain(ok.status);
      // GET /internal/results with an unknown key is the one that answers 404 to job-processor.
      expect(ok.status === 404).toBe(name === 'GET /internal/results');
      await ok.arrayBuffer();
      const other = await call(notification);
      expect(other.status).toBe(403);
      expect((await json(other)).code).toBe('forbidden');
      expect((await call(aliceToken)).status).toBe(403);
      expect((await call(undefined)).status).toBe(401);
    });
  }
});

describe('GET /internal/files/{id}', () => {
  it("answers any user's file with its owner and validation report", async () => {
    const vcf = bgzip(makeVcf({ samples: 25, chromosome: '20', positions: [100, 200, 300] }));
    const uploaded = await json(await upload(vcf, 'cohort.chr20.vcf.gz'));
    const res = await app.request(`/internal/files/${uploaded.id}`, { headers: bearer(jobProcessor) });
    expect(res.status).toBe(200);
    const file = await json(res);
    expect(file).toEqual({ ...uploaded, userId: alice });
    expect(file.validation).toMatchObject({ ok: true, stats: { samples: 25, chromosome: '20' } });
  });

  it('shows a failed validation so a job can be refused', async () => {
    const broken = bgzip(makeVcf({ samples: 25, records: [{ pos: 100, chrom: '20' }, { pos: 50, chrom: '21' }] }));
    const uploaded = await json(await upload(broken, 'mixed.vcf.gz'));
    const file = await json(await app.request(`/internal/files/${uploaded.id}`, { headers: bearer(jobProcessor) }));
    expect(file.validation.ok).toBe(false);
    expect(file.userId).toBe(alice);
  });

  it('answers an unknown id with 404 and a malformed one with 400', async () => {
    const missing = await app.request(`/internal/files/${crypto.randomUUID()}`, { headers: bearer(jobProcessor) });
    expect(missing.status).toBe(404);
    expect((await json(missing)).code).toBe('file_not_found');
    expect((await app.request('/internal/files/not-a-uuid', { headers: bearer(jobProcessor) })).status).toBe(400);
  });
});

describe('GET /internal/files/{id}/content', () => {
  const bytes = random(300_000);
  let id: string;
  const get = (headers: Record<string, string> = {}, path = `/internal/files/${id}/content`) =>
    app.request(path, { headers: { ...bearer(jobProcessor), ...headers } });

  beforeAll(async () => {
    id = (await json(await upload(bytes, 'input.bin'))).id;
  });

  it('streams the exact bytes with their length and ETag', async () => {
    const res = await get();
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(bytes.length));
    expect(res.headers.get('etag')).toBe(`"${sha256(bytes)}"`);
    expect(res.body).toBeInstanceOf(ReadableStream);
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(bytes);
  });

  it('answers a Range with 206 and exactly those bytes, an unsatisfiable one with 416', async () => {
    const res = await get({ range: 'bytes=1000-1999' });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe(`bytes 1000-1999/${bytes.length}`);
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(bytes.slice(1000, 2000));
    const tail = await get({ range: 'bytes=-10' });
    expect(new Uint8Array(await tail.arrayBuffer())).toEqual(bytes.slice(-10));
    const beyond = await get({ range: `bytes=${bytes.length}-` });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get('content-range')).toBe(`bytes */${bytes.length}`);
  });

  it('answers 304 for a matching If-None-Match', async () => {
    expect((await get({ 'if-none-match': `"${sha256(bytes)}"` })).status).toBe(304);
  });

  it('is not opened by a signed link in place of the service token', async () => {
    const link = await json(
      await app.request(`/files/${id}/link`, { method: 'POST', headers: { ...bearer(aliceToken), 'content-type': 'application/json' }, body: '{}' }),
    );
    const query = new URL(link.path, 'http://x').search;
    expect((await app.request(`/internal/files/${id}/content${query}`)).status).toBe(401);
  });

  it('answers an unknown id with 404', async () => {
    expect((await get({}, `/internal/files/${crypto.randomUUID()}/content`)).status).toBe(404);
  });
});

describe('POST /internal/files/{id}/link', () => {
  const link = (id: string, body: unknown = { expiresInSeconds: 900 }) =>
    app.request(`/internal/files/${id}/link`, {
      method: 'POST',
      headers: { ...bearer(jobProcessor), 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('makes an absolute signed link on the public API URL that opens the file without a token', async () => {
    const bytes = random(4096);
    const file = await json(await upload(bytes, 'for-wes.bin'));
    const res = await link(file.id);
    expect(res.status).toBe(201);
    const made = await json(res);
    expect(made.url).toBe(`${PUBLIC_API_URL}${made.path}`);
    expect(made.path).toMatch(new RegExp(`^/files/${file.id}/content\\?expires=\\d+&sig=`));
    expect(Date.parse(made.expiresAt) - Date.now()).toBeGreaterThan(800_000);

    const anonymous = await app.request(made.path);
    expect(anonymous.status).toBe(200);
    expect(new Uint8Array(await anonymous.arrayBuffer())).toEqual(bytes);
    const ranged = await app.request(made.path, { headers: { range: 'bytes=10-19' } });
    expect(ranged.status).toBe(206);
    expect(new Uint8Array(await ranged.arrayBuffer())).toEqual(bytes.slice(10, 20));
  });

  it('is refused with 403 when tampered with, moved to another file or extended', async () => {
    const file = await json(await upload(random(32), 'signed.bin'));
    const other = await json(await upload(random(32), 'not-signed.bin'));
    const made = await json(await link(file.id));
    const params = new URL(made.path, 'http://x').searchParams;
    const tampered = made.path.replace(/sig=(.)/, (_: string, ch: string) => `sig=${ch === 'A' ? 'B' : 'A'}`);
    expect((await app.request(tampered)).status).toBe(403);
    expect((await app.request(`/files/${other.id}/content?${params}`)).status).toBe(403);
    const extended = `/files/${file.id}/content?expires=${Number(params.get('expires')) + 60}&sig=${params.get('sig')}`;
    const refused = await app.request(extended);
    expect(refused.status).toBe(403);
    expect((await json(refused)).code).toBe('invalid_link');
  });

  it('answers an unknown file with 404 and an out-of-range expiry with 422', async () => {
    expect((await link(crypto.randomUUID())).status).toBe(404);
    const file = await json(await upload(random(16), 'expiry.bin'));
    expect((await link(file.id, { expiresInSeconds: 10 })).status).toBe(422);
    expect((await link(file.id, { expiresInSeconds: 30 * 86_400 })).status).toBe(422);
  });
});

describe('result keys on /internal/results', () => {
  const store = (body: Uint8Array | ReadableStream<Uint8Array>, params: Record<string, string>, token = jobProcessor) =>
    app.request(`/internal/results?${new URLSearchParams(params)}`, {
      method: 'POST',
      headers: { ...bearer(token), 'content-type': 'application/octet-stream' },
      body,
    });
  const lookup = (key: string, token = jobProcessor) => app.request(`/internal/results?key=${encodeURIComponent(key)}`, { headers: bearer(token) });
  const resultFor = (jobId: string, name = 'chr20.zip') => ({
    key: `${jobId}:1:${name}`,
    params: { userId: alice, jobId, name, sourceService: 'michigan', resultKey: `${jobId}:1:${name}` },
  });

  it('stores a result once: the same key again answers 200 with the same file and stores nothing', async () => {
    const jobId = crypto.randomUUID();
    const { key, params } = resultFor(jobId);
    const bytes = random(20_000);
    const before = await objects();
    const first = await store(bytes, { ...params, sha256: sha256(bytes) });
    expect(first.status).toBe(201);
    const stored = await json(first);
    expect(stored).toMatchObject({ kind: 'result', jobId, sha256: sha256(bytes) });

    // A worker that crashed before recording the id downloads again and posts the same result.
    const again = await store(bytes, { ...params, sha256: sha256(bytes) });
    expect(again.status).toBe(200);
    expect(await json(again)).toEqual(stored);
    // Without a checksum the body is not even read: the stored file is the answer.
    const unchecked = await store(random(10), params);
    expect(unchecked.status).toBe(200);
    expect((await json(unchecked)).id).toBe(stored.id);

    const rows = await rowsWithKey(key);
    expect(rows.map((r) => r.id)).toEqual([stored.id]);
    expect((await objects()).filter((k) => !before.includes(k))).toEqual([rows[0]!.storageKey]);
  });

  it('finds a stored result by its key, and answers 404 for a key never stored', async () => {
    const jobId = crypto.randomUUID();
    const { key, params } = resultFor(jobId, 'chr21.dose.vcf.gz');
    expect((await lookup(key)).status).toBe(404);
    const stored = await json(await store(random(500), params));
    const found = await lookup(key);
    expect(found.status).toBe(200);
    expect(await json(found)).toEqual(stored);
    const missing = await lookup(`${jobId}:2:chr21.dose.vcf.gz`);
    expect(missing.status).toBe(404);
    expect((await json(missing)).code).toBe('result_not_found');
  });

  it('answers 409 result_key_conflict when the key names a different result, keeping the stored one', async () => {
    const jobId = crypto.randomUUID();
    const { key, params } = resultFor(jobId);
    const bytes = random(1000);
    const stored = await json(await store(bytes, params));
    const before = await objects();

    const otherBytes = random(1000);
    const differentSum = await store(otherBytes, { ...params, sha256: sha256(otherBytes) });
    expect(differentSum.status).toBe(409);
    const problem = await json(differentSum);
    expect(problem.code).toBe('result_key_conflict');
    expect(problem.storedSha256).toBe(sha256(bytes));
    expect((await store(bytes, { ...params, jobId: crypto.randomUUID() })).status).toBe(409);
    expect((await store(bytes, { ...params, userId: crypto.randomUUID() })).status).toBe(409);
    expect((await store(bytes, { ...params, sizeBytes: '999' })).status).toBe(409);

    expect((await rowsWithKey(key)).map((r) => r.id)).toEqual([stored.id]);
    expect(await objects()).toEqual(before);
  });

  it('ends two concurrent posts with one key with one row and one stored object', async () => {
    const jobId = crypto.randomUUID();
    const { key, params } = resultFor(jobId);
    const bytes = random(100_000);
    const before = await objects();
    // Each body waits until both requests are reading, so both have looked the key up and found nothing.
    let reading = 0;
    let release!: () => void;
    const bothReading = new Promise<void>((resolve) => (release = resolve));
    const gatedBody = () => {
      let sent = false;
      return new ReadableStream<Uint8Array>({
        async pull(ctl) {
          if (sent) return ctl.close();
          reading += 1;
          if (reading === 2) release();
          await bothReading;
          sent = true;
          ctl.enqueue(bytes.slice());
        },
      });
    };
    const responses = await Promise.all([store(gatedBody(), params), store(gatedBody(), params)]);
    expect(reading).toBe(2);
    expect(responses.map((r) => r.status).sort()).toEqual([200, 201]);
    const [a, b] = await Promise.all(responses.map(json));
    expect(a.id).toBe(b.id);

    const rows = await rowsWithKey(key);
    expect(rows.map((r) => r.id)).toEqual([a.id]);
    const jobRows = await testDb.database.db.select().from(storedFiles).where(eq(storedFiles.jobId, jobId));
    expect(jobRows).toHaveLength(1);
    expect((await objects()).filter((k) => !before.includes(k))).toEqual([rows[0]!.storageKey]);
    expect(await readdir(join(storageDir, 'tmp')).catch(() => [])).toEqual([]);
  });

  it('answers a repeated, streamed post over a real connection with the stored file', async () => {
    const jobId = crypto.randomUUID();
    const { key, params } = resultFor(jobId);
    const bytes = random(64 * 1024);
    const stored = await json(await store(bytes, params));
    const server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: app.fetch });
    try {
      let pulled = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(ctl) {
          pulled += 1;
          if (pulled > 64) return ctl.close();
          ctl.enqueue(random(64 * 1024));
        },
      });
      const res = await fetch(`http://127.0.0.1:${server.port}/internal/results?${new URLSearchParams(params)}`, {
        method: 'POST',
        headers: bearer(jobProcessor),
        body,
        duplex: 'half',
      } as RequestInit);
      expect(res.status).toBe(200);
      expect((await json(res)).id).toBe(stored.id);
      expect((await rowsWithKey(key)).map((r) => r.id)).toEqual([stored.id]);
    } finally {
      server.stop(true);
    }
  });

  it('refuses a key over 300 characters or with control characters with 400', async () => {
    const jobId = crypto.randomUUID();
    const { params } = resultFor(jobId);
    expect((await store(random(10), { ...params, resultKey: 'k'.repeat(301) })).status).toBe(400);
    expect((await store(random(10), { ...params, resultKey: 'a\nb' })).status).toBe(400);
    expect((await lookup('k'.repeat(301))).status).toBe(400);
    expect(await testDb.database.db.select().from(storedFiles).where(eq(storedFiles.jobId, jobId))).toEqual([]);
  });

  it('still stores results without a key, each post a new file', async () => {
    const jobId = crypto.randomUUID();
    const params = { userId: alice, jobId, name: 'log.txt', sourceService: 'michigan' };
    const first = await store(random(10), params);
    const second = await store(random(10), params);
    expect([first.status, second.status]).toEqual([201, 201]);
    expect((await json(first)).id).not.toBe((await json(second)).id);
    const rows = await testDb.database.db.select().from(storedFiles).where(eq(storedFiles.jobId, jobId));
    expect(rows.map((r) => r.resultKey)).toEqual([null, null]);
  });
});
