/** What admins do to accounts: list and search, change roles, deactivate and reactivate; and the audit trail. */
import type { Db } from '@shared/db.ts';
import { HttpProblem } from '@shared/errors.ts';
import { accounts, auditLog } from '@db/schema/users.ts';
import { and, asc, desc, eq, gt, ilike, lt, or, sql, type SQL } from 'drizzle-orm';
import type { AccountRow } from './accounts.ts';

export interface UserAdmin {
  list(options: { limit: number; after?: string; q?: string }): Promise<{ rows: AccountRow[]; more: boolean }>;
  /** Applies role and active-state changes (deactivation revokes refresh and API tokens in the same transaction); refuses to leave the platform without an active admin. */
  update(id: string, changes: { roles?: string[]; isActive?: boolean }): Promise<{ before: AccountRow; after: AccountRow }>;
  audit(options: { limit: number; before?: string; action?: string; actorId?: string }): Promise<{ rows: (typeof auditLog.$inferSelect)[]; more: boolean }>;
}

/**
 * `revokeCredentials` runs inside the deactivating transaction, so a deactivated account never keeps
 * live refresh or API tokens (access tokens are revoked through the KV by the caller).
 */
export function createUserAdmin(deps: { db: Db; revokeCredentials: (userId: string, tx: Db) => Promise<void>; now?: () => number }): UserAdmin {
  const now = deps.now ?? Date.now;
  return {
    async list({ limit, after, q }) {
      const filters: (SQL | undefined)[] = [after ? gt(accounts.id, after) : undefined];
      if (q) {
        const pattern = `%${q.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;
        filters.push(
          or(ilike(accounts.username, pattern), ilike(accounts.email, pattern), ilike(sql`${accounts.firstName} || ' ' || ${accounts.lastName}`, pattern)),
        );
      }
      const rows = await deps.db
        .select()
        .from(accounts)
        .where(and(...filters))
        .orderBy(asc(accounts.id))
        .limit(limit + 1);
      return { rows: rows.slice(0, limit), more: rows.length > limit };
    },

    async update(id, changes) {
      return deps.db.transaction(async (tx) => {
        await tx.execute(sql`select pg_advisory_xact_lock(hashtext('federated-imputation:admins'))`);
        const [before] = await tx.select().from(accounts).where(eq(accounts.id, id)).for('update');
        if (!before) throw new HttpProblem(404, 'user_not_found', 'No such user.');
        const roles = changes.roles ?? before.roles;
        const isActive = changes.isActive ?? before.isActive;
        if (before.roles.includes('admin') && before.isActive && !(roles.includes('admin') && isActive)) {
          const [{ others } = { others: 0 }] = await tx
            .select({ others: sql<number>`count(*)::int` })
            .from(accounts)
            .where(and(sql`'admin' = any(${accounts.roles})`, eq(accounts.isActive, true), sql`${accounts.id} <> ${id}`));
          if (others === 0) throw new HttpProblem(409, 'last_admin', 'This is the only active admin; make someone else admin first.');
        }
        const [after] = await tx
          .update(accounts)
          .set({ roles, isActive, updatedAt: new Date(now()) })
          .where(eq(accounts.id, id))
          .returning();
        if (before.isActive && !isActive) await deps.revokeCredentials(id, tx as unknown as Db);
        return { before, after: after! };
      });
    },

    async audit({ limit, before, action, actorId }) {
      const rows = await deps.db
        .select()
        .from(auditLog)
        .where(and(before ? lt(auditLog.id, before) : undefined, action ? eq(auditLog.action, action) : undefined, actorId ? eq(auditLog.actorId, actorId) : undefined))
        .orderBy(desc(auditLog.id))
        .limit(limit + 1);
      return { rows: rows.slice(0, limit), more: rows.length > limit };
    },
  };
}
