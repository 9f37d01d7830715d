/**
 * Job rows written straight into job-processor's tables, for tests of what is computed from them
 * (statistics): a job on a service, or a federated parent with children, at a chosen age and state.
 */
import { jobHistory, jobs } from '@db/schema/jobs.ts';
import type { Db } from '@shared/db.ts';

export interface JobSeed {
  userId: string;
  state: string;
  /** How long before `now` the job was created. */
  ageSeconds: number;
  /** The service slug; omit for a federated parent (no target of its own). */
  service?: string;
  parentId?: string;
  name?: string;
  /** `[state, secondsBeforeNow]` history lines, e.g. `['queued', 120]` for a retry two minutes ago. */
  history?: [string, number][];
}

/** Inserts one job (and its history lines) as of `now`; answers its id. */
export async function insertJob(db: Db, now: number, seed: JobSeed): Promise<string> {
  const id = Bun.randomUUIDv7();
  const createdAt = new Date(now - seed.ageSeconds * 1000);
  const target = seed.service
    ? { service: { id: crypto.randomUUID(), slug: seed.service, name: seed.service, protocol: 'cloudgene' }, panel: { id: crypto.randomUUID(), externalId: 'hapmap-2' } }
    : null;
  await db.insert(jobs).values({
    id,
    userId: seed.userId,
    parentId: seed.parentId ?? null,
    name: seed.name ?? `${seed.state} job`,
    state: seed.state,
    serviceId: target?.service.id ?? null,
    target,
    createdAt,
    updatedAt: createdAt,
  });
  const lines = seed.history ?? [];
  if (lines.length > 0) {
    await db
      .insert(jobHistory)
      .values(lines.map(([state, ago]) => ({ id: Bun.randomUUIDv7(), jobId: id, state, at: new Date(now - ago * 1000), message: null })));
  }
  return id;
}
