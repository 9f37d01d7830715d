/**
 * What bench/platform-load.ts hands its load process (virtual-users.ts) on stdin, and what that
 * process prints back as one JSON line: the actions a virtual user picks from, their default weights,
 * and the per-route figures.
 */

/** What a virtual user can do in one step of its loop. */
export const ACTIONS = ['listJobs', 'pollJob', 'submitJob', 'uploadFile', 'listFiles', 'unreadCount'] as const;
export type Action = (typeof ACTIONS)[number];

/** Relative weights of the actions (they need not add up to 100). */
export type Weights = Record<Action, number>;

export const DEFAULT_WEIGHTS: Weights = { listJobs: 20, pollJob: 25, submitJob: 10, uploadFile: 10, listFiles: 15, unreadCount: 20 };

/** `listJobs=20,pollJob=25,…` → weights; names left out keep their default, `0` turns one off. */
export function parseWeights(text: string | undefined): Weights {
  const weights = { ...DEFAULT_WEIGHTS };
  if (!text) return weights;
  for (const part of text.split(',').filter(Boolean)) {
    const [name, value] = part.split('=');
    if (!ACTIONS.includes(name as Action)) throw new Error(`--weights: unknown action ${name} (known: ${ACTIONS.join(', ')})`);
    const weight = Number(value);
    if (!Number.isFinite(weight) || weight < 0) throw new Error(`--weights: ${part} is not name=number`);
    weights[name as Action] = weight;
  }
  if (Object.values(weights).every((w) => w === 0)) throw new Error('--weights: every action is off');
  return weights;
}

export interface LoadUser {
  username: string;
  accessToken: string;
  /** Validated input files the user owns (uploaded during setup). */
  fileIds: string[];
}

export interface LoadConfig {
  gatewayUrl: string;
  seconds: number;
  maxRequests: number;
  concurrency: number;
  requestTimeoutMs: number;
  seed: number;
  weights: Weights;
  /** A user submits only while fewer of its jobs are unfinished; otherwise the step polls one. */
  maxOpenJobsPerUser: number;
  /** Share of submits that are a federated job (both fakes); the rest go to one fake, half each. */
  federatedShare: number;
  /** Share of submits that resend the user's previous submit with the same Idempotency-Key. */
  replayShare: number;
  /** Catalogue ids of the two fakes and the panel both offer. */
  services: { cloudgene: string; wes: string };
  panel: string;
  /** Shape of the generated upload (bgzipped VCF). */
  vcf: { samples: number; positions: number };
  users: LoadUser[];
}

/** One request that did not answer 2xx (status 0: no HTTP answer at all). */
export interface Sample {
  route: string;
  method: string;
  path: string;
  status: number;
  /** The gateway's request id, to find the request in the services' logs. */
  requestId?: string;
  body: string;
  /** Milliseconds since the load started. */
  atMs: number;
}

export interface RouteStats {
  route: string;
  count: number;
  s2xx: number;
  s3xx: number;
  s4xx: number;
  s5xx: number;
  /** Requests without an HTTP answer (connection refused or cut, timeout). */
  transport: number;
  /** Count per status code, `0` for transport failures. */
  statuses: Record<string, number>;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
}

export type JobKind = 'federated' | 'cloudgene' | 'wes';

export interface SubmittedJob {
  id: string;
  username: string;
  kind: JobKind;
}

export interface LoadOutcome {
  /** Wall time from the first request to the last answer, in ms. */
  elapsedMs: number;
  requests: number;
  /** True when `maxRequests` ended the run before `seconds` did. */
  capped: boolean;
  routes: RouteStats[];
  /** The first few answers per class: 5xx, transport failures, 4xx. */
  samples: { s5xx: Sample[]; transport: Sample[]; s4xx: Sample[] };
  jobs: SubmittedJob[];
  /** Resubmits with the same Idempotency-Key that answered the same job, and those that did not. */
  replays: { matched: number; mismatched: number };
  /** Submit steps turned into a poll because the user already had `maxOpenJobsPerUser` unfinished jobs. */
  submitsDeferred: number;
  /** Sizes of the generated uploads in bytes. */
  uploadBytes: { min: number; max: number };
  /** CPU (user + system) of the load process during the run, ms. */
  clientCpuMs: number;
  rssMiB: number;
  peakRssMiB: number;
}

/** Job states after which nothing changes any more. */
export const TERMINAL_STATES = new Set(['completed', 'failed', 'cancelled', 'expired', 'partial']);
