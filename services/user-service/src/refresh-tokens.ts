/**
 * Refresh tokens: opaque, stored hashed, one family per login. Each use swaps the token for a new one
 * in the same family; presenting an already-used token means it was copied, so the whole family is
 * revoked and the user must log in again.
 */
import type { Db } from '@shared/db.ts';
import { HttpProblem } from '@shared/errors.ts';
import { randomToken, sha256Hex } from '@shared/token-hash.ts';
import { refreshTokens } from '@db/schema/users.ts';
import { and, eq, isNull, ne } from 'drizzle-orm';

export interface RefreshTokenStore {
  /** Starts a new family (a login) and returns its first token. */
  start(userId: string, client: { ip?: string | null; userAgent?: string | null }, db?: Db): Promise<string>;
  /** Exchanges a token for its successor; reuse revokes the family. */
  rotate(token: string, client: { ip?: string | null; userAgent?: string | null }): Promise<{ userId: string; token: string; familyId: string }>;
  /** Revokes the family the token belongs to (logout); unknown tokens are ignored. */
  revokeFamilyOf(token: string): Promise<{ userId: string; familyId: string } | null>;
  /** Revokes every family of a user, optionally keeping one (password change keeps the current session). */
  revokeAllForUser(userId: string, exceptFamilyId?: string, db?: Db): Promise<void>;
}

const invalid = () => new HttpProblem(401, 'invalid_refresh_token', 'The refresh token is invalid, expired or revoked. Log in again.');

export function createRefreshTokenStore(deps: { db: Db; ttlMs: number; now?: () => number }): RefreshTokenStore {
  const now = deps.now ?? Date.now;

  async function insert(db: Db, userId: string, familyId: string, client: { ip?: string | null; userAgent?: string | null }) {
    const token = randomToken();
    await db.insert(refreshTokens).values({
      id: Bun.randomUUIDv7(),
      familyId,
      userId,
      tokenHash: sha256Hex(token),
      createdAt: new Date(now()),
      expiresAt: new Date(now() + deps.ttlMs),
      ip: client.ip ?? null,
      userAgent: client.userAgent?.slice(0, 500) ?? null,
    });
    return token;
  }

  async function revokeFamily(db: Db, familyId: string) {
    await db
      .update(refreshTokens)
      .set({ revokedAt: new Date(now()) })
      .where(and(eq(refreshTokens.familyId, familyId), isNull(refreshTokens.revokedAt)));
  }

  return {
    start: (userId, client, db = deps.db) => insert(db, userId, Bun.randomUUIDv7(), client),

    async rotate(token, client) {
      const outcome = await deps.db.transaction(async (tx) => {
        // Row lock: two concurrent uses of one token cannot both succeed.
        const [row] = await tx
          .select()
          .from(refreshTokens)
          .where(eq(refreshTokens.tokenHash, sha256Hex(token)))
          .for('update');
        if (!row || row.revokedAt || row.expiresAt.getTime() <= now()) return null;
        if (row.usedAt) {
          await revokeFamily(tx as unknown as Db, row.familyId);
          return { reused: true as const, userId: row.userId, familyId: row.familyId };
        }
        await tx.update(refreshTokens).set({ usedAt: new Date(now()) }).where(eq(refreshTokens.id, row.id));
        const next = await insert(tx as unknown as Db, row.userId, row.familyId, client);
        return { reused: false as const, userId: row.userId, familyId: row.familyId, token: next };
      });
      if (!outcome || outcome.reused) throw invalid();
      return { userId: outcome.userId, token: outcome.token, familyId: outcome.familyId };
    },

    async revokeFamilyOf(token) {
      const [row] = await deps.db.select().from(refreshTokens).where(eq(refreshTokens.tokenHash, sha256Hex(token)));
      if (!row) return null;
      await revokeFamily(deps.db, row.familyId);
      return { userId: row.userId, familyId: row.familyId };
    },

    async revokeAllForUser(userId, exceptFamilyId, db = deps.db) {
      await db
        .update(refreshTokens)
        .set({ revokedAt: new Date(now()) })
        .where(
          and(
            eq(refreshTokens.userId, userId),
            isNull(refreshTokens.revokedAt),
            exceptFamilyId ? ne(refreshTokens.familyId, exceptFamilyId) : undefined,
          ),
        );
    },
  };
}
