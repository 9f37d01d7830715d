/**
 * The one interface job-processor's workers drive every external server through. Each protocol
 * (Cloudgene, GA4GH WES) implements it against the protocol reference; nothing else in the service
 * knows a protocol's paths, headers or state numbers.
 */
import type { JobState, JobTarget, StepLine } from '../domain.ts';

/** A user's credential for the target server, as the vault releases it. */
export type ServerCredential = { type: 'cloudgene-token' | 'wes-bearer'; token: string } | { type: 'basic'; username: string; password: string } | { type: 'none' };

/** An input file the adapter can send: streamed from file-manager, or handed over as a signed link. */
export interface InputFile {
  id: string;
  name: string;
  sizeBytes: number;
  /** The bytes, streamed from file-manager (Cloudgene uploads them in the submit). */
  open(): Promise<ReadableStream<Uint8Array>>;
  /** An absolute, expiring URL the server can fetch the file from (WES `workflow_params`). */
  link(): Promise<string>;
}

export interface SubmitRequest {
  target: JobTarget;
  credential: ServerCredential;
  /** Unique per job attempt (`fip-<jobId>-<attempt>`); sent as the job name / tag so `find` can locate it. */
  externalName: string;
  inputs: InputFile[];
  build: 'hg19' | 'hg38';
  phasing: 'eagle' | 'beagle' | 'no_phasing';
  population: string;
  mode: 'imputation' | 'qc_only';
  r2Filter: number;
  /** The result-zip password the platform chose (and escrows). */
  password: string;
  signal?: AbortSignal;
}

/** A server's view of a job, mapped onto the platform lifecycle. */
export interface ExternalStatus {
  /** Mapped state; `completed` means the server finished and results can be listed. */
  state: JobState;
  /** The raw state as the server reports it (`2`, `RUNNING`), for display and debugging. */
  externalState: string;
  /** 0–100 when the server says, else an estimate from the state. */
  progress: number;
  steps: StepLine[];
  /** For failed/expired jobs: a stable code, the server's own message and a hint for the researcher. */
  error?: { code: string; message: string; hint: string | null };
  /** When the server deletes the results (Cloudgene `deletedOn`), when known. */
  resultsExpireAt?: Date | null;
  /** Position in the server's queue when waiting. */
  queuePosition?: number | null;
}

/** A result file the server published. */
export interface ResultRef {
  /** Relative name (`chr_20.zip`, `statistics/snps-excluded.txt`). */
  name: string;
  sizeBytes: number | null;
  /** Protocol-specific fetch details (URL, Cloudgene file hash), stored with the job. */
  source: Record<string, unknown>;
}

/**
 * What went wrong talking to a server, classified for the worker:
 * - `transient`: network, timeout, 5xx, maintenance 503 — retry with backoff;
 * - `busy`: the server refuses more active jobs for this user — keep the job queued, try later;
 * - `auth`: the credential was refused (401/403) — fail with a hint to renew it;
 * - `rejected`: any other 4xx — fail the job with the server's message;
 * - `gone`: the job or file no longer exists upstream (404, retired results).
 */
export class AdapterError extends Error {
  constructor(
    readonly kind: 'transient' | 'busy' | 'auth' | 'rejected' | 'gone',
    message: string,
    readonly httpStatus: number | null = null,
    readonly hint: string | null = null,
    /** A platform-side reason with its own code (e.g. `external_calls_disabled`), when it is not the server's answer. */
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'AdapterError';
  }
}

export interface ProtocolAdapter {
  readonly protocol: 'cloudgene' | 'ga4gh-wes';
  submit(request: SubmitRequest): Promise<{ externalId: string }>;
  /** The server's id of a submission made under `externalName`, or null when it has none (reconciliation after a crash). */
  find(target: JobTarget, credential: ServerCredential, externalName: string): Promise<string | null>;
  status(target: JobTarget, credential: ServerCredential, externalId: string): Promise<ExternalStatus>;
  cancel(target: JobTarget, credential: ServerCredential, externalId: string): Promise<void>;
  /** The files of a finished job; empty when it produced none. */
  results(target: JobTarget, credential: ServerCredential, externalId: string): Promise<ResultRef[]>;
  /** One GET of one result file (each call may consume a download from a per-file counter). */
  download(target: JobTarget, credential: ServerCredential, ref: ResultRef, signal?: AbortSignal): Promise<{ body: ReadableStream<Uint8Array>; sizeBytes: number | null }>;
}
