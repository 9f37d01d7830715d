/** job-processor's job model: states, the stored rows, what a job targets, and what it asked for. */
import type { jobHistory, jobResults, jobs } from '@db/schema/jobs.ts';
import type { JOB_STATE_VALUES, JobCreate } from '@shared/schemas/jobs.ts';
import type { Build, Protocol, ServiceLimits } from '@shared/schemas/registry.ts';

export type JobRow = typeof jobs.$inferSelect;
export type JobHistoryRow = typeof jobHistory.$inferSelect;
export type JobResultRow = typeof jobResults.$inferSelect;

/** Every state a stored job can be in (the API's list); a federated parent also ends `partial` when some children completed and the others did not. */
export type ParentState = (typeof JOB_STATE_VALUES)[number];
/** The lifecycle of one job on one server (DESIGN §2 core flow; protocol reference §1.6 and §3.1 map onto it). */
export type JobState = Exclude<ParentState, 'partial'>;

/** The states a job never leaves: the complement of `JOB_OPEN` (db/schema/jobs.ts), which tests/job-processor/job-states.test.ts holds them to. */
export const TERMINAL_STATES: ReadonlySet<string> = new Set(['completed', 'failed', 'cancelled', 'expired', 'partial']);
/** States in which a job occupies a slot on its server (counts against its active-jobs-per-user limit). */
export const ACTIVE_STATES: readonly JobState[] = ['submitting', 'running', 'exporting'];

/** What the user asked for, stored with every job of a request (a parent and its children share it). */
export interface JobRequest {
  inputFileIds: string[];
  build: Build;
  phasing: JobCreate['phasing'];
  population: string;
  mode: JobCreate['mode'];
  r2Filter: number;
  /** The input files as they were when the job was accepted. */
  inputs: { id: string; name: string; sizeBytes: number; samples: number | null }[];
}

/** The catalogue entry a child job runs on, frozen at acceptance so later catalogue edits do not move a running job. */
export interface JobTarget {
  service: {
    id: string;
    slug: string;
    name: string;
    protocol: Protocol;
    baseUrl: string;
    /** Cloudgene app id; null for WES. */
    appId: string | null;
    credentialType: 'cloudgene-token' | 'wes-bearer' | 'basic' | 'none';
    limits: ServiceLimits;
  };
  panel: { id: string; externalId: string; externalKey: string | null; displayName: string; build: Build };
}

/** One structured line from the server's own progress messages (Cloudgene steps, WES logs). */
export interface StepLine {
  step: string;
  level: 'info' | 'warning' | 'error' | 'running';
  message: string;
  at: string | null;
}
