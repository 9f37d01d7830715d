/**
 * `npm run keys:reseal [-- --schema users|jobs|notify ...] [--dry-run]`: moves every sealed secret
 * (vault credentials, JWT signing keys, escrowed result passwords, webhook secrets) onto the first key
 * of ENCRYPTION_KEYS, so an old key can then be removed. Reads DATABASE_URL (distributed: run it once
 * per service database with that service's --schema) or the embedded database under DATA_DIR.
 * Exits 1 when a value does not open with any configured key.
 */
import { openDatabase } from '@shared/db.ts';
import { parseEncryptionKeys, createSecretBox } from '@shared/secret-box.ts';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { SEALED_COLUMNS, resealAll } from './keys/sealed-values.ts';

const { values } = parseArgs({ options: { schema: { type: 'string', multiple: true }, 'dry-run': { type: 'boolean', default: false } } });
const schemas = new Set(values.schema ?? ['users', 'jobs', 'notify']);
const unknown = [...schemas].filter((s) => !SEALED_COLUMNS.some((c) => c.schema === s));
if (unknown.length > 0) fail(`--schema must be users, jobs or notify (got ${unknown.join(', ')})`);
if (!process.env.ENCRYPTION_KEYS) fail('ENCRYPTION_KEYS is not set: give the new key first, then every older key still in use');
const keys = (() => {
  try {
    return parseEncryptionKeys(process.env.ENCRYPTION_KEYS!);
  } catch (err) {
    return fail((err as Error).message);
  }
})();
const box = await createSecretBox(keys);
const url = process.env.DATABASE_URL;
const database = await openDatabase(url ? { url } : { pgliteDir: resolve(process.env.DATA_DIR ?? 'data', 'pglite') });
try {
  const counts = await resealAll(database.db, box, SEALED_COLUMNS.filter((c) => schemas.has(c.schema)), values['dry-run']);
  process.stdout.write(`${values['dry-run'] ? 'would re-seal' : 're-sealed'} onto key "${box.currentKeyId}"\n`);
  for (const c of counts) {
    const held = Object.entries(c.byKey).map(([id, n]) => `${id}: ${n}`).join(', ') || 'none';
    process.stdout.write(`  ${c.label.padEnd(38)} held (${held})  re-sealed ${c.resealed}  skipped ${c.skipped}  failed ${c.failed}\n`);
  }
  const failed = counts.reduce((n, c) => n + c.failed, 0);
  if (failed > 0) fail(`${failed} value(s) did not open with any configured key: keep the key that sealed them in ENCRYPTION_KEYS`);
} finally {
  await database.close();
}

function fail(message: string): never {
  process.stderr.write(`reseal: ${message}\n`);
  process.exit(1);
}
