import { openDatabase } from '@shared/db.ts';
import { migrate } from '@shared/migrations.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { accounts } from '@db/schema/users.ts';
import { eq, sql } from 'drizzle-orm';
import { createTestDatabase, MIGRATIONS_DIR, SERVICE_SCHEMAS, type TestDatabase } from '../support/test-database.ts';

let testDb: TestDatabase;
beforeAll(async () => {
  testDb = await createTestDatabase();
});
afterAll(() => testDb.drop());

async function tablesIn(schema: string): Promise<string[]> {
  const result = await testDb.database.db.execute(
    sql`select table_name from information_schema.tables where table_schema = ${schema} order by table_name`,
  );
  const rows = (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as { table_name: string }[];
  return rows.map((r) => r.table_name);
}

describe('migrate', () => {
  it("creates each service's tables under its own schema and is idempotent", async () => {
    for (const schema of SERVICE_SCHEMAS) {
      const first = await migrate(testDb.database, { schema, migrationsDir: MIGRATIONS_DIR });
      expect(first.total).toBeGreaterThan(0);
      const again = await migrate(testDb.database, { schema, migrationsDir: MIGRATIONS_DIR });
      expect(again.applied).toBe(0);
    }
    expect(await tablesIn('users')).toEqual(['accounts', 'api_tokens', 'audit_log', 'credentials', 'outbox', 'refresh_tokens', 'signing_keys']);
    expect(await tablesIn('registry')).toEqual(['health_checks', 'outbox', 'panels', 'service_health', 'services']);
    expect(await tablesIn('jobs')).toEqual(['job_history', 'job_results', 'jobs', 'outbox']);
    expect(await tablesIn('files')).toEqual(['file_holds', 'stored_files']);
    expect(await tablesIn('notify')).toEqual(['email_outbox', 'events', 'notifications', 'preferences', 'webhook_deliveries', 'webhooks']);
    expect(await tablesIn('monitor')).toEqual(['alerts', 'host_samples', 'outbox', 'probes', 'received_events']);
  });

  it('round-trips text[] and timestamptz columns through drizzle (no type catalogue fetched)', async () => {
    const id = Bun.randomUUIDv7();
    await testDb.database.db.insert(accounts).values({
      id,
      username: `u-${id}`,
      email: `${id}@example.org`,
      passwordHash: 'x',
      firstName: 'Ada',
      lastName: 'Lovelace',
      roles: ['admin', 'has,comma', 'with "quote"'],
    });
    const [row] = await testDb.database.db.select().from(accounts).where(eq(accounts.id, id));
    expect(row?.roles).toEqual(['admin', 'has,comma', 'with "quote"']);
    expect(row?.createdAt).toBeInstanceOf(Date);
    expect(Math.abs(row!.createdAt.getTime() - Date.now())).toBeLessThan(60_000);
    await testDb.database.db.delete(accounts).where(eq(accounts.id, id));
  });

  it('rejects a schema name that is not a plain identifier', async () => {
    await expect(migrate(testDb.database, { schema: 'users"; drop table x; --', migrationsDir: MIGRATIONS_DIR })).rejects.toThrow('invalid schema name');
  });
});

describe.skipIf(!process.env.DATABASE_URL)('migrate with replicas starting together (PostgreSQL)', () => {
  it('applies each migration exactly once when five pools migrate concurrently', async () => {
    const fresh = await createTestDatabase();
    const pools = await Promise.all(Array.from({ length: 5 }, () => openDatabase({ url: fresh.url, maxConnections: 2 })));
    try {
      const results = await Promise.all(
        pools.flatMap((pool) => SERVICE_SCHEMAS.map((schema) => migrate(pool, { schema, migrationsDir: MIGRATIONS_DIR }))),
      );
      const appliedTotal = results.reduce((n, r) => n + r.applied, 0);
      const expected = results.slice(0, SERVICE_SCHEMAS.length).reduce((n, r) => n + r.total, 0);
      expect(appliedTotal).toBe(expected);
      const rows = await pools[0]!.db.execute(sql`select count(*)::int as n from drizzle.__migrations_users`);
      expect((rows as unknown as { n: number }[])[0]!.n).toBe(results[SERVICE_SCHEMAS.indexOf('users')]!.total);
    } finally {
      await Promise.all(pools.map((p) => p.close()));
      await fresh.drop();
    }
  });
});
