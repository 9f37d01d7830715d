/**
 * drizzle-kit's journal (`db/migrations/<schema>/meta/_journal.json`): names each migration by its
 * tag, so operators read "0003_credential_expiry_events" rather than a timestamp. The bookkeeping row
 * of a migration carries the journal entry's `when` (shared/migrations.ts records folderMillis).
 */
import { join } from 'node:path';

export interface JournalEntry {
  tag: string;
  when: number;
}

/** The schema's journal entries in order; empty when there is no journal. */
export async function readJournal(migrationsDir: string, schema: string): Promise<JournalEntry[]> {
  const file = Bun.file(join(migrationsDir, schema, 'meta', '_journal.json'));
  if (!(await file.exists())) return [];
  const journal = (await file.json()) as { entries?: { tag?: unknown; when?: unknown }[] };
  return (journal.entries ?? [])
    .filter((e): e is { tag: string; when: number } => typeof e.tag === 'string' && typeof e.when === 'number')
    .map((e) => ({ tag: e.tag, when: e.when }));
}

/** The tag of the migration recorded at `createdAt`, or null when the journal does not know it. */
export function tagAt(journal: JournalEntry[], createdAt: number | null): string | null {
  if (createdAt === null) return null;
  return journal.find((e) => e.when === createdAt)?.tag ?? null;
}

/** Tags of the journal entries applied after `before` up to and including `after`. */
export function tagsBetween(journal: JournalEntry[], before: number, after: number): string[] {
  return journal.filter((e) => e.when > before && e.when <= after).map((e) => e.tag);
}
