/**
 * The orphan sweep and the temporary-file sweep of file-manager's retention worker, on real storage in
 * a temp directory and the test database: objects a row points at stay, objects no row points at go once
 * older than the grace, young ones stay (their upload may be about to insert the row), and the leftovers
 * of an upload killed mid-stream or between its rename and its insert are gone after the grace.
 */
import { createLogger } from '@shared/log.ts';
import { migrate } from '@shared/migrations.ts';
import { storedFiles } from '@db/schema/files.ts';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'bun:test';
import { eq } from 'drizzle-orm';
import { mkdtemp, readdir, rm, stat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sweepOrphans } from '../../services/file-manager/src/orphan-sweep.ts';
import { createRetentionWorker } from '../../services/file-manager/src/retention.ts';
import { createLocalStorage, type FileStorage } from '../../services/file-manager/src/storage.ts';
import { receiveUpload } from '../../services/file-manager/src/uploads.ts';
import { createTestDatabase, MIGRATIONS_DIR, type TestDatabase } from '../support/test-database.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const LIMITS = { maxBytes: 1024 * 1024, quotaBytes: 1024 * 1024 * 1024 };

let testDb: TestDatabase;
let storageDir: string;
let storage: FileStorage;
let lines: string[];
const user = crypto.randomUUID();

const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
const logger = () => createLogger({ level: 'info', sink: (line) => lines.push(line) });
const logged = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
const objectPath = (key: string) => join(storageDir, 'objects', key.slice(-2), key);
const exists = (path: string) => stat(path).then(
  () => true,
  () => false,
);
/** Sets a file's modification time `ms` into the past, as if it had been written then. */
const backdate = (path: string, ms: number) => {
  const when = new Date(Date.now() - ms);
  return utimes(path, when, when);
};

/** An upload as file-manager receives it: object and row. */
async function storedFile(bytes = random(100)): Promise<string> {
  const row = await receiveUpload(
    { db: testDb.database.db, storage, limits: LIMITS },
    { userId: user, originalName: 'kept.bin', contentType: 'application/octet-stream', body: new Response(bytes).body! },
  );
  return row.storageKey;
}

/** An upload killed after the rename and before the insert: the storage writer alone, no row. */
async function orphan(bytes = random(100)): Promise<string> {
  const writer = await storage.createWriter();
  await writer.write(bytes);
  const key = Bun.randomUUIDv7().replace(/-/g, '');
  await writer.commit(key);
  return key;
}

async function temporaryFiles(): Promise<string[]> {
  return readdir(join(storageDir, 'tmp')).catch(() => []);
}

beforeAll(async () => {
  testDb = await createTestDatabase();
  await migrate(testDb.database, { schema: 'files', migrationsDir: MIGRATIONS_DIR });
}, 60_000);

afterAll(async () => {
  await testDb.drop();
}, 60_000);

// A store of its own per test, so one test's young orphan is not another's old one.
beforeEach(async () => {
  storageDir = await mkdtemp(join(tmpdir(), 'fip-orphans-'));
  storage = createLocalStorage(storageDir);
  lines = [];
}, 10_000);

afterEach(async () => {
  await rm(storageDir, { recursive: true, force: true });
}, 10_000);

describe('orphan sweep', () => {
  it('keeps an object its row points at, however old', async () => {
    const key = await storedFile();
    await backdate(objectPath(key), 30 * 86_400_000);
    const result = await sweepOrphans({ db: testDb.database.db, storage, logger: logger() });
    expect(result).toMatchObject({ scanned: 1, removed: 0 });
    expect(await exists(objectPath(key))).toBe(true);
    const [row] = await testDb.database.db.select().from(storedFiles).where(eq(storedFiles.storageKey, key));
    expect(row).toBeDefined();
  });

  it('removes an orphan older than the grace and logs its key and size', async () => {
    const kept = await storedFile();
    const key = await orphan(random(123));
    await backdate(objectPath(key), HOUR + MINUTE);
    await backdate(objectPath(kept), HOUR + MINUTE);
    const result = await sweepOrphans({ db: testDb.database.db, storage, logger: logger() });
    expect(result).toMatchObject({ scanned: 2, removed: 1, removedBytes: 123, refused: false });
    expect(await exists(objectPath(key))).toBe(false);
    expect(await exists(objectPath(kept))).toBe(true);
    expect(logged()).toContainEqual(expect.objectContaining({ msg: 'orphan object removed', storageKey: key, sizeBytes: 123 }));
  });

  it('keeps an orphan younger than the grace: its upload may be about to insert the row', async () => {
    await storedFile();
    const key = await orphan();
    await backdate(objectPath(key), HOUR - MINUTE);
    const result = await sweepOrphans({ db: testDb.database.db, storage, logger: logger() });
    expect(result.removed).toBe(0);
    expect(await exists(objectPath(key))).toBe(true);
  });

  it('honours a shorter grace', async () => {
    await storedFile();
    const key = await orphan();
    await backdate(objectPath(key), 10 * MINUTE);
    const result = await sweepOrphans({ db: testDb.database.db, storage, logger: logger(), graceMs: 5 * MINUTE });
    expect(result.removed).toBe(1);
    expect(await exists(objectPath(key))).toBe(false);
  });

  it('looks keys up in batches and removes exactly the orphans across batch boundaries', async () => {
    const kept = [await storedFile()];
    const orphans: string[] = [];
    for (let i = 0; i < 6; i++) orphans.push(await orphan());
    for (const key of [...kept, ...orphans]) await backdate(objectPath(key), 2 * HOUR);
    // Seven candidates in batches of four: a full batch and a partial last one, each holding orphans
    // whatever order the directory lists them in.
    // Counting what has been listed when each removal happens shows the sweep settles a batch before
    // reading on, so it never holds more than a batch of the store.
    let listed = 0;
    const listedAtRemoval: number[] = [];
    const watched: FileStorage = {
      ...storage,
      async *listObjects() {
        for await (const object of storage.listObjects()) {
          listed += 1;
          yield object;
        }
      },
      async remove(key) {
        listedAtRemoval.push(listed);
        await storage.remove(key);
      },
    };
    const result = await sweepOrphans({ db: testDb.database.db, storage: watched, logger: logger(), batchSize: 4 });
    expect(result).toMatchObject({ scanned: 7, removed: 6 });
    expect(listedAtRemoval[0]).toBe(4);
    for (const key of kept) expect(await exists(objectPath(key))).toBe(true);
    for (const key of orphans) expect(await exists(objectPath(key))).toBe(false);
  });

  it('leaves files it did not write alone (other names, wrong shard)', async () => {
    await storedFile();
    const key = await orphan();
    const misplaced = join(storageDir, 'objects', key.slice(-2), 'notes.txt');
    await Bun.write(misplaced, 'operator notes');
    await backdate(misplaced, 2 * HOUR);
    await backdate(objectPath(key), 2 * HOUR);
    const result = await sweepOrphans({ db: testDb.database.db, storage, logger: logger() });
    expect(result.removed).toBe(1);
    expect(await exists(misplaced)).toBe(true);
  });

  it('removes nothing when the database records no files at all: more likely the wrong database than a store of orphans', async () => {
    const key = await orphan();
    await backdate(objectPath(key), 2 * HOUR);
    // Inside a transaction rolled back afterwards, so the table looks empty to the sweep alone
    // (the PGlite test database is shared with other test files).
    const rollback = new Error('rollback');
    let result: Awaited<ReturnType<typeof sweepOrphans>> | undefined;
    await expect(
      testDb.database.db.transaction(async (tx) => {
        await tx.delete(storedFiles);
        result = await sweepOrphans({ db: tx, storage, logger: logger() });
        throw rollback;
      }),
    ).rejects.toBe(rollback);
    expect(result).toMatchObject({ removed: 0, refused: true });
    expect(await exists(objectPath(key))).toBe(true);
    expect(logged().some((l) => l.level === 'warn' && String(l.msg).startsWith('orphan sweep skipped'))).toBe(true);
  });
});

describe('retention worker: leftovers of crashes', () => {
  it('removes a temporary file untouched for longer than the grace and keeps one being written', async () => {
    const stale = await storage.createWriter();
    await stale.write(random(10));
    const [staleName] = await temporaryFiles();
    const live = await storage.createWriter();
    await live.write(random(10));
    await backdate(join(storageDir, 'tmp', staleName!), HOUR + MINUTE);

    const worker = createRetentionWorker({ db: testDb.database.db, storage, logger: logger(), intervalMs: HOUR });
    const round = await worker.runOnce();
    expect(round.temporaryRemoved).toBe(1);
    const left = await temporaryFiles();
    expect(left).toHaveLength(1);
    expect(left).not.toContain(staleName);

    // The live upload is unaffected and still commits.
    const key = Bun.randomUUIDv7().replace(/-/g, '');
    await live.commit(key);
    expect(await exists(objectPath(key))).toBe(true);
    await stale.abort();
  });

  it('removes the object of an upload killed between its rename and its insert once the clock is past the grace', async () => {
    const kept = await storedFile();
    const key = await orphan(random(77));
    let clock = Date.now();
    const worker = createRetentionWorker({ db: testDb.database.db, storage, logger: logger(), intervalMs: HOUR, now: () => clock });

    const early = await worker.runOnce();
    expect(early.orphansRemoved).toBe(0);
    expect(await exists(objectPath(key))).toBe(true);

    clock += HOUR + MINUTE;
    const late = await worker.runOnce();
    expect(late).toMatchObject({ orphansRemoved: 1 });
    expect(late.freedBytes).toBeGreaterThanOrEqual(77);
    expect(await exists(objectPath(key))).toBe(false);
    expect(await exists(objectPath(kept))).toBe(true);
    expect(logged()).toContainEqual(expect.objectContaining({ msg: 'retention round', orphansRemoved: 1 }));
  });

  it('uses the configured grace for orphans and temporary files alike', async () => {
    await storedFile();
    const key = await orphan();
    const writer = await storage.createWriter();
    await writer.write(random(10));
    const worker = createRetentionWorker({
      db: testDb.database.db,
      storage,
      logger: logger(),
      intervalMs: HOUR,
      orphanGraceMs: 5 * MINUTE,
      now: () => Date.now() + 6 * MINUTE,
    });
    const round = await worker.runOnce();
    expect(round).toMatchObject({ orphansRemoved: 1, temporaryRemoved: 1 });
    expect(await exists(objectPath(key))).toBe(false);
    expect(await temporaryFiles()).toEqual([]);
    await writer.abort();
  });
});
