/**
 * Key rotation (README, Operations): values sealed under an old key keep working while both keys are
 * configured; `resealAll` (and the `npm run keys:reseal` CLI) moves them onto the new key so the old
 * one can be dropped — after which the vault, the signing keys, the escrowed passwords and the webhook
 * secrets still open with the new key alone.
 */
import { jobs } from '@db/schema/jobs.ts';
import { webhooks } from '@db/schema/notify.ts';
import { accounts, credentials, signingKeys } from '@db/schema/users.ts';
import { createSecretBox, type SecretBox } from '@shared/secret-box.ts';
import { afterAll, beforeAll, describe, expect, it } from 'bun:test';
import { eq, inArray } from 'drizzle-orm';
import { resolve } from 'node:path';
import { SEALED_COLUMNS, resealAll } from '../../scripts/keys/sealed-values.ts';
import { passwordAad } from '../../services/job-processor/src/job-store.ts';
import { webhookSecretAad } from '../../services/notification/src/webhook-signing.ts';
import { SIGNING_ALG, signingKeyAad } from '../../services/user-service/src/signing-keys.ts';
import { createVault } from '../../services/user-service/src/vault.ts';
import { insertJob } from '../support/job-rows.ts';
import { createTestDatabase, migrateAll, type TestDatabase } from '../support/test-database.ts';

const oldKey = { id: `old${Date.now().toString(36)}`, key: crypto.getRandomValues(new Uint8Array(32)) };
const newKey = { id: `new${Date.now().toString(36)}`, key: crypto.getRandomValues(new Uint8Array(32)) };
const keyList = (...keys: (typeof oldKey)[]) => keys.map((k) => `${k.id}:${Buffer.from(k.key).toString('base64')}`).join(',');

let testDb: TestDatabase;
let oldBox: SecretBox;
let bothBoxes: SecretBox;
let newBox: SecretBox;
let userId: string;
let jobId: string;
let webhookId: string;
let kid: string;
const PRIVATE_JWK = JSON.stringify({ kty: 'OKP', crv: 'Ed25519', d: 'private-half', x: 'public-half' });

/** Rows of this test only: the embedded database is shared with other test files. */
async function seed(box: SecretBox) {
  const db = testDb.database.db;
  userId = Bun.randomUUIDv7();
  await db.insert(accounts).values({ id: userId, username: `reseal-${userId}`, email: `${userId}@example.org`, passwordHash: 'x', firstName: 'R', lastName: 'S' });
  await createVault({ db, box }).put(userId, 'michigan', { type: 'cloudgene-token', secret: { token: 'cloudgene-api-token-1' } });
  jobId = await insertJob(db, Date.now(), { userId, state: 'queued', ageSeconds: 1, service: 'michigan' });
  await db.update(jobs).set({ passwordSealed: await box.seal('zip-password-1', passwordAad(jobId)) }).where(eq(jobs.id, jobId));
  webhookId = Bun.randomUUIDv7();
  await db.insert(webhooks).values({ id: webhookId, userId, url: 'https://hooks.example.org/x', eventTypes: ['*'], secretSealed: await box.seal('whsec_abc', webhookSecretAad(webhookId)) });
  // A retired signing key: the embedded database is shared with other test files, whose user-service
  // must never pick a key sealed under this test's made-up key as its active one.
  kid = Bun.randomUUIDv7();
  await db.insert(signingKeys).values({
    kid,
    alg: SIGNING_ALG,
    publicJwk: { kty: 'OKP', crv: 'Ed25519', x: 'public-half', kid },
    privateJwkSealed: await box.seal(PRIVATE_JWK, signingKeyAad(kid)),
    retiredAt: new Date(),
  });
}

beforeAll(async () => {
  testDb = await createTestDatabase();
  await migrateAll(testDb.database);
  oldBox = await createSecretBox([oldKey]);
  bothBoxes = await createSecretBox([newKey, oldKey]);
  newBox = await createSecretBox([newKey]);
  await seed(oldBox);
}, 60_000);

afterAll(async () => {
  const db = testDb.database.db;
  await db.delete(webhooks).where(eq(webhooks.id, webhookId));
  await db.delete(jobs).where(eq(jobs.id, jobId));
  await db.delete(credentials).where(eq(credentials.userId, userId));
  await db.delete(accounts).where(eq(accounts.id, userId));
  await db.delete(signingKeys).where(inArray(signingKeys.kid, [kid]));
  await testDb.drop();
}, 30_000);

describe('rotating the encryption key', () => {
  it('keeps old values readable with both keys configured, and refuses them with the new key alone before a re-seal', async () => {
    const db = testDb.database.db;
    expect((await createVault({ db, box: bothBoxes }).release(userId, 'michigan'))?.secret).toEqual({ token: 'cloudgene-api-token-1' });
    await expect(createVault({ db, box: newBox }).release(userId, 'michigan')).rejects.toThrow();
  });

  it('re-seals every kind of sealed value onto the new key, after which the new key alone opens them', async () => {
    const db = testDb.database.db;
    const counts = await resealAll(db, bothBoxes, SEALED_COLUMNS);
    expect(counts.map((c) => c.label)).toEqual(SEALED_COLUMNS.map((c) => c.label));
    // Exactly this test's value of each kind was under the old key (the key is made up here).
    for (const c of counts) expect({ label: c.label, resealed: c.resealed, underOld: c.byKey[oldKey.id] }).toEqual({ label: c.label, resealed: 1, underOld: 1 });

    expect((await createVault({ db, box: newBox }).release(userId, 'michigan'))?.secret).toEqual({ token: 'cloudgene-api-token-1' });
    const [job] = await db.select().from(jobs).where(eq(jobs.id, jobId));
    expect(newBox.keyIdOf(job!.passwordSealed!)).toBe(newKey.id);
    expect(await newBox.open(job!.passwordSealed!, passwordAad(jobId))).toBe('zip-password-1');
    const [hook] = await db.select().from(webhooks).where(eq(webhooks.id, webhookId));
    expect(await newBox.open(hook!.secretSealed, webhookSecretAad(webhookId))).toBe('whsec_abc');
    const [key] = await db.select().from(signingKeys).where(eq(signingKeys.kid, kid));
    expect(await newBox.open(key!.privateJwkSealed, signingKeyAad(kid))).toBe(PRIVATE_JWK);

    // A second run finds nothing left to do for these rows.
    const again = await resealAll(db, bothBoxes, SEALED_COLUMNS);
    expect(again.every((c) => c.resealed === 0)).toBe(true);
  });

  it.skipIf(!process.env.DATABASE_URL)('the CLI reports values no configured key opens and exits 1 (needs PostgreSQL: a child cannot reach the embedded database)', async () => {
    const db = testDb.database.db;
    const strayId = Bun.randomUUIDv7();
    const stray = await createSecretBox([{ id: 'lost', key: crypto.getRandomValues(new Uint8Array(32)) }]);
    await db.insert(webhooks).values({ id: strayId, userId, url: 'https://hooks.example.org/y', eventTypes: ['*'], secretSealed: await stray.seal('whsec_x', webhookSecretAad(strayId)) });
    try {
      const cli = Bun.spawnSync([process.execPath, resolve(import.meta.dir, '../../scripts/reseal-secrets.ts'), '--schema', 'notify'], {
        env: { PATH: process.env.PATH, DATABASE_URL: testDb.url, ENCRYPTION_KEYS: keyList(newKey, oldKey) },
      });
      expect(cli.exitCode).toBe(1);
      expect(cli.stdout.toString()).toContain('notify.webhooks.secret_sealed');
      expect(cli.stderr.toString()).toContain('did not open with any configured key');
      const ok = Bun.spawnSync([process.execPath, resolve(import.meta.dir, '../../scripts/reseal-secrets.ts'), '--schema', 'users', '--dry-run'], {
        env: { PATH: process.env.PATH, DATABASE_URL: testDb.url, ENCRYPTION_KEYS: keyList(newKey, oldKey) },
      });
      expect(ok.exitCode).toBe(0);
      expect(ok.stdout.toString()).toContain(`would re-seal onto key "${newKey.id}"`);
    } finally {
      await db.delete(webhooks).where(eq(webhooks.id, strayId));
    }
  });
});
