/** Creating jobs (one, or a federated parent with a child per target) and reading them back for the API. */
import { jobHistory, jobResults, jobs } from '@db/schema/jobs.ts';
import type { Identity } from '@shared/auth.ts';
import type { Db } from '@shared/db.ts';
import { isUniqueViolation } from '@shared/db.ts';
import { HttpProblem } from '@shared/errors.ts';
import type { SecretBox } from '@shared/secret-box.ts';
import { sha256Hex } from '@shared/token-hash.ts';
import { and, asc, desc, eq, inArray, isNull, lt, or, type SQL } from 'drizzle-orm';
import type { JobHistoryRow, JobResultRow, JobRow } from './domain.ts';
import type { PlannedJobs } from './job-requests.ts';
import { recordCreated } from './job-transitions.ts';
import { isUuid } from '@shared/ids.ts';

const jobNotFound = () => new HttpProblem(404, 'job_not_found', 'No such job.');

/** AAD binding a sealed password to its job row. */
export const passwordAad = (jobId: string) => `job-password:${jobId}`;

/** A result-zip password like MIS2 makes (upper, lower, digits, symbols) from characters every shell and unzip accept. */
export function generatePassword(length = 16): string {
  const sets = ['ABCDEFGHJKLMNPQRSTUVWXYZ', 'abcdefghijkmnopqrstuvwxyz', '23456789', '@%+=_-.'];
  const pick = (set: string) => set[crypto.getRandomValues(new Uint32Array(1))[0]! % set.length]!;
  const chars = sets.map(pick);
  const all = sets.join('');
  while (chars.length < length) chars.push(pick(all));
  // Fisher–Yates with crypto randomness, so the class positions are not predictable.
  const r = crypto.getRandomValues(new Uint32Array(chars.length));
  for (let i = chars.length - 1; i > 0; i--) {
    const j = r[i]! % (i + 1);
    [chars[i], chars[j]] = [chars[j]!, chars[i]!];
  }
  return chars.join('');
}

export interface CreateJobsInput {
  userId: string;
  name: string;
  description: string | null;
  plan: PlannedJobs;
  password: string;
  idempotencyKey: string | null;
  /** Fingerprint of the request body, so a reused key with a different body is refused. */
  bodyHash: string;
  now: Date;
}

/** The fingerprint `createJobs` compares for a reused Idempotency-Key. */
export const bodyFingerprint = (body: unknown) => sha256Hex(JSON.stringify(body));

/**
 * Writes the job (or parent + children) with history and `job.created` in one transaction. A reused
 * Idempotency-Key answers the job it created before (same body) or 422 (different body).
 */
export async function createJobs(db: Db, box: SecretBox, input: CreateJobsInput): Promise<{ top: JobRow; created: boolean }> {
  const { plan, now } = input;
  if (input.idempotencyKey) {
    const existing = await byIdempotencyKey(db, input.userId, input.idempotencyKey);
    if (existing) return { top: sameRequest(existing, input.bodyHash), created: false };
  }
  const federated = plan.targets.length > 1;
  const topId = Bun.randomUUIDv7();
  const request = { ...plan.request, bodyHash: input.bodyHash };
  const row = async (id: string, parentId: string | null, target: PlannedJobs['targets'][number] | null) => ({
    id,
    userId: input.userId,
    parentId,
    name: input.name,
    description: input.description,
    state: 'queued',
    serviceId: target?.service.id ?? null,
    panelId: target?.panel.externalId ?? null,
    request,
    target,
    // Only jobs the workers run get a poll time; a parent is derived from its children.
    nextPollAt: target ? now : null,
    passwordSealed: await box.seal(input.password, passwordAad(id)),
    idempotencyKey: parentId === null ? input.idempotencyKey : null,
    createdAt: now,
    updatedAt: now,
  });
  const values = federated
    ? [await row(topId, null, null), ...(await Promise.all(plan.targets.map((t) => row(Bun.randomUUIDv7(), topId, t))))]
    : [await row(topId, null, plan.targets[0]!)];
  try {
    const created = await db.transaction(async (tx) => {
      const rows = await tx.insert(jobs).values(values).returning();
      await recordCreated(tx, rows, now);
      return rows;
    });
    return { top: created.find((r) => r.id === topId)!, created: true };
  } catch (err) {
    // Two concurrent requests with one key: the loser answers what the winner created.
    if (input.idempotencyKey && isUniqueViolation(err)) {
      const existing = await byIdempotencyKey(db, input.userId, input.idempotencyKey);
      if (existing) return { top: sameRequest(existing, input.bodyHash), created: false };
    }
    throw err;
  }
}

async function byIdempotencyKey(db: Db, userId: string, key: string): Promise<JobRow | undefined> {
  const [row] = await db.select().from(jobs).where(and(eq(jobs.userId, userId), eq(jobs.idempotencyKey, key)));
  return row;
}

function sameRequest(existing: JobRow, bodyHash: string): JobRow {
  if ((existing.request as { bodyHash?: string }).bodyHash !== bodyHash) {
    throw new HttpProblem(422, 'idempotency_key_reused', 'This Idempotency-Key was used for a different request.');
  }
  return existing;
}

/** A job the caller may see: their own, or any for an admin; others' are 404, never 403. */
export async function visibleJob(db: Db, identity: Identity, id: string): Promise<JobRow> {
  if (!isUuid(id)) throw jobNotFound();
  const [row] = await db.select().from(jobs).where(eq(jobs.id, id));
  if (!row || (row.userId !== identity.subject && !identity.roles.includes('admin'))) throw jobNotFound();
  return row;
}

export async function childrenOf(db: Db, parentIds: string[]): Promise<JobRow[]> {
  if (parentIds.length === 0) return [];
  return db.select().from(jobs).where(inArray(jobs.parentId, parentIds)).orderBy(asc(jobs.createdAt), asc(jobs.id));
}

export async function historyOf(db: Db, jobIds: string[]): Promise<JobHistoryRow[]> {
  return db.select().from(jobHistory).where(inArray(jobHistory.jobId, jobIds)).orderBy(asc(jobHistory.at), asc(jobHistory.id));
}

export async function resultsOf(db: Db, jobIds: string[]): Promise<JobResultRow[]> {
  return db.select().from(jobResults).where(inArray(jobResults.jobId, jobIds)).orderBy(asc(jobResults.jobId), asc(jobResults.name));
}

/** The caller's top-level jobs (singles and parents), newest first, after a cursor position `<createdAt>|<id>`. */
export async function listJobs(
  db: Db,
  userId: string,
  options: { limit: number; after?: string; state?: string; serviceId?: string },
): Promise<JobRow[]> {
  const conditions: (SQL | undefined)[] = [eq(jobs.userId, userId), isNull(jobs.parentId)];
  if (options.state) conditions.push(eq(jobs.state, options.state));
  if (options.serviceId) {
    // A parent matches when one of its children runs on the service.
    const parents = db.select({ id: jobs.parentId }).from(jobs).where(and(eq(jobs.userId, userId), eq(jobs.serviceId, options.serviceId)));
    conditions.push(or(eq(jobs.serviceId, options.serviceId), inArray(jobs.id, parents)));
  }
  if (options.after) {
    const [at, id] = options.after.split('|') as [string, string];
    const date = new Date(at);
    conditions.push(or(lt(jobs.createdAt, date), and(eq(jobs.createdAt, date), lt(jobs.id, id))));
  }
  return db
    .select()
    .from(jobs)
    .where(and(...conditions))
    .orderBy(desc(jobs.createdAt), desc(jobs.id))
    .limit(options.limit + 1);
}
