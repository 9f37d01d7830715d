/** The audit log: who did what to whom, from where. Writes never carry secrets. */
import type { Db } from '@shared/db.ts';
import { auditLog } from '@db/schema/users.ts';

export interface AuditContext {
  actorId?: string | null;
  ip?: string | null;
  userAgent?: string | null;
  requestId?: string | null;
}

export interface AuditEntry {
  action: string;
  subjectType?: string;
  subjectId?: string;
  details?: Record<string, unknown>;
}

export type AuditWriter = (context: AuditContext, entry: AuditEntry, db?: Db) => Promise<void>;

/** Records one entry; pass `db` as a transaction to make it part of the change it describes. */
export function createAuditWriter(defaultDb: Db): AuditWriter {
  return async (context, entry, db = defaultDb) => {
    await db.insert(auditLog).values({
      id: Bun.randomUUIDv7(),
      action: entry.action,
      actorId: context.actorId ?? null,
      subjectType: entry.subjectType ?? null,
      subjectId: entry.subjectId ?? null,
      ip: context.ip ?? null,
      userAgent: context.userAgent?.slice(0, 500) ?? null,
      requestId: context.requestId ?? null,
      details: entry.details ?? null,
    });
  };
}
