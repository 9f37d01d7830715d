/** Personal API tokens for scripts: `fip_` + random, shown once, stored hashed, named, revocable. */
import { API_TOKEN_PREFIX } from '@shared/auth.ts';
import type { Db } from '@shared/db.ts';
import { HttpProblem } from '@shared/errors.ts';
import { randomToken, sha256Hex } from '@shared/token-hash.ts';
import { accounts, apiTokens } from '@db/schema/users.ts';
import { and, desc, eq, isNull, lt, or, sql } from 'drizzle-orm';

export interface ApiTokenView {
  id: string;
  name: string;
  prefix: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
}

export interface ApiTokenStore {
  create(userId: string, name: string, expiresAt: Date | null): Promise<{ view: ApiTokenView; token: string }>;
  list(userId: string): Promise<ApiTokenView[]>;
  /** Revokes one of the user's tokens; false when it is not theirs or already revoked. */
  revoke(userId: string, id: string): Promise<boolean>;
  revokeAllForUser(userId: string, db?: Db): Promise<void>;
  /** The owner of a live token of an active account, or null. Records last use (at most once a minute). */
  introspect(token: string): Promise<{ userId: string; roles: string[]; tokenId: string } | null>;
}

const MAX_TOKENS_PER_USER = 50;

function view(row: typeof apiTokens.$inferSelect): ApiTokenView {
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    createdAt: row.createdAt.toISOString(),
    expiresAt: row.expiresAt?.toISOString() ?? null,
    lastUsedAt: row.lastUsedAt?.toISOString() ?? null,
  };
}

export function createApiTokenStore(deps: { db: Db; now?: () => number }): ApiTokenStore {
  const now = deps.now ?? Date.now;
  const live = (userId: string) => and(eq(apiTokens.userId, userId), isNull(apiTokens.revokedAt));
  return {
    async create(userId, name, expiresAt) {
      const [{ count } = { count: 0 }] = await deps.db.select({ count: sql<number>`count(*)::int` }).from(apiTokens).where(live(userId));
      if (count >= MAX_TOKENS_PER_USER) {
        throw new HttpProblem(409, 'too_many_tokens', `You have ${MAX_TOKENS_PER_USER} API tokens; revoke one you no longer use first.`);
      }
      const token = `${API_TOKEN_PREFIX}${randomToken(32)}`;
      const [row] = await deps.db
        .insert(apiTokens)
        .values({
          id: Bun.randomUUIDv7(),
          userId,
          name,
          tokenHash: sha256Hex(token),
          prefix: token.slice(0, API_TOKEN_PREFIX.length + 6),
          createdAt: new Date(now()),
          expiresAt,
        })
        .returning();
      return { view: view(row!), token };
    },
    async list(userId) {
      const rows = await deps.db.select().from(apiTokens).where(live(userId)).orderBy(desc(apiTokens.createdAt));
      return rows.map(view);
    },
    async revoke(userId, id) {
      const rows = await deps.db
        .update(apiTokens)
        .set({ revokedAt: new Date(now()) })
        .where(and(eq(apiTokens.id, id), live(userId)))
        .returning({ id: apiTokens.id });
      return rows.length > 0;
    },
    async revokeAllForUser(userId, db = deps.db) {
      await db.update(apiTokens).set({ revokedAt: new Date(now()) }).where(live(userId));
    },
    async introspect(token) {
      if (!token.startsWith(API_TOKEN_PREFIX)) return null;
      const [row] = await deps.db
        .select({ id: apiTokens.id, userId: apiTokens.userId, expiresAt: apiTokens.expiresAt, lastUsedAt: apiTokens.lastUsedAt, roles: accounts.roles })
        .from(apiTokens)
        .innerJoin(accounts, eq(accounts.id, apiTokens.userId))
        .where(and(eq(apiTokens.tokenHash, sha256Hex(token)), isNull(apiTokens.revokedAt), eq(accounts.isActive, true)));
      if (!row || (row.expiresAt && row.expiresAt.getTime() <= now())) return null;
      if (!row.lastUsedAt || now() - row.lastUsedAt.getTime() > 60_000) {
        await deps.db
          .update(apiTokens)
          .set({ lastUsedAt: new Date(now()) })
          .where(and(eq(apiTokens.id, row.id), or(isNull(apiTokens.lastUsedAt), lt(apiTokens.lastUsedAt, new Date(now() - 60_000)))));
      }
      return { userId: row.userId, roles: row.roles, tokenId: row.id };
    },
  };
}
