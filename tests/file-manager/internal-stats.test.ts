/**
 * file-manager's `GET /internal/stats/storage` on the real database: monitoring's service token only;
 * files and bytes by kind and users holding files, matching the rows stored (sizes past 4 GiB too).
 */
import { storedFiles } from '@db/schema/files.ts';
import type { ServiceApp } from '@shared/app.ts';
import { migrate } from '@shared/migrations.ts';
import { StorageStatsSchema } from '@shared/schemas/stats.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildFileManager } from '../support/file-manager.ts';
import { json } from '../support/json.ts';
import { createTestDatabase, MIGRATIONS_DIR, type TestDatabase } from '../support/test-database.ts';
import { serviceTokenFor, tokenFor } from '../support/test-identity.ts';

let testDb: TestDatabase;
let storageDir: string;
let app: ServiceApp;

const get = async (token: string | null) => app.request('/internal/stats/storage', { headers: token ? { authorization: `Bearer ${token}` } : {} });
const asMonitoring = async () => get(await serviceTokenFor('monitoring'));

function fileRow(userId: string, kind: 'input' | 'result', sizeBytes: number): typeof storedFiles.$inferInsert {
  const id = Bun.randomUUIDv7();
  return { id, userId, kind, originalName: `${kind}.vcf.gz`, contentType: 'application/gzip', sizeBytes, sha256: '0'.repeat(64), md5: '0'.repeat(32), storageKey: `stats-${id}` };
}

beforeAll(async () => {
  testDb = await createTestDatabase();
  await migrate(testDb.database, { schema: 'files', migrationsDir: MIGRATIONS_DIR });
  storageDir = await mkdtemp(join(tmpdir(), 'fip-storage-stats-'));
  app = buildFileManager({ database: testDb.database, storageDir });
}, 60_000);

afterAll(async () => {
  await rm(storageDir, { recursive: true, force: true });
  await testDb.drop();
});

describe('GET /internal/stats/storage', () => {
  it('counts new files and bytes by kind and the users holding them', async () => {
    const before = await json(await asMonitoring());
    const [carol, dave] = [crypto.randomUUID(), crypto.randomUUID()];
    const big = 5 * 1024 ** 3;
    await testDb.database.db
      .insert(storedFiles)
      .values([fileRow(carol, 'input', 100), fileRow(carol, 'input', 250), fileRow(carol, 'result', 4096), fileRow(dave, 'result', big)]);

    const res = await asMonitoring();
    expect(res.status).toBe(200);
    const after = await json(res);
    expect(StorageStatsSchema.strict().parse(after)).toEqual(after);
    expect(after.byKind.input.files - before.byKind.input.files).toBe(2);
    expect(after.byKind.input.bytes - before.byKind.input.bytes).toBe(350);
    expect(after.byKind.result.files - before.byKind.result.files).toBe(2);
    expect(after.byKind.result.bytes - before.byKind.result.bytes).toBe(4096 + big);
    expect(after.totalFiles - before.totalFiles).toBe(4);
    expect(after.totalBytes - before.totalBytes).toBe(350 + 4096 + big);
    expect(after.usersWithFiles - before.usersWithFiles).toBe(2);
  });

  it('matches an independent tally of the stored files', async () => {
    const body = await json(await asMonitoring());
    const rows = await testDb.database.db.select({ userId: storedFiles.userId, kind: storedFiles.kind, sizeBytes: storedFiles.sizeBytes }).from(storedFiles);
    const of = (kind: string) => rows.filter((r) => r.kind === kind);
    const sum = (list: typeof rows) => list.reduce((total, r) => total + r.sizeBytes, 0);
    expect(body).toEqual({
      byKind: { input: { files: of('input').length, bytes: sum(of('input')) }, result: { files: of('result').length, bytes: sum(of('result')) } },
      totalFiles: rows.length,
      totalBytes: sum(rows),
      usersWithFiles: new Set(rows.map((r) => r.userId)).size,
    });
  });

  it('refuses other services with 403', async () => {
    for (const service of ['job-processor', 'notification']) expect((await get(await serviceTokenFor(service))).status).toBe(403);
  });

  it('refuses user tokens with 403, admins included', async () => {
    expect((await get(await tokenFor(crypto.randomUUID()))).status).toBe(403);
    expect((await get(await tokenFor(crypto.randomUUID(), ['admin']))).status).toBe(403);
  });

  it('refuses a request without a token with 401', async () => {
    expect((await get(null)).status).toBe(401);
  });
});
