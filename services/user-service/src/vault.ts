/**
 * The vault of users' credentials for external imputation servers. Secrets are sealed with the
 * platform key and bound (AAD) to their user and service; reads return metadata only, and the one
 * way to the plaintext is `release`, which the internal route offers to job-processor alone.
 */
import type { Db } from '@shared/db.ts';
import type { CredentialType } from '@shared/schemas/credentials.ts';
import type { SecretBox } from '@shared/secret-box.ts';
import { credentials } from '@db/schema/users.ts';
import { and, eq } from 'drizzle-orm';
import { decodeJwt } from 'jose';

export type CredentialSecret = { token: string } | { username: string; password: string };

export interface CredentialInput {
  type: CredentialType;
  label?: string | null;
  secret: CredentialSecret;
}

export interface CredentialView {
  serviceId: string;
  type: CredentialType;
  label: string | null;
  createdAt: string;
  updatedAt: string;
  lastUsedAt: string | null;
  expiresAt: string | null;
  /** True when it expires within `expiringWithinMs` (default 7 days) or already has. */
  expiringSoon: boolean;
  expired: boolean;
  lastVerification: { at: string; ok: boolean; message: string | null } | null;
}

export interface Vault {
  put(userId: string, serviceId: string, input: CredentialInput): Promise<{ view: CredentialView; created: boolean }>;
  list(userId: string): Promise<CredentialView[]>;
  get(userId: string, serviceId: string): Promise<CredentialView | null>;
  remove(userId: string, serviceId: string): Promise<boolean>;
  /** The plaintext for job-processor; null when the user has none for that service. */
  release(userId: string, serviceId: string): Promise<{ type: CredentialType; secret: CredentialSecret; expiresAt: string | null } | null>;
}

/** The additional data a credential is sealed with, binding it to its user and service. */
export const credentialAad = (userId: string, serviceId: string) => `credential:${userId}:${serviceId}`;

/** A token's own expiry when it is a JWT (Cloudgene API tokens are); null otherwise. */
export function tokenExpiry(secret: CredentialSecret): Date | null {
  if (!('token' in secret)) return null;
  try {
    const { exp } = decodeJwt(secret.token);
    return typeof exp === 'number' ? new Date(exp * 1000) : null;
  } catch {
    return null;
  }
}

export function createVault(deps: { db: Db; box: SecretBox; expiringWithinMs?: number; now?: () => number }): Vault {
  const now = deps.now ?? Date.now;
  const soon = deps.expiringWithinMs ?? 7 * 86_400_000;
  const view = (row: typeof credentials.$inferSelect): CredentialView => ({
    serviceId: row.serviceId,
    type: row.type as CredentialType,
    label: row.label,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
    lastUsedAt: row.lastUsedAt?.toISOString() ?? null,
    expiresAt: row.expiresAt?.toISOString() ?? null,
    expiringSoon: row.expiresAt ? row.expiresAt.getTime() - now() <= soon : false,
    expired: row.expiresAt ? row.expiresAt.getTime() <= now() : false,
    lastVerification: row.verifiedAt
      ? { at: row.verifiedAt.toISOString(), ok: row.verificationOk ?? false, message: row.verificationMessage }
      : null,
  });
  const owned = (userId: string, serviceId: string) => and(eq(credentials.userId, userId), eq(credentials.serviceId, serviceId));

  return {
    async put(userId, serviceId, input) {
      const sealed = await deps.box.seal(JSON.stringify(input.secret), credentialAad(userId, serviceId));
      const at = new Date(now());
      const values = {
        type: input.type,
        label: input.label ?? null,
        sealed,
        updatedAt: at,
        expiresAt: tokenExpiry(input.secret),
        // A new secret has not been verified yet.
        verifiedAt: null,
        verificationOk: null,
        verificationMessage: null,
      };
      const [row] = await deps.db
        .insert(credentials)
        .values({ id: Bun.randomUUIDv7(), userId, serviceId, createdAt: at, ...values })
        .onConflictDoUpdate({ target: [credentials.userId, credentials.serviceId], set: values })
        .returning();
      return { view: view(row!), created: row!.createdAt.getTime() === row!.updatedAt.getTime() };
    },
    async list(userId) {
      const rows = await deps.db.select().from(credentials).where(eq(credentials.userId, userId)).orderBy(credentials.serviceId);
      return rows.map(view);
    },
    async get(userId, serviceId) {
      const [row] = await deps.db.select().from(credentials).where(owned(userId, serviceId));
      return row ? view(row) : null;
    },
    async remove(userId, serviceId) {
      return (await deps.db.delete(credentials).where(owned(userId, serviceId)).returning({ id: credentials.id })).length > 0;
    },
    async release(userId, serviceId) {
      const [row] = await deps.db
        .update(credentials)
        .set({ lastUsedAt: new Date(now()) })
        .where(owned(userId, serviceId))
        .returning();
      if (!row) return null;
      const secret = JSON.parse(await deps.box.open(row.sealed, credentialAad(userId, serviceId))) as CredentialSecret;
      return { type: row.type as CredentialType, secret, expiresAt: row.expiresAt?.toISOString() ?? null };
    },
  };
}
