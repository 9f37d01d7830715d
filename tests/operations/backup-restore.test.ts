/**
 * `npm run backup`, `npm run restore` and `npm run migrate` as the operator runs them: the real
 * scripts as child processes, over a database seeded through the platform's own code (file-manager
 * uploads, job rows) with stored files on disk. PostgreSQL cases need DATABASE_URL (pg_dump needs a
 * real server); the standalone round trip runs everywhere on an embedded PGlite in a temp DATA_DIR.
 */
import { fileHolds } from '@db/schema/files.ts';
import { accounts } from '@db/schema/users.ts';
import { openDatabase, type Database } from '@shared/db.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { sql } from 'drizzle-orm';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import postgres from 'postgres';
import type { Manifest } from '../../scripts/operations/manifest.ts';
import { readJournal } from '../../scripts/operations/migrations-journal.ts';
import { buildFileManager } from '../support/file-manager.ts';
import { insertJob } from '../support/job-rows.ts';
import { json } from '../support/json.ts';
import { createTestDatabase, migrateAll, withDatabaseName, type TestDatabase } from '../support/test-database.ts';
import { tokenFor } from '../support/test-identity.ts';

const ROOT = resolve(import.meta.dir, '../..');
const ADMIN_URL = process.env.DATABASE_URL;

interface Run {
  code: number;
  stdout: string;
  output: string;
}

/** Runs `scripts/<name>.ts` as `npm run <name>` would, with only the environment given (no DATABASE_URL leaks in). */
async function cli(name: 'backup' | 'restore' | 'migrate', args: string[], env: Record<string, string> = {}): Promise<Run> {
  const proc = Bun.spawn([process.execPath, `scripts/${name}.ts`, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...env },
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const [code, stdout, stderr] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  return { code, stdout, output: stdout + stderr };
}

const sha256Of = (bytes: Uint8Array) => new Bun.CryptoHasher('sha256').update(bytes).digest('hex');
const readManifest = async (dir: string) => JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;

interface Seeded {
  users: number;
  jobs: number;
  history: number;
  files: { id: string; bytes: Uint8Array }[];
}

/** Accounts and jobs as rows, stored files through file-manager's upload route (real storage, real checksums). */
async function seed(database: Database, storageDir: string, jobCount: number): Promise<Seeded> {
  const owners = [crypto.randomUUID(), crypto.randomUUID()];
  for (const [i, id] of owners.entries()) {
    await database.db.insert(accounts).values({ id, username: `ops-${i}-${id}`, email: `${id}@example.org`, passwordHash: 'x', firstName: 'Ada', lastName: 'Lovelace' });
  }
  const now = Date.now();
  const jobIds: string[] = [];
  for (let i = 0; i < jobCount; i++) {
    jobIds.push(await insertJob(database.db, now, { userId: owners[i % 2]!, state: i % 3 ? 'completed' : 'running', service: 'michigan', ageSeconds: i, history: [['queued', i + 2], ['running', i + 1]] }));
  }
  const app = buildFileManager({ database, storageDir });
  const token = await tokenFor(owners[0]!);
  const files: Seeded['files'] = [];
  for (const size of [1, 70_000, 300_000]) {
    const bytes = crypto.getRandomValues(new Uint8Array(size));
    const res = await app.request(`/files?name=cohort-${size}.bin`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' }, body: bytes });
    if (res.status !== 201) throw new Error(`upload failed: ${res.status} ${await res.text()}`);
    files.push({ id: (await json(res)).id as string, bytes });
  }
  await database.db.insert(fileHolds).values({ fileId: files[0]!.id, jobId: jobIds[0]! });
  return { users: 2, jobs: jobCount, history: jobCount * 2, files };
}

/** The object path file-manager's local storage uses for a file id (key = id without dashes). */
function objectPath(storageDir: string, fileId: string): string {
  const key = fileId.replace(/-/g, '');
  return join(storageDir, 'objects', key.slice(-2), key);
}

async function flipByte(path: string, at: number): Promise<void> {
  const bytes = new Uint8Array(await readFile(path));
  bytes[at] = bytes[at]! ^ 0xff;
  await writeFile(path, bytes);
}

describe.skipIf(!ADMIN_URL)('backup and restore of PostgreSQL schemas (needs DATABASE_URL: pg_dump and pg_restore need a real server)', () => {
  let testDb: TestDatabase;
  let work: string;
  let storageDir: string;
  let seeded: Seeded;
  let backupDir: string;
  let base: Record<string, string>;
  const created: string[] = [];
  const admin = () => postgres(ADMIN_URL!, { max: 1, onnotice: () => {} });
  const scratchName = () => {
    const name = `fip_test_restore_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 6)}`;
    created.push(name);
    return name;
  };
  const databaseExists = async (name: string) => {
    const client = admin();
    try {
      return (await client`select 1 from pg_database where datname = ${name}`).length > 0;
    } finally {
      await client.end();
    }
  };

  beforeAll(async () => {
    testDb = await createTestDatabase();
    await migrateAll(testDb.database);
    work = await mkdtemp(join(tmpdir(), 'fip-ops-pg-'));
    storageDir = join(work, 'storage');
    seeded = await seed(testDb.database, storageDir, 60);
    // DATA_DIR points at an empty temp dir so no key files of the checkout are picked up.
    base = { DATA_DIR: join(work, 'data'), STORAGE_DIR: storageDir };
  }, 120_000);

  afterAll(async () => {
    const client = admin();
    try {
      for (const name of created) await client.unsafe(`drop database if exists "${name}" with (force)`);
    } finally {
      await client.end();
    }
    await testDb?.drop();
    if (work) await rm(work, { recursive: true, force: true });
  }, 60_000);

  it('migrate reports every schema up to date on a migrated database and applies everything to a new one', async () => {
    const again = await cli('migrate', ['--database-url', testDb.url!], base);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('every schema is up to date');
    const fresh = scratchName();
    const client = admin();
    await client.unsafe(`create database "${fresh}"`);
    await client.end();
    const first = await cli('migrate', [], { ...base, DATABASE_URL: withDatabaseName(ADMIN_URL!, fresh) });
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('0000_init, 0001_tokens_keys_audit');
    expect(first.stdout).toMatch(/applied \d+ migration\(s\)/);
    const second = await cli('migrate', [], { ...base, DATABASE_URL: withDatabaseName(ADMIN_URL!, fresh) });
    expect(second.stdout).toContain('every schema is up to date');
  }, 90_000);

  it('backs up every schema with row counts, dump checksums and the stored files, and names the backup last', async () => {
    const out = join(work, 'backups');
    const run = await cli('backup', ['--out', out, '--name', 'nightly', '--database-url', testDb.url!], base);
    expect(run.code).toBe(0);
    backupDir = join(out, 'nightly');
    expect(run.stdout.trim().split('\n').at(-1)).toBe(backupDir);
    expect(await readdir(out)).toEqual(['nightly']);
    const manifest = await readManifest(backupDir);
    expect(manifest).toMatchObject({ format: 'fip-backup', formatVersion: 1, mode: 'postgres' });
    expect(Object.keys(manifest.schemas)).toEqual(['users', 'registry', 'jobs', 'files', 'notify', 'monitor']);
    expect(manifest.schemas.users!.tables.accounts).toBe(seeded.users);
    expect(manifest.schemas.jobs!.tables).toMatchObject({ jobs: seeded.jobs, job_history: seeded.history });
    expect(manifest.schemas.files!.tables).toMatchObject({ stored_files: 3, file_holds: 1 });
    const usersJournal = await readJournal(join(ROOT, 'db/migrations'), 'users');
    expect(manifest.schemas.users!.migrations).toMatchObject({ table: 'drizzle.__migrations_users', rows: usersJournal.length, last: usersJournal.at(-1)!.tag });
    for (const entry of Object.values(manifest.schemas)) {
      expect(sha256Of(await readFile(join(backupDir, 'db', entry.dump!.file)))).toBe(entry.dump!.sha256);
    }
    expect(manifest.files).toMatchObject({ included: true, count: 3, mismatches: 0 });
    for (const file of seeded.files) {
      const item = manifest.files.items.find((i) => i.id === file.id)!;
      const sha = sha256Of(file.bytes);
      expect(item).toMatchObject({ status: 'ok', sha256: sha, recordedSha256: sha, bytes: file.bytes.length });
      expect(sha256Of(await readFile(objectPath(join(backupDir, 'files'), file.id)))).toBe(sha256Of(file.bytes));
    }
  }, 90_000);

  it('restores into a scratch database, finds everything equal to the manifest, and drops the scratch database', async () => {
    const run = await cli('restore', [backupDir, '--database-url', ADMIN_URL!], base);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/restore check passed in [\d.]+ s: 6 schemas/);
    expect(run.stdout).toContain('3 stored file(s)');
    const name = /scratch database postgres:\/\/[^ ]*\/(fip_restore_[a-z0-9_]+)/.exec(run.stdout)?.[1];
    expect(name).toBeDefined();
    created.push(name!);
    expect(await databaseExists(name!)).toBe(false);
  }, 90_000);

  it('keeps the scratch database with --keep, holding the restored rows and migration bookkeeping', async () => {
    const name = scratchName();
    const run = await cli('restore', [backupDir, '--database-url', ADMIN_URL!, '--scratch-name', name, '--keep'], base);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`restored into ${withDatabaseName(ADMIN_URL!, name)}`);
    const client = postgres(withDatabaseName(ADMIN_URL!, name), { max: 1, onnotice: () => {} });
    try {
      expect((await client`select count(*)::int as n from jobs.jobs`)[0]!.n).toBe(seeded.jobs);
      expect((await client`select count(*)::int as n from drizzle.__migrations_files`)[0]!.n).toBe((await readJournal(join(ROOT, 'db/migrations'), 'files')).length);
    } finally {
      await client.end();
    }
  }, 90_000);

  it('reports a changed byte in a backed-up stored file and exits 1', async () => {
    const copy = join(work, 'tampered-file');
    await cp(backupDir, copy, { recursive: true });
    const victim = seeded.files[2]!;
    await flipByte(objectPath(join(copy, 'files'), victim.id), 1234);
    const run = await cli('restore', [copy, '--database-url', ADMIN_URL!, '--scratch-name', scratchName()], base);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(new RegExp(`file +${victim.id} `));
    expect(run.stdout).toMatch(/restore check FAILED in [\d.]+ s: 1 difference\(s\)/);
  }, 90_000);

  it('reports a row count edited in the manifest, table by table, and exits 1', async () => {
    const copy = join(work, 'tampered-count');
    await cp(backupDir, copy, { recursive: true });
    const manifest = await readManifest(copy);
    manifest.schemas.jobs!.tables.job_history = seeded.history + 5;
    await writeFile(join(copy, 'manifest.json'), JSON.stringify(manifest));
    const run = await cli('restore', [copy, '--database-url', ADMIN_URL!, '--scratch-name', scratchName()], base);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(new RegExp(`rows +jobs\\.job_history +${seeded.history + 5} +${seeded.history}`));
  }, 90_000);

  it('reports a corrupted dump by its checksum and by the failed restore, and exits 1', async () => {
    const copy = join(work, 'tampered-dump');
    await cp(backupDir, copy, { recursive: true });
    const dump = join(copy, 'db', 'jobs.dump');
    await flipByte(dump, Math.floor((await readFile(dump)).length / 2));
    const run = await cli('restore', [copy, '--database-url', ADMIN_URL!, '--scratch-name', scratchName()], base);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/dump +db\/jobs\.dump/);
    expect(run.stdout).toContain('restore check FAILED');
  }, 90_000);

  it('refuses a directory without manifest.json (an interrupted backup) with exit 2', async () => {
    const partial = join(work, '.half.partial');
    await mkdir(join(partial, 'db'), { recursive: true });
    const run = await cli('restore', [partial, '--database-url', ADMIN_URL!], base);
    expect(run.code).toBe(2);
    expect(run.output).toContain('no manifest.json: not a complete backup');
  }, 30_000);

  it('takes row counts from the dump snapshot, so they match exactly while jobs are being written', async () => {
    const writer = postgres(testDb.url!, { max: 1, onnotice: () => {} });
    let writing = true;
    let inserted = 0;
    const loop = (async () => {
      while (writing) {
        await writer`insert into jobs.jobs (id, user_id, name, state) values (${crypto.randomUUID()}, ${crypto.randomUUID()}, 'busy', 'queued')`;
        inserted += 1;
      }
    })();
    try {
      const out = join(work, 'busy');
      const run = await cli('backup', ['--out', out, '--name', 'busy', '--database-url', testDb.url!], base);
      expect(run.code).toBe(0);
      const before = inserted;
      await Bun.sleep(50);
      expect(inserted).toBeGreaterThan(before);
      const restore = await cli('restore', [join(out, 'busy'), '--database-url', ADMIN_URL!, '--scratch-name', scratchName()], base);
      expect(restore.stdout).toContain('restore check passed');
      expect(restore.code).toBe(0);
      const counted = (await readManifest(join(out, 'busy'))).schemas.jobs!.tables.jobs!;
      expect(counted).toBeGreaterThan(seeded.jobs);
    } finally {
      writing = false;
      await loop;
      await writer`delete from jobs.jobs where name = 'busy'`;
      await writer.end();
    }
  }, 120_000);

  it('flags a stored file whose bytes on disk differ from its record (exit 3), and restore reports it', async () => {
    const victim = seeded.files[1]!;
    const path = objectPath(storageDir, victim.id);
    await flipByte(path, 10);
    try {
      const out = join(work, 'rotten');
      const run = await cli('backup', ['--out', out, '--name', 'rotten', '--database-url', testDb.url!], base);
      expect(run.code).toBe(3);
      expect(run.output).toContain(`warning: stored file ${victim.id}`);
      const manifest = await readManifest(join(out, 'rotten'));
      expect(manifest.files.mismatches).toBe(1);
      expect(manifest.files.items.find((i) => i.id === victim.id)?.status).toBe('checksum_mismatch');
      const restore = await cli('restore', [join(out, 'rotten'), '--database-url', ADMIN_URL!, '--scratch-name', scratchName()], base);
      expect(restore.code).toBe(1);
      expect(restore.stdout).toContain(`${victim.id} (at backup time)`);
    } finally {
      await writeFile(path, victim.bytes);
    }
  }, 120_000);

  it('backs up with --no-files (listed, not copied) and verifies such a backup against storage in place', async () => {
    const out = join(work, 'nofiles');
    const run = await cli('backup', ['--out', out, '--name', 'db-only', '--no-files', '--database-url', testDb.url!], base);
    expect(run.code).toBe(0);
    const dir = join(out, 'db-only');
    expect(existsSync(join(dir, 'files'))).toBe(false);
    expect((await readManifest(dir)).files).toMatchObject({ included: false, count: 3, mismatches: 0 });
    const unverified = await cli('restore', [dir, '--database-url', ADMIN_URL!, '--scratch-name', scratchName()], base);
    expect(unverified.code).toBe(0);
    expect(unverified.stdout).toContain('not verified');
    const inPlace = await cli('restore', [dir, '--database-url', ADMIN_URL!, '--scratch-name', scratchName(), '--verify-storage', storageDir], base);
    expect(inPlace.code).toBe(0);
    expect(inPlace.stdout).toContain('re-hashed');
  }, 120_000);

  it('backs up schemas that live in separate databases (one snapshot each) and restores them together', async () => {
    const jobsDb = await createTestDatabase();
    try {
      await migrateAll(jobsDb.database);
      await insertJob(jobsDb.database.db, Date.now(), { userId: crypto.randomUUID(), state: 'queued', service: 'topmed', ageSeconds: 1 });
      const out = join(work, 'split');
      const run = await cli('backup', ['--out', out, '--name', 'split', '--database', `jobs=${jobsDb.url!}`], { ...base, DATABASE_URL: testDb.url! });
      expect(run.code).toBe(0);
      const manifest = await readManifest(join(out, 'split'));
      expect(manifest.databases).toHaveLength(2);
      expect(manifest.schemas.jobs!.tables.jobs).toBe(1);
      expect(manifest.schemas.users!.tables.accounts).toBe(seeded.users);
      const restore = await cli('restore', [join(out, 'split'), '--scratch-name', scratchName()], { ...base, DATABASE_URL: ADMIN_URL! });
      expect(restore.code).toBe(0);
    } finally {
      await jobsDb.drop();
    }
  }, 120_000);

  it('recovers into an empty database with --target and its storage with --storage-dir, and refuses a target that already has the schemas', async () => {
    const target = scratchName();
    const client = admin();
    await client.unsafe(`create database "${target}"`);
    await client.end();
    const targetUrl = withDatabaseName(ADMIN_URL!, target);
    const recoveredStorage = join(work, 'recovered-storage');
    const run = await cli('restore', [backupDir, '--target', targetUrl, '--storage-dir', recoveredStorage], base);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('restore check passed');
    for (const file of seeded.files) expect(sha256Of(await readFile(objectPath(recoveredStorage, file.id)))).toBe(sha256Of(file.bytes));
    const migrate = await cli('migrate', ['--database-url', targetUrl], base);
    expect(migrate.stdout).toContain('every schema is up to date');
    const again = await cli('restore', [backupDir, '--target', targetUrl], base);
    expect(again.code).toBe(2);
    expect(again.output).toContain('already holds users');
  }, 120_000);

  it('fails without leaving a backup behind when a schema is missing', async () => {
    const empty = await createTestDatabase();
    try {
      const out = join(work, 'failed');
      const run = await cli('backup', ['--out', out, '--name', 'never', '--database-url', empty.url!], base);
      expect(run.code).toBe(1);
      expect(run.output).toContain('schema users does not exist');
      expect(await readdir(out)).toEqual([]);
    } finally {
      await empty.drop();
    }
  }, 60_000);
});

describe('backup and restore of the embedded database (standalone)', () => {
  let work: string;
  let dataDir: string;
  let database: Database | undefined;
  let seeded: Seeded;
  let backupDir: string;
  const env = () => ({ DATA_DIR: dataDir });

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'fip-ops-pglite-'));
    dataDir = join(work, 'data');
    database = await openDatabase({ pgliteDir: join(dataDir, 'pglite') });
    await migrateAll(database);
    seeded = await seed(database, join(dataDir, 'files'), 25);
    await mkdir(join(dataDir, 'secrets'), { recursive: true });
    await writeFile(join(dataDir, 'secrets', 'encryption.key'), `k1:${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64')}`);
  }, 120_000);

  afterAll(async () => {
    await database?.close();
    if (work) await rm(work, { recursive: true, force: true });
  }, 60_000);

  it('refuses while the embedded database is open in another process, naming it, and leaves nothing behind', async () => {
    const out = join(work, 'backups');
    const run = await cli('backup', ['--out', out], env());
    expect(run.code).toBe(1);
    // Linux names the holder from /proc; elsewhere PGlite's postmaster.pid is the only sign.
    expect(run.output).toContain(existsSync('/proc/self/fd') ? `is open in another process: pid ${process.pid}` : 'the platform looks to be running');
    expect(existsSync(out) ? await readdir(out) : []).toEqual([]);
    const migrate = await cli('migrate', [], env());
    expect(migrate.code).toBe(1);
    expect(migrate.output).toContain('open in another process');
    // npm start on the same data directory would corrupt it too: it refuses before opening anything.
    if (existsSync('/proc/self/fd')) {
      const start = Bun.spawn([process.execPath, 'services/standalone.ts'], { cwd: ROOT, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env() }, stdout: 'pipe', stderr: 'pipe' });
      const [code, stderr] = await Promise.all([start.exited, new Response(start.stderr).text()]);
      expect(code).toBe(1);
      expect(stderr).toContain(`npm start: the embedded database ${join(dataDir, 'pglite')} is open in another process: pid ${process.pid}`);
    }
  }, 60_000);

  it('backs up the stopped platform: data directory, counts, stored files and its key files', async () => {
    await database!.close();
    database = undefined;
    const run = await cli('backup', ['--out', join(work, 'backups'), '--name', 'laptop'], env());
    expect(run.code).toBe(0);
    backupDir = join(work, 'backups', 'laptop');
    const manifest = await readManifest(backupDir);
    expect(manifest.mode).toBe('pglite');
    expect(manifest.pglite!.dataDir.file).toBe('pglite-datadir.tar.gz');
    expect(manifest.databases[0]!.serverVersion).toContain('PGlite');
    expect(manifest.schemas.jobs!.tables).toMatchObject({ jobs: seeded.jobs, job_history: seeded.history });
    expect(manifest.files).toMatchObject({ included: true, count: 3, mismatches: 0 });
    expect(manifest.secrets).toMatchObject({ included: true, files: [{ name: 'encryption.key' }] });
    expect(await readFile(join(backupDir, 'secrets', 'encryption.key'), 'utf8')).toBe(await readFile(join(dataDir, 'secrets', 'encryption.key'), 'utf8'));
  }, 90_000);

  it('restores into a scratch directory and finds everything equal to the manifest', async () => {
    const run = await cli('restore', [backupDir], env());
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/restore check passed in [\d.]+ s: 6 schemas/);
    const scratch = /loading the embedded database into (\S+)/.exec(run.stdout)?.[1];
    expect(scratch && existsSync(scratch)).toBe(false);
  }, 90_000);

  it('reports a stored file changed in the backup and exits 1', async () => {
    const copy = join(work, 'tampered');
    await cp(backupDir, copy, { recursive: true });
    await flipByte(objectPath(join(copy, 'files'), seeded.files[1]!.id), 5);
    const run = await cli('restore', [copy], env());
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(seeded.files[1]!.id);
  }, 90_000);

  it('recovers into a new DATA_DIR that the platform can open: same rows, files and keys', async () => {
    const target = join(work, 'recovered');
    const run = await cli('restore', [backupDir, '--target-data-dir', target], env());
    expect(run.code).toBe(0);
    expect(await readFile(join(target, 'secrets', 'encryption.key'), 'utf8')).toBe(await readFile(join(dataDir, 'secrets', 'encryption.key'), 'utf8'));
    for (const file of seeded.files) expect(sha256Of(await readFile(objectPath(join(target, 'files'), file.id)))).toBe(sha256Of(file.bytes));
    const migrate = await cli('migrate', ['--data-dir', target], {});
    expect(migrate.code).toBe(0);
    expect(migrate.stdout).toContain('every schema is up to date');
    const restored = await openDatabase({ pgliteDir: join(target, 'pglite') });
    try {
      const result = await restored.db.execute(sql`select count(*)::int as n from jobs.jobs`);
      expect((result as unknown as { rows: { n: number }[] }).rows[0]!.n).toBe(seeded.jobs);
    } finally {
      await restored.close();
    }
  }, 120_000);
});
