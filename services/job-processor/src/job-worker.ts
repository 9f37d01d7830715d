/**
 * The job worker (DESIGN §2 core flow steps 5–7): claims due jobs from the Postgres queue, submits
 * each exactly once through its protocol adapter, polls on a schedule stored in `next_poll_at`
 * (never sleeping inside a claim), retrieves every result file once into file-manager, cancels on
 * the server, and records every change through `transition` (row + history + events in one
 * transaction; events only for real state changes, never per poll).
 *
 * Exactly once: a job moves to `submitting` (with its `external_name`, `fip-<jobId>-<attempt>`)
 * in a committed transaction before the server is called. A job found `submitting` later (its worker
 * died) or re-queued after an ambiguous failure is looked up on the server by that name first and
 * adopted when the server has it; only otherwise is it submitted again.
 *
 * Quota smoothing: a Cloudgene account may run only so many jobs at once (400 "Only 2 jobs per user
 * …"); the worker counts the user's active jobs on the service under a per-user-and-service advisory
 * lock before the move to `submitting` and leaves the job queued, quietly, instead of collecting that 400
 * (a job whose user is still at the limit is deferred first by one unlocked statement: deferring never over-submits).
 */
import { JOB_OPEN, jobResults, jobs } from '@db/schema/jobs.ts';
import { createCircuitBreaker, type CircuitBreaker } from '@shared/circuit-breaker.ts';
import type { Db } from '@shared/db.ts';
import { UpstreamError } from '@shared/http-client.ts';
import type { Logger } from '@shared/log.ts';
import type { Protocol } from '@shared/schemas/registry.ts';
import type { SecretBox } from '@shared/secret-box.ts';
import { createWorkerLoop, errorText } from '@shared/worker-loop.ts';
import { and, count, eq, isNull, sql } from 'drizzle-orm';
import { AdapterError, type ExternalStatus, type InputFile, type ProtocolAdapter, type ResultRef, type ServerCredential } from './adapters/adapter.ts';
import { RETRY_HINT } from './adapters/adapter-http.ts';
import { TERMINAL_STATES, type JobRequest, type JobResultRow, type JobRow, type JobState, type JobTarget } from './domain.ts';
import { claimJobs, extendLeases, releaseJob } from './job-queue.ts';
import { HOLDS_SLOT } from './job-slots.ts';
import { generatePassword, passwordAad } from './job-store.ts';
import { transition, type JobChanges } from './job-transitions.ts';
import type { FilesClient, VaultClient } from './platform-clients.ts';
import { createPollSchedule, type PollSchedule } from './poll-schedule.ts';

export interface JobWorkerDeps {
  db: Db;
  adapters: Partial<Record<Protocol, ProtocolAdapter>>;
  files: FilesClient;
  vault: VaultClient;
  /** Opens (and, for jobs created without one, seals) the escrowed result-zip password. */
  secretBox: SecretBox;
  logger: Logger;
  /** This worker's lease name; unique per process (`host:pid:random`). */
  owner: string;
  /** Jobs worked on at once. */
  concurrency: number;
  /** How long a claim lasts without a heartbeat; a crashed worker's jobs come back after this. */
  leaseMs: number;
  pollSchedule?: PollSchedule;
  /** Per external server; in memory, per worker process (see shared/circuit-breaker.ts). */
  breaker?: CircuitBreaker;
  now?: () => number;
  /** Wait between claim rounds when there was nothing to do; default 1 s (a new job wakes the loop). */
  idleMs?: number;
  /** Only jobs on these services (a dedicated worker pool, or a test sharing a database); default all. */
  serviceIds?: string[];
  /** Lifetime of the signed input links a WES server fetches inputs with; default 3 days. */
  inputLinkSeconds?: number;
  /** How long a released credential is reused before asking the vault again; default 5 min. */
  credentialCacheMs?: number;
  /** Called after every committed state change (wakes the outbox relay). */
  onTransition?: () => void;
  /** Called after every claim with its duration (including the wait for a pooled connection) and the jobs it leased: for metrics and the bench. */
  onClaim?: (claim: { ms: number; jobs: number }) => void;
}

export interface JobWorker {
  /** Starts claiming in a loop (rounds back to back while there is work, `idleMs` apart otherwise). */
  start(): void;
  /**
   * Stops claiming and resolves once the in-flight steps have finished (their leases are released), or
   * after `graceMs` when given: a step still waiting then (a server that does not answer, which only
   * the external timeout would end) is abandoned with its lease, so the job goes to another worker once
   * the lease lapses (a `submitting` one is looked up on the server by its name before any new submission).
   */
  stop(graceMs?: number): Promise<void>;
  /** Claims soon instead of after the idle wait (a job was just created or cancelled). */
  wake(): void;
  /** Claims one batch, processes it and answers how many jobs it claimed (for tests and tools). */
  runOnce(): Promise<number>;
}

type Phase = 'submit' | 'poll' | 'retrieve' | 'cancel';

/** One claimed job being worked on: its latest row (updated after every write) and what the worker is doing. */
interface Work {
  row: JobRow;
  target: JobTarget;
  adapter: ProtocolAdapter;
  phase: Phase;
  log: Logger;
  /** Someone else changed the job's state meanwhile: stop touching it. */
  superseded: boolean;
}

/** What retrieval made of one result file, written to its row with the job's completion. */
interface ResultMark {
  id: string;
  state: 'stored' | 'failed';
  fileId: string | null;
  sizeBytes: number | null;
  error: string | null;
}

interface Ending {
  code?: string | null;
  message?: string | null;
  hint?: string | null;
}

/** A fault of the job itself that no retry can fix. */
class JobFault extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly hint: string | null,
  ) {
    super(message);
    this.name = 'JobFault';
  }
}

/** The name a submission carries upstream, so a restarted worker can find it. */
export const externalNameFor = (job: Pick<JobRow, 'id' | 'attempt'>) => `fip-${job.id}-${job.attempt}`;

/** The key a result file is stored under in file-manager: one file per job attempt and name, however often retrieval runs. */
export const resultKeyFor = (job: Pick<JobRow, 'id' | 'attempt'>, name: string) => `${job.id}:${job.attempt}:${name}`;

/** Active jobs per user a service allows when its catalogue entry does not say: Cloudgene's default is 2; WES servers set none. */
function activeJobLimit(target: JobTarget): number | null {
  return target.service.limits.maxActiveJobsPerUser ?? (target.service.protocol === 'cloudgene' ? 2 : null);
}

/** Builds the worker; nothing runs until `start()` or `runOnce()`. */
export function createJobWorker(deps: JobWorkerDeps): JobWorker {
  const { db, files, owner, leaseMs } = deps;
  const clock = deps.now ?? Date.now;
  const nowDate = () => new Date(clock());
  const inMs = (ms: number) => new Date(clock() + ms);
  const schedule = deps.pollSchedule ?? createPollSchedule();
  const breaker = deps.breaker ?? createCircuitBreaker({ now: clock });
  const concurrency = Math.max(1, deps.concurrency);
  const linkSeconds = deps.inputLinkSeconds ?? 3 * 86_400;
  const credentialCacheMs = deps.credentialCacheMs ?? 5 * 60_000;
  const credentials = new Map<string, { credential: ServerCredential; until: number }>();
  const inFlight = new Map<string, Promise<void>>();
  let heartbeat: ReturnType<typeof setInterval> | undefined;

  // ---- writes -------------------------------------------------------------------------------

  /**
   * Moves the job (or, with its own state, updates it quietly); false when someone else changed it first.
   * A write that schedules the job's next look (`nextPollAt`) is the last of the step and gives the
   * lease back with it. A write is one statement without BEGIN/COMMIT (row, history line and events in
   * one CTE) unless a parent must be re-derived; `also` runs further statements in the transaction of the
   * change (result rows with the completion).
   */
  async function move(
    work: Work,
    to: string,
    options: { message?: string | null; set?: JobChanges; also?: (tx: Db, at: Date) => Promise<void> } = {},
  ): Promise<boolean> {
    const before = work.row;
    let at = nowDate();
    // A write on a cancelled job marks the cancel as seen (the queue compares updated_at with it), so it
    // must not carry an earlier or equal time, even when the canceller's clock ran ahead of this one.
    if (before.cancelRequestedAt && at.getTime() <= before.cancelRequestedAt.getTime()) at = new Date(before.cancelRequestedAt.getTime() + 1);
    const { also, ...rest } = options;
    const change = { ...rest, now: at, releaseLease: options.set?.nextPollAt instanceof Date ? owner : undefined };
    // transition() writes the row, its history line and its events in one statement; only a child's change
    // (its parent is re-derived after) or extra statements (`also`) need an explicit transaction.
    const updated =
      !also && (to === before.state || before.parentId === null)
        ? await transition(db, before, to, change)
        : await db.transaction(async (tx) => {
            await also?.(tx, at);
            return transition(tx, before, to, change);
          });
    if (!updated) {
      work.superseded = true;
      work.log.info('job changed by someone else; leaving it', { state: before.state, wanted: to });
      return false;
    }
    work.row = updated;
    if (updated.state !== before.state) {
      deps.onTransition?.();
      if (TERMINAL_STATES.has(updated.state)) await releaseHolds(work);
    }
    return true;
  }

  const quiet = (work: Work, set: JobChanges, message?: string | null) => move(work, work.row.state, { set, message });

  /** Ends the job; a completed job may still carry a warning (some results missing), a cancelled one none. */
  function end(
    work: Work,
    to: 'completed' | 'failed' | 'cancelled' | 'expired',
    message: string,
    ending: Ending = {},
    set: JobChanges = {},
    also?: (tx: Db, at: Date) => Promise<void>,
  ): Promise<boolean> {
    const error = to === 'cancelled' ? {} : { errorCode: ending.code ?? null, errorMessage: ending.message ?? null, errorHint: ending.hint ?? null };
    return move(work, to, { message, set: { ...set, ...error }, also });
  }

  /** Inputs stay held in file-manager while a job may still need them; released once it ends (and its parent's, once that ends). */
  async function releaseHolds(work: Work): Promise<void> {
    const fileIds = (work.row.request as Partial<JobRequest>).inputFileIds ?? [];
    const owners = [work.row.id];
    if (work.row.parentId) {
      const [parent] = await db.select({ state: jobs.state }).from(jobs).where(eq(jobs.id, work.row.parentId));
      if (parent && TERMINAL_STATES.has(parent.state)) owners.push(work.row.parentId);
    }
    for (const jobId of owners) {
      for (const fileId of fileIds) {
        // Best effort: a hold left behind only delays retention of that input; the job has ended either way.
        await files.release(fileId, jobId).catch((err) => work.log.warn('could not release an input hold', { fileId, holder: jobId, error: errorText(err) }));
      }
    }
  }

  /** Holds the inputs for this job before they are sent anywhere, so retention cannot remove them while it runs (PUT is idempotent). */
  async function holdInputs(work: Work): Promise<void> {
    for (const fileId of (work.row.request as Partial<JobRequest>).inputFileIds ?? []) await files.hold(fileId, work.row.id);
  }

  // ---- upstream calls -----------------------------------------------------------------------

  /** Calls the server, feeding the circuit breaker: transient failures count, any real answer closes it. */
  async function upstream<T>(work: Work, call: () => Promise<T>): Promise<T> {
    const slug = work.target.service.slug;
    try {
      const value = await call();
      breaker.success(slug);
      return value;
    } catch (err) {
      if (err instanceof AdapterError) {
        if (err.kind === 'transient') breaker.failure(slug);
        else breaker.success(slug);
        throw err;
      }
      breaker.failure(slug);
      throw new AdapterError('transient', `${work.target.service.name} could not be reached: ${errorText(err)}`, null, 'The platform will try again.');
    }
  }

  /** False (and the job deferred, quietly) while the server's circuit is open. */
  async function gate(work: Work): Promise<boolean> {
    const slug = work.target.service.slug;
    if (breaker.allow(slug)) return true;
    const waitMs = Math.max(breaker.retryInMs(slug), 1_000);
    work.log.debug('circuit open; deferring', { service: slug, waitMs });
    await quiet(work, { nextPollAt: inMs(waitMs) });
    return false;
  }

  /** The user's credential for the job's server, from a short-lived cache (the original asked the vault on every poll). */
  async function credentialFor(work: Work): Promise<ServerCredential | null> {
    const { row, target } = work;
    if (target.service.credentialType === 'none') return { type: 'none' };
    const key = `${row.userId} ${target.service.slug}`;
    const cached = credentials.get(key);
    if (cached && cached.until > clock()) return cached.credential;
    const credential = await deps.vault.release(row.userId, target.service.slug);
    if (credentials.size > 10_000) credentials.clear();
    if (credential) credentials.set(key, { credential, until: clock() + credentialCacheMs });
    else credentials.delete(key);
    return credential;
  }

  const forgetCredential = (work: Work) => credentials.delete(`${work.row.userId} ${work.target.service.slug}`);

  const credentialMissing = (work: Work) =>
    end(work, 'failed', 'no credential stored for the server', {
      code: 'credential_missing',
      message: `No credential for ${work.target.service.name} is stored for this account.`,
      hint: `Add your token for ${work.target.service.name} in Settings, then retry the job.`,
    });

  async function passwordOf(work: Work): Promise<string> {
    const sealed = work.row.passwordSealed;
    try {
      if (!sealed) throw new Error('no password escrowed');
      return await deps.secretBox.open(sealed, passwordAad(work.row.id));
    } catch {
      throw new JobFault(
        'password_unavailable',
        'The result password escrowed for this job cannot be opened (the key that sealed it is not configured).',
        'Report this to the platform administrators.',
      );
    }
  }

  function inputFiles(work: Work): InputFile[] {
    const request = work.row.request as JobRequest;
    return (request.inputs ?? []).map((input) => ({
      id: input.id,
      name: input.name,
      sizeBytes: input.sizeBytes,
      open: () => files.content(input.id),
      link: () => files.link(input.id, linkSeconds),
    }));
  }

  // ---- submission ---------------------------------------------------------------------------

  /** A queued job that was never accepted upstream: quota check and the move to `submitting` (one transaction), then the server. */
  async function submit(work: Work): Promise<void> {
    if (!(await gate(work))) return;
    const credential = await credentialFor(work);
    if (!credential) {
      await credentialMissing(work);
      return;
    }
    const row = work.row;
    // Jobs created before the platform escrowed passwords get one now, sealed in the same transaction.
    const password = row.passwordSealed ? await passwordOf(work) : generatePassword();
    const sealed = row.passwordSealed ? null : await deps.secretBox.seal(password, passwordAad(row.id));
    const limit = activeJobLimit(work.target);
    const externalName = externalNameFor(row);
    const at = nowDate();
    if (limit !== null) {
      // Most looks at a job waiting for a slot find the user still at the limit: defer it in one statement
      // (count and deferral together, no lock: deferring can never over-submit; a freed slot wakes it).
      // Only a job that may go ahead takes the lock below, which counts again before the move to `submitting`.
      const deferred = await transition(db, row, 'queued', {
        set: { nextPollAt: new Date(at.getTime() + schedule.busyDelayMs(row.pollCount)), pollCount: row.pollCount + 1 },
        now: at,
        releaseLease: owner,
        where: and(isNull(jobs.externalId), isNull(jobs.cancelRequestedAt), sql`(${activeJobs(row)}) >= ${limit}`),
      });
      if (deferred) {
        work.row = deferred;
        work.log.debug('user at the active-job limit; job stays queued', { limit });
        return;
      }
    }
    const outcome = await db.transaction(async (tx) => {
      // Serializes the count and the move for this user and service across workers.
      await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${`jobs-quota:${row.userId}:${row.serviceId}`}))`);
      const [fresh] = await tx.select().from(jobs).where(eq(jobs.id, row.id)).for('update');
      if (!fresh || fresh.state !== 'queued' || fresh.externalId !== null || fresh.cancelRequestedAt !== null) return { kind: 'changed' as const, row: fresh ?? null };
      if (limit !== null) {
        const [active] = await activeJobs(fresh, tx);
        if ((active?.n ?? 0) >= limit) {
          // pollCount counts the deferrals of a job never submitted (submission resets it for the polls).
          const deferred = await transition(tx, fresh, 'queued', {
            set: { nextPollAt: new Date(at.getTime() + schedule.busyDelayMs(fresh.pollCount)), pollCount: fresh.pollCount + 1 },
            now: at,
            releaseLease: owner,
          });
          return { kind: 'busy' as const, row: deferred };
        }
      }
      const moved = await transition(tx, fresh, 'submitting', {
        message: `submitting to ${work.target.service.name} as ${externalName}`,
        set: { submitStartedAt: at, externalName, nextPollAt: null, ...(sealed ? { passwordSealed: sealed } : {}) },
        now: at,
      });
      return { kind: 'submitting' as const, row: moved, triedBefore: fresh.submitStartedAt !== null };
    });
    if (outcome.kind === 'changed') {
      if (outcome.row) work.row = outcome.row;
      if (!outcome.row || outcome.row.state !== 'queued' || outcome.row.externalId !== null) work.superseded = true;
      return;
    }
    if (!outcome.row) {
      work.superseded = true;
      return;
    }
    work.row = outcome.row;
    if (outcome.kind === 'busy') {
      work.log.debug('user at the active-job limit; job stays queued', { limit });
      return;
    }
    deps.onTransition?.();
    // An earlier attempt may have reached the server before failing ambiguously (timeout, 5xx).
    if (outcome.triedBefore) await findOrSubmit(work, credential, password);
    else await submitNow(work, credential, password);
  }

  /** Counts the user's jobs holding a slot on the job's server (as a subquery, or awaited: one row `{ n }`). */
  function activeJobs(row: JobRow, on: Db = db) {
    return on
      .select({ n: count() })
      .from(jobs)
      .where(
        and(
          eq(jobs.userId, row.userId),
          eq(jobs.serviceId, row.serviceId!),
          // Spelled as the `jobs_user_service_open` index's predicate, so the count reads open jobs only.
          JOB_OPEN,
          HOLDS_SLOT,
        ),
      );
  }

  /** A job in `submitting` nobody is working on (its worker died): adopt what the server has, else submit. */
  async function reconcile(work: Work): Promise<void> {
    if (!(await gate(work))) return;
    const credential = await credentialFor(work);
    if (!credential) {
      await credentialMissing(work);
      return;
    }
    await findOrSubmit(work, credential, await passwordOf(work));
  }

  async function findOrSubmit(work: Work, credential: ServerCredential, password: string): Promise<void> {
    const externalName = work.row.externalName ?? externalNameFor(work.row);
    const found = await upstream(work, () => work.adapter.find(work.target, credential, externalName));
    if (found) {
      await submitted(work, found, `found submission ${found} on ${work.target.service.name} under ${externalName}; adopted it instead of submitting again`);
      return;
    }
    if (!(await quiet(work, { submitStartedAt: nowDate(), externalName }, `${work.target.service.name} has no submission named ${externalName}; submitting`))) return;
    await submitNow(work, credential, password);
  }

  async function submitNow(work: Work, credential: ServerCredential, password: string): Promise<void> {
    const request = work.row.request as JobRequest;
    await holdInputs(work);
    const { externalId } = await upstream(work, () =>
      work.adapter.submit({
        target: work.target,
        credential,
        externalName: work.row.externalName ?? externalNameFor(work.row),
        inputs: inputFiles(work),
        build: request.build,
        phasing: request.phasing,
        population: request.population,
        mode: request.mode,
        r2Filter: request.r2Filter,
        password,
      }),
    );
    await submitted(work, externalId, `submitted to ${work.target.service.name} as ${externalId}`);
  }

  /** The server has the job: `running` (the first poll corrects it to `queued` when the server is still queueing it). */
  async function submitted(work: Work, externalId: string, message: string): Promise<void> {
    const ok = await move(work, 'running', { message, set: { externalId, attempts: 0, pollCount: 0, nextPollAt: inMs(schedule.pollDelayMs(0)) } });
    if (ok) return;
    // The job ended here while the server took it (an operator failed or cancelled it): do not leave it running there.
    const [current] = await db.select().from(jobs).where(eq(jobs.id, work.row.id));
    if (current && TERMINAL_STATES.has(current.state)) {
      const credential = await credentialFor(work).catch(() => null);
      if (credential) await work.adapter.cancel(work.target, credential, externalId).catch((err) => work.log.warn('could not cancel an orphaned submission', { externalId, error: errorText(err) }));
    }
  }

  // ---- polling and results ------------------------------------------------------------------

  async function poll(work: Work): Promise<void> {
    if (!(await gate(work))) return;
    const credential = await credentialFor(work);
    if (!credential) {
      await credentialMissing(work);
      return;
    }
    const externalId = work.row.externalId!;
    const status = await upstream(work, () => work.adapter.status(work.target, credential, externalId));
    await applyStatus(work, credential, status);
  }

  async function applyStatus(work: Work, credential: ServerCredential, status: ExternalStatus): Promise<void> {
    const row = work.row;
    // `attempts` is not reset here: a retrieval that keeps failing after a good status must still give up.
    const observed: JobChanges = {
      externalState: status.externalState,
      progress: status.progress,
      steps: status.steps,
      ...(status.resultsExpireAt !== undefined ? { resultsExpireAt: status.resultsExpireAt } : {}),
    };
    const server = work.target.service.name;
    switch (status.state) {
      case 'completed':
        work.phase = 'retrieve';
        await retrieve(work, credential, status, observed);
        return;
      case 'failed':
        await end(work, 'failed', status.error?.message ?? `${server} reports the job failed (${status.externalState})`, {
          code: status.error?.code ?? 'failed_upstream',
          message: status.error?.message ?? `${server} reports the job as failed (state ${status.externalState}).`,
          hint: status.error?.hint ?? null,
        }, observed);
        return;
      case 'cancelled':
        await end(work, 'cancelled', `cancelled on ${server}`, {}, observed);
        return;
      case 'expired':
        await resultsGone(work, status.error?.message ?? `${server} deleted the results before the platform retrieved them.`, status.error?.hint ?? null, observed);
        return;
      default: {
        const to: JobState = status.state === 'submitting' ? 'queued' : status.state;
        const polled = { ...observed, attempts: 0 };
        if (to === row.state) {
          const polls = row.pollCount + 1;
          await quiet(work, { ...polled, pollCount: polls, nextPollAt: inMs(schedule.pollDelayMs(polls)) });
        } else {
          const where = status.queuePosition !== undefined && status.queuePosition !== null ? ` (position ${status.queuePosition + 1} in its queue)` : '';
          await move(work, to, { message: `${server} reports ${status.externalState}${where}`, set: { ...polled, pollCount: 0, nextPollAt: inMs(schedule.pollDelayMs(0)) } });
        }
      }
    }
  }

  /**
   * The server finished: list its files, store each not yet stored once into file-manager, then complete.
   * What each file came to is kept in memory and written with the completion, in its transaction; a step
   * that fails part way writes what it has first. A file stored in file-manager whose row a crash left
   * `pending` is adopted by its key on the next look.
   */
  async function retrieve(work: Work, credential: ServerCredential, status: ExternalStatus, observed: JobChanges): Promise<void> {
    if (work.row.state !== 'exporting') {
      if (!(await move(work, 'exporting', { message: `${work.target.service.name} finished the job; retrieving results`, set: { ...observed, pollCount: 0 } }))) return;
    }
    const row = work.row;
    const externalId = row.externalId!;
    const refs = await upstream(work, () => work.adapter.results(work.target, credential, externalId));
    const fresh = new Set<string>();
    if (refs.length > 0) {
      const at = nowDate();
      const inserted = await db
        .insert(jobResults)
        .values(refs.map((ref) => ({ id: Bun.randomUUIDv7(), jobId: row.id, attempt: row.attempt, name: ref.name, source: ref.source, sizeBytes: ref.sizeBytes, createdAt: at, updatedAt: at })))
        .onConflictDoNothing({ target: [jobResults.jobId, jobResults.attempt, jobResults.name] })
        .returning({ id: jobResults.id });
      for (const { id } of inserted) fresh.add(id);
    }
    const results = await resultsOfAttempt(row);
    const expiresAt = status.resultsExpireAt ?? row.resultsExpireAt;
    if (expiresAt && expiresAt.getTime() <= clock() && results.some((r) => r.state === 'pending')) {
      await resultsGone(work, `${work.target.service.name} deleted the results (${expiresAt.toISOString()}) before the platform could retrieve them.`, null, observed);
      return;
    }
    const marks: ResultMark[] = [];
    try {
      for (const result of results.filter((r) => r.state === 'pending')) {
        const mark = await retrieveOne(work, credential, result, fresh.has(result.id));
        marks.push(mark);
        Object.assign(result, mark);
      }
    } catch (err) {
      // What was stored stays recorded even though the step goes on to fail.
      await recordResults(db, marks, nowDate()).catch((e) => work.log.warn('could not record stored results', { error: errorText(e) }));
      throw err;
    }
    await finishRetrieval(work, { rows: results, marks, set: observed });
  }

  const resultsOfAttempt = (row: JobRow) => db.select().from(jobResults).where(and(eq(jobResults.jobId, row.id), eq(jobResults.attempt, row.attempt)));

  /** Writes what retrieval made of each file, in one statement. */
  async function recordResults(tx: Db, marks: ResultMark[], at: Date): Promise<void> {
    if (marks.length === 0) return;
    const values = sql.join(
      marks.map((m) => sql`(${m.id}::uuid, ${m.state}::text, ${m.fileId}::uuid, ${m.sizeBytes}::bigint, ${m.error}::text)`),
      sql`, `,
    );
    await tx.execute(sql`
      update ${jobResults} as r
      set state = v.state, file_id = coalesce(v.file_id, r.file_id), size_bytes = coalesce(v.size_bytes, r.size_bytes), error = v.error, updated_at = ${at.toISOString()}::timestamptz
      from (values ${values}) as v(id, state, file_id, size_bytes, error)
      where r.id = v.id`);
  }

  /**
   * Every result is stored or failed: completed (with a warning when some failed), or failed when none
   * could be had. `rows` as retrieval left them in memory (else they are read), `marks` written with the end.
   */
  async function finishRetrieval(work: Work, done: { rows?: JobResultRow[]; marks?: ResultMark[]; set?: JobChanges } = {}): Promise<void> {
    const rows = done.rows ?? (await resultsOfAttempt(work.row));
    const marks = done.marks ?? [];
    const also = marks.length ? (tx: Db, at: Date) => recordResults(tx, marks, at) : undefined;
    const stored = rows.filter((r) => r.state === 'stored');
    const failed = rows.filter((r) => r.state === 'failed');
    const missing = failed.map((r) => `${r.name}: ${r.error ?? 'not retrieved'}`).join('\n');
    if (failed.length > 0 && stored.length === 0) {
      await end(
        work,
        'failed',
        'no result file could be retrieved',
        { code: 'results_unavailable', message: missing, hint: 'The server no longer serves these files; run the job again to get results.' },
        { ...done.set },
        also,
      );
      return;
    }
    await end(
      work,
      'completed',
      `${stored.length} result file${stored.length === 1 ? '' : 's'} stored${failed.length ? `; ${failed.length} could not be retrieved` : ''}`,
      failed.length ? { code: 'results_incomplete', message: missing, hint: 'Some result files could not be fetched from the server; run the job again to get them.' } : {},
      { ...done.set, progress: 100 },
      also,
    );
  }

  /**
   * The server deleted the results: `expired`, unless some were stored already — then the job completes
   * with what it has and the rest are recorded as missing.
   */
  async function resultsGone(work: Work, message: string, hint: string | null, set: JobChanges = {}): Promise<void> {
    const rows = work.row.state === 'exporting' ? await resultsOfAttempt(work.row) : [];
    if (rows.some((r) => r.state === 'stored')) {
      await db
        .update(jobResults)
        .set({ state: 'failed', error: message, updatedAt: nowDate() })
        .where(and(eq(jobResults.jobId, work.row.id), eq(jobResults.attempt, work.row.attempt), eq(jobResults.state, 'pending')));
      await finishRetrieval(work, { set });
      return;
    }
    await end(work, 'expired', 'results deleted on the server before retrieval', { code: 'results_expired', message, hint: hint ?? 'Run the job again to get results.' }, set);
  }

  /** Stores one pending result (or finds it stored) and answers what became of it; the caller records that. */
  async function retrieveOne(work: Work, credential: ServerCredential, result: JobResultRow, fresh: boolean): Promise<ResultMark> {
    const row = work.row;
    const key = resultKeyFor(row, result.name);
    const mark = (m: Omit<ResultMark, 'id' | 'fileId' | 'sizeBytes'> & Partial<ResultMark>): ResultMark => ({ id: result.id, fileId: null, sizeBytes: null, ...m });
    // Stored by an earlier run that died before recording it: adopt it, spending no download. A row this
    // step created cannot have been stored before (rows are written before any file is), so no lookup.
    const existing = fresh ? null : await files.resultByKey(key);
    if (existing) return mark({ state: 'stored', fileId: existing.id, sizeBytes: existing.sizeBytes, error: null });
    const ref: ResultRef = { name: result.name, sizeBytes: result.sizeBytes, source: result.source as Record<string, unknown> };
    let download: { body: ReadableStream<Uint8Array>; sizeBytes: number | null };
    try {
      download = await upstream(work, () => work.adapter.download(work.target, credential, ref));
    } catch (err) {
      if (err instanceof AdapterError && err.kind === 'gone') return mark({ state: 'failed', error: err.message });
      throw err;
    }
    try {
      const stored = await files.storeResult({
        key,
        userId: row.userId,
        jobId: row.id,
        name: result.name,
        sizeBytes: download.sizeBytes && download.sizeBytes > 0 ? download.sizeBytes : null,
        sourceService: work.target.service.slug,
        externalJobId: row.externalId!,
        panel: work.target.panel.externalId,
        body: download.body,
      });
      return mark({ state: 'stored', fileId: stored.id, sizeBytes: stored.sizeBytes, error: null });
    } catch (err) {
      await download.body.cancel().catch(() => undefined);
      // file-manager refused this file for good (another result under the key, over quota, empty): record it, go on.
      if (err instanceof UpstreamError && (err.upstreamStatus === 409 || err.upstreamStatus === 413 || err.upstreamStatus === 422)) {
        return mark({ state: 'failed', error: `file-manager refused the file: ${problemDetail(err)}` });
      }
      throw err;
    }
  }

  // ---- cancellation -------------------------------------------------------------------------

  async function cancel(work: Work): Promise<void> {
    const row = work.row;
    const server = work.target.service.name;
    if (row.externalId === null && row.state === 'queued' && row.submitStartedAt === null) {
      await end(work, 'cancelled', 'cancelled by the user before submission');
      return;
    }
    if (!(await gate(work))) return;
    const credential = await credentialFor(work);
    if (!credential) {
      await end(work, 'cancelled', `cancelled by the user; no credential to cancel it on ${server}, where it may still run`);
      return;
    }
    let externalId = row.externalId;
    if (externalId === null) {
      const externalName = row.externalName ?? externalNameFor(row);
      externalId = await upstream(work, () => work.adapter.find(work.target, credential, externalName));
      if (externalId === null) {
        await end(work, 'cancelled', `cancelled by the user; ${server} never received the job`);
        return;
      }
      if (!(await quiet(work, { externalId }, `found submission ${externalId} on ${server}; cancelling it`))) return;
    }
    const id = externalId;
    await upstream(work, () => work.adapter.cancel(work.target, credential, id));
    const status = await upstream(work, () => work.adapter.status(work.target, credential, id));
    const observed = { externalState: status.externalState, steps: status.steps, attempts: 0 };
    if (TERMINAL_STATES.has(status.state)) {
      await end(work, 'cancelled', `cancelled by the user on ${server}`, {}, observed);
      return;
    }
    // Still stopping (WES CANCELING): look again shortly; each look repeats the (idempotent) cancel.
    const changed = status.externalState !== row.externalState;
    await quiet(work, { ...observed, nextPollAt: inMs(schedule.cancelPollMs) }, changed ? `cancellation sent to ${server}; it reports ${status.externalState}` : null);
  }

  // ---- failures -----------------------------------------------------------------------------

  /** What a failed step means for the job, by what the worker was doing and how the call failed. */
  async function failed(work: Work, err: unknown): Promise<void> {
    const row = work.row;
    if (work.superseded || TERMINAL_STATES.has(row.state)) return;
    if (err instanceof JobFault) {
      work.log.warn('job cannot go on', { code: err.code });
      await end(work, 'failed', err.message, { code: err.code, message: err.message, hint: err.hint });
      return;
    }
    const adapterError = err instanceof AdapterError ? err : null;
    const kind = adapterError?.kind ?? 'transient';
    const message = adapterError ? adapterError.message : `The platform could not complete the step: ${err instanceof UpstreamError ? problemDetail(err) : errorText(err)}`;
    const hint = adapterError?.hint ?? null;
    const server = work.target.service.name;
    if (kind === 'auth') forgetCredential(work);
    work.log.warn('job step failed', { phase: work.phase, kind, error: message });

    if (work.phase === 'submit') {
      if (kind === 'auth') {
        await end(work, 'failed', 'the server refused the credential', { code: 'credential_rejected', message, hint: `Renew your token for ${server} in Settings, then retry the job.` });
        return;
      }
      if (kind === 'rejected' || kind === 'gone') {
        const own = adapterError?.code;
        await end(work, 'failed', own ? message : 'the server rejected the job', { code: own ?? 'rejected_by_server', message, hint });
        return;
      }
      if (kind === 'busy') {
        const set = { nextPollAt: inMs(schedule.busyDelayMs(row.pollCount)), pollCount: row.pollCount + 1 };
        if (row.state === 'submitting') await move(work, 'queued', { message: `${server} allows no more active jobs for this account; waiting`, set });
        else await quiet(work, set);
        return;
      }
      await retryLater(work, message, hint, adapterError ? 'server_unavailable' : 'platform_unavailable');
      return;
    }

    if (work.phase === 'cancel') {
      if (kind === 'gone') {
        await end(work, 'cancelled', `cancelled by the user; ${server} no longer has the job`);
        return;
      }
      if (kind !== 'transient') {
        await end(work, 'cancelled', `cancelled by the user; ${server} refused the cancellation (${message}), so the job may still run there`);
        return;
      }
      await retryLater(work, message, hint, 'server_unavailable');
      return;
    }

    if (kind === 'gone') {
      if (work.phase === 'retrieve' || row.state === 'exporting') {
        await resultsGone(work, message, hint);
      } else {
        await end(work, 'failed', 'the server no longer has the job', { code: 'job_lost', message, hint: hint ?? 'The job was removed on the server; run it again.' });
      }
      return;
    }
    const finalCode = kind === 'auth' ? 'credential_rejected' : kind === 'rejected' ? 'rejected_by_server' : adapterError ? 'server_unavailable' : 'platform_unavailable';
    await retryLater(work, message, kind === 'auth' ? `Renew your token for ${server} in Settings.` : hint, finalCode);
  }

  /** Backs off (exponentially, jittered) and gives up after `maxAttempts` failures in a row. */
  async function retryLater(work: Work, message: string, hint: string | null, finalCode: string): Promise<void> {
    const row = work.row;
    const attempts = row.attempts + 1;
    if (attempts >= schedule.maxAttempts) {
      if (work.phase === 'cancel') {
        await end(work, 'cancelled', `cancelled by the user; ${work.target.service.name} could not be reached to confirm it (${message})`);
        return;
      }
      // The error names the catalogue server and the cause: "The Cloudgene server" alone does not say which.
      const server = work.target.service.name;
      // "The platform will try again" is no longer true once it has given up.
      const finalHint =
        hint !== RETRY_HINT && hint !== null
          ? hint
          : finalCode === 'platform_unavailable'
            ? 'A platform service kept failing; run the job again later.'
            : `${server} kept failing; run the job again later, or on another server.`;
      await end(work, 'failed', `gave up on ${server} after ${attempts} failed tries: ${message}`, {
        code: finalCode,
        message: `${server}: ${message} (gave up after ${attempts} tries)`,
        hint: finalHint,
      });
      return;
    }
    const delayMs = schedule.retryDelayMs(attempts);
    const set = { attempts, nextPollAt: inMs(delayMs) };
    const note = `${message}; trying again in ${delayMs < 1000 ? `${delayMs} ms` : `${Math.ceil(delayMs / 1000)} s`}`;
    // Back to the queue after a failed submission; the next try looks the job up on the server first.
    if (row.state === 'submitting') await move(work, 'queued', { message: `submission failed: ${note}`, set });
    else await quiet(work, set, row.attempts === 0 ? note : null);
  }

  // ---- one claimed job ----------------------------------------------------------------------

  async function step(work: Work): Promise<void> {
    const row = work.row;
    if (row.cancelRequestedAt) {
      work.phase = 'cancel';
      return cancel(work);
    }
    if (row.state === 'submitting') {
      work.phase = 'submit';
      return reconcile(work);
    }
    if (row.state === 'queued' && row.externalId === null) {
      work.phase = 'submit';
      return submit(work);
    }
    work.phase = 'poll';
    return poll(work);
  }

  async function processJob(claimed: JobRow): Promise<void> {
    const log = deps.logger.child({ jobId: claimed.id });
    const target = claimed.target as JobTarget | null;
    const adapter = target ? deps.adapters[target.service.protocol] : undefined;
    let work: Work = { row: claimed, target: target!, adapter: adapter!, phase: 'poll', log, superseded: false };
    try {
      if (TERMINAL_STATES.has(claimed.state)) return;
      if (!target || !adapter) {
        work.phase = 'submit';
        await end(work, 'failed', 'the job names no server this worker can drive', {
          code: 'unsupported_target',
          message: target ? `No adapter for protocol ${target.service.protocol}.` : 'The job has no target server.',
          hint: 'Report this to the platform administrators.',
        });
        return;
      }
      work = { row: claimed, target, adapter, phase: 'poll', log, superseded: false };
      try {
        await step(work);
        // A cancel that arrived while the step ran is acted on now, not after the next poll.
        if (!work.superseded && work.phase !== 'cancel' && work.row.cancelRequestedAt && !TERMINAL_STATES.has(work.row.state)) {
          work.phase = 'cancel';
          await cancel(work);
        }
      } catch (err) {
        await failed(work, err);
      }
    } catch (err) {
      // Only the database itself failing lands here; the lease runs out and another round retries.
      log.error('job step failed and could not be recorded', { error: errorText(err) });
    } finally {
      // The step's last write usually gave the lease back already (the row it returned says so); a step
      // that ended otherwise (superseded, failed to record, a cancel acted on) releases it here.
      if (work.row.leaseOwner === owner) {
        await releaseJob(db, { owner, jobId: claimed.id }).catch((err) => log.warn('could not release the lease', { error: errorText(err) }));
      }
    }
  }

  // ---- claiming, leases, loop ---------------------------------------------------------------

  function track(job: JobRow): Promise<void> {
    const done = processJob(job).finally(() => {
      inFlight.delete(job.id);
      if (inFlight.size === 0 && heartbeat !== undefined) {
        clearInterval(heartbeat);
        heartbeat = undefined;
      }
      loop.wake();
    });
    inFlight.set(job.id, done);
    // Long steps (uploading inputs, storing results) keep their claims alive; a dead worker's lapse.
    heartbeat ??= setInterval(() => {
      extendLeases(db, { owner, jobIds: [...inFlight.keys()], leaseMs, now: nowDate() }).catch((err) => deps.logger.warn('could not extend leases', { error: errorText(err) }));
    }, Math.max(100, Math.floor(leaseMs / 3)));
    (heartbeat as { unref?: () => void }).unref?.();
    return done;
  }

  async function claim(): Promise<JobRow[]> {
    const free = concurrency - inFlight.size;
    if (free <= 0) return [];
    const started = performance.now();
    const claimed = await claimJobs(db, { owner, limit: free, leaseMs, now: nowDate(), serviceIds: deps.serviceIds });
    deps.onClaim?.({ ms: performance.now() - started, jobs: claimed.length });
    // A job still in flight here (its step gave the lease back with its last write and a cancel made it
    // due again, or its lease lapsed under a stalled heartbeat) is not started twice: the new claim is
    // given back once the step in flight has finished, and the job is claimed afresh.
    const fresh: JobRow[] = [];
    for (const job of claimed) {
      const running = inFlight.get(job.id);
      if (!running) fresh.push(job);
      else void running.then(() => releaseJob(db, { owner, jobId: job.id })).catch((err) => deps.logger.warn('could not release the lease', { jobId: job.id, error: errorText(err) }));
    }
    return fresh;
  }

  const loop = createWorkerLoop({
    name: 'job-worker',
    logger: deps.logger,
    intervalMs: deps.idleMs ?? 1_000,
    initialDelayMs: 0,
    jitter: 0.2,
    async round() {
      const free = concurrency - inFlight.size;
      const claimed = await claim();
      for (const job of claimed) void track(job);
      return claimed.length > 0 && claimed.length === free ? 'again' : undefined;
    },
  });

  return {
    start: () => loop.start(),
    async stop(graceMs) {
      await loop.stop();
      const settled = Promise.allSettled([...inFlight.values()]).then(() => true);
      if (graceMs === undefined) {
        await settled;
        return;
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const finished = await Promise.race([settled, new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), graceMs)))]);
      clearTimeout(timer);
      if (finished) return;
      // No more heartbeats: the leases must lapse for another worker to take these jobs.
      clearInterval(heartbeat);
      heartbeat = undefined;
      deps.logger.warn('stopping with steps still in flight; their jobs go to another worker when the leases lapse', { jobIds: [...inFlight.keys()], leaseMs });
    },
    wake: () => loop.wake(),
    async runOnce() {
      const claimed = await claim();
      await Promise.all(claimed.map(track));
      return claimed.length;
    },
  };
}

/** An UpstreamError's most useful text: the problem detail file-manager sent, else its own. */
function problemDetail(err: UpstreamError): string {
  const body = err.upstreamBody;
  if (body && typeof body === 'object' && 'detail' in body && typeof body.detail === 'string') return body.detail;
  return err.message;
}
