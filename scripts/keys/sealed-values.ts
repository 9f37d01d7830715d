/**
 * Every value the platform seals with an encryption key (shared/secret-box.ts), where it lives and
 * the additional data it is bound to, and `resealAll`, which moves values sealed under older keys onto
 * the current one. That is the second half of a key rotation: put the new key first in
 * ENCRYPTION_KEYS (values keep opening with the old key, new ones use the new key), re-seal, then drop
 * the old key from the list.
 */
import { jobs } from '@db/schema/jobs.ts';
import { webhooks } from '@db/schema/notify.ts';
import { credentials, signingKeys } from '@db/schema/users.ts';
import type { Db } from '@shared/db.ts';
import type { SecretBox } from '@shared/secret-box.ts';
import { and, eq, isNotNull } from 'drizzle-orm';
import type { PgColumn, PgTable } from 'drizzle-orm/pg-core';
import { passwordAad } from '../../services/job-processor/src/job-store.ts';
import { webhookSecretAad } from '../../services/notification/src/webhook-signing.ts';
import { signingKeyAad } from '../../services/user-service/src/signing-keys.ts';
import { credentialAad } from '../../services/user-service/src/vault.ts';

export interface SealedColumn {
  /** The schema (and so the service) that owns it. */
  schema: 'users' | 'jobs' | 'notify';
  label: string;
  table: PgTable;
  key: PgColumn;
  sealed: PgColumn;
  /** Columns the additional data is built from, besides the key. */
  extra: Record<string, PgColumn>;
  aad(row: Record<string, string>): string;
}

export const SEALED_COLUMNS: readonly SealedColumn[] = [
  { schema: 'users', label: 'users.signing_keys.private_jwk_sealed', table: signingKeys, key: signingKeys.kid, sealed: signingKeys.privateJwkSealed, extra: {}, aad: (r) => signingKeyAad(r.key!) },
  {
    schema: 'users',
    label: 'users.credentials.sealed',
    table: credentials,
    key: credentials.id,
    sealed: credentials.sealed,
    extra: { userId: credentials.userId, serviceId: credentials.serviceId },
    aad: (r) => credentialAad(r.userId!, r.serviceId!),
  },
  { schema: 'jobs', label: 'jobs.jobs.password_sealed', table: jobs, key: jobs.id, sealed: jobs.passwordSealed, extra: {}, aad: (r) => passwordAad(r.key!) },
  { schema: 'notify', label: 'notify.webhooks.secret_sealed', table: webhooks, key: webhooks.id, sealed: webhooks.secretSealed, extra: {}, aad: (r) => webhookSecretAad(r.key!) },
];

export interface ResealCount {
  label: string;
  /** Values found per key id before re-sealing. */
  byKey: Record<string, number>;
  resealed: number;
  /** Values that changed while this ran (a concurrent write already sealed them anew). */
  skipped: number;
  /** Values that did not open: their key is not in the list, or they were tampered with. */
  failed: number;
}

/** Re-seals every value of `columns` not sealed with the box's current key; `dryRun` only counts. */
export async function resealAll(db: Db, box: SecretBox, columns: readonly SealedColumn[], dryRun = false): Promise<ResealCount[]> {
  const counts: ResealCount[] = [];
  for (const column of columns) {
    const count: ResealCount = { label: column.label, byKey: {}, resealed: 0, skipped: 0, failed: 0 };
    const rows = (await db
      .select({ key: column.key, sealed: column.sealed, ...column.extra })
      .from(column.table)
      .where(isNotNull(column.sealed))) as Record<string, string>[];
    for (const row of rows) {
      const keyId = box.keyIdOf(row.sealed!);
      count.byKey[keyId] = (count.byKey[keyId] ?? 0) + 1;
      if (keyId === box.currentKeyId || dryRun) continue;
      let plaintext: string;
      try {
        plaintext = await box.open(row.sealed!, column.aad(row));
      } catch {
        count.failed++;
        continue;
      }
      const resealed = await box.seal(plaintext, column.aad(row));
      // Compare-and-set: a value rewritten since it was read is left as the service wrote it.
      const updated = await db
        .update(column.table)
        .set({ [sealedProperty(column)]: resealed })
        .where(and(eq(column.key, row.key), eq(column.sealed, row.sealed)))
        .returning({ key: column.key });
      if (updated.length === 1) count.resealed++;
      else count.skipped++;
    }
    counts.push(count);
  }
  return counts;
}

/** The drizzle property name of the sealed column in its table (for `.set`). */
function sealedProperty(column: SealedColumn): string {
  const entry = Object.entries(column.table).find(([, value]) => value === column.sealed);
  if (!entry) throw new Error(`${column.label}: column not found in its table`);
  return entry[0];
}

