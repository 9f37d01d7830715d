/**
 * Which jobs hold one of their user's active-job slots on a server: one rule, as a check on a row
 * (a transition deciding whether its ending frees a slot) and as SQL (the worker's quota count), so the
 * two cannot drift apart.
 */
import { jobs } from '@db/schema/jobs.ts';
import { and, eq, inArray, isNotNull, or } from 'drizzle-orm';
import { ACTIVE_STATES, type JobRow } from './domain.ts';

/** Whether `job` occupies a slot: past the queue and not ended, or queued on the server (a job the server has queued holds a slot there too). */
export const holdsSlot = (job: Pick<JobRow, 'serviceId' | 'state' | 'externalId'>): boolean =>
  job.serviceId !== null && ((ACTIVE_STATES as readonly string[]).includes(job.state) || (job.state === 'queued' && job.externalId !== null));

/** `holdsSlot` as a predicate over `jobs` rows (the caller scopes it to a user and service). */
export const HOLDS_SLOT = and(isNotNull(jobs.serviceId), or(inArray(jobs.state, [...ACTIVE_STATES]), and(eq(jobs.state, 'queued'), isNotNull(jobs.externalId))))!;
