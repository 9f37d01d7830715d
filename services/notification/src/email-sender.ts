/**
 * The email send queue's worker: takes due rows of `email_outbox` (queued by fan-out in the event's
 * transaction) and hands them to the mail server, retrying failures with capped exponential backoff
 * until they are sent or given up.
 *
 * Rows are claimed as the outbox relay claims them (`claimDueRows`, shared/leased-queue.ts): a short
 * transaction selects a batch `FOR UPDATE SKIP LOCKED` and pushes each row's `next_attempt_at` forward
 * by a lease; SMTP happens outside any transaction. Several replicas can therefore share the queue without sending a row twice, and a
 * sender that dies mid-batch loses nothing: its rows become due again when the lease runs out (a
 * message the server had already accepted is then sent again — at least once, not exactly once).
 */
import { emailOutbox } from '@db/schema/notify.ts';
import type { Db } from '@shared/db.ts';
import { createInFlight } from '@shared/in-flight.ts';
import { claimDueRows, pruneStampedBefore } from '@shared/leased-queue.ts';
import type { Logger } from '@shared/log.ts';
import { backoffDelay } from '@shared/retry-backoff.ts';
import { createWorkerLoop, type WorkerLoop } from '@shared/worker-loop.ts';
import { and, asc, eq, inArray, isNull, lte } from 'drizzle-orm';
import { EmailSendError, type EmailTransport } from './smtp-transport.ts';

export interface EmailRound {
  sent: number;
  /** Failed attempts in this round, including rows given up. */
  failed: number;
}

/**
 * `start()` at startup, `stop()` on SIGTERM (it also waits for rounds begun by `runOnce()`, and rows
 * claimed but not yet tried are handed back at once); `wake()` after fan-out queued an email.
 */
export interface EmailSender extends Pick<WorkerLoop, 'start' | 'stop' | 'wake'> {
  /** Claims one batch, sends it and prunes old rows. */
  runOnce(): Promise<EmailRound>;
}

export interface EmailSenderDeps {
  db: Db;
  transport: EmailTransport;
  /** The `From` of every message (`SMTP_FROM`). */
  from: string;
  logger: Logger;
  intervalMs?: number;
  batchSize?: number;
  /**
   * How long claimed rows stay invisible to other senders. Must comfortably exceed the longest one
   * send can take (the transport's connection + greeting + socket timeouts); no send is begun in the
   * last fifth of the lease.
   */
  leaseMs?: number;
  /** Failed attempts after which a row is given up (`failed_at`). */
  maxAttempts?: number;
  /** First retry delay; doubles per failed attempt up to `maxBackoffMs`. */
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  /** Sent rows older than this are deleted. */
  retainSentMs?: number;
  /** Given-up rows are kept longer, for anyone investigating why mail did not arrive. */
  retainFailedMs?: number;
  now?: () => number;
  random?: () => number;
}

const DAY_MS = 86_400_000;
const LAST_ERROR_MAX = 500;

type Claimed = Pick<typeof emailOutbox.$inferSelect, 'id' | 'toAddress' | 'subject' | 'text' | 'html' | 'attempts'>;

/**
 * Builds the sender; nothing runs until `start()` or `runOnce()`. Defaults: a round every 10 s of up
 * to 20 messages, a 5-minute lease, retries after ~1, 2, 4 … minutes capped at an hour, given up
 * after 8 failed attempts (about two hours of a server refusing or being down).
 */
export function createEmailSender(deps: EmailSenderDeps): EmailSender {
  const { db, transport, from, logger } = deps;
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  const intervalMs = deps.intervalMs ?? 10_000;
  const batchSize = deps.batchSize ?? 20;
  const leaseMs = deps.leaseMs ?? 5 * 60_000;
  const maxAttempts = deps.maxAttempts ?? 8;
  const baseBackoffMs = deps.baseBackoffMs ?? 60_000;
  const maxBackoffMs = deps.maxBackoffMs ?? 60 * 60_000;
  const retainSentMs = deps.retainSentMs ?? 7 * DAY_MS;
  const retainFailedMs = deps.retainFailedMs ?? 30 * DAY_MS;

  /** Rounds started by `runOnce()`; the loop's own round is the loop's to wait for. */
  const inFlight = createInFlight();
  /** Set by `stop()`: the round in flight tries no more rows and hands the rest back. */
  let stopping = false;

  const backoffMs = (attempts: number) => backoffDelay(attempts, { baseMs: baseBackoffMs, maxMs: maxBackoffMs, random });

  async function claim(at: number, leaseUntil: Date): Promise<Claimed[]> {
    return claimDueRows(db, emailOutbox, leaseUntil, (tx) =>
      tx
        .select({ id: emailOutbox.id, toAddress: emailOutbox.toAddress, subject: emailOutbox.subject, text: emailOutbox.text, html: emailOutbox.html, attempts: emailOutbox.attempts })
        .from(emailOutbox)
        .where(and(isNull(emailOutbox.sentAt), isNull(emailOutbox.failedAt), lte(emailOutbox.nextAttemptAt, new Date(at))))
        // UUIDv7 ids break ties between rows queued in one transaction.
        .orderBy(asc(emailOutbox.nextAttemptAt), asc(emailOutbox.id))
        .limit(batchSize)
        .for('update', { skipLocked: true }),
    );
  }

  /** Hands claimed rows back without counting an attempt: due at `at`, unless someone else took them meanwhile. */
  async function release(rows: Claimed[], leaseUntil: Date, at: Date): Promise<void> {
    if (rows.length === 0) return;
    await db
      .update(emailOutbox)
      .set({ nextAttemptAt: at })
      .where(
        and(
          inArray(
            emailOutbox.id,
            rows.map((r) => r.id),
          ),
          isNull(emailOutbox.sentAt),
          eq(emailOutbox.nextAttemptAt, leaseUntil),
        ),
      );
  }

  /** Records a failed attempt; returns when the row is due again, or null when it was given up. */
  async function recordFailure(row: Claimed, err: unknown): Promise<number | null> {
    const failure = err instanceof EmailSendError ? err : undefined;
    const attempts = row.attempts + 1;
    const errorCode = failure?.code ?? (err instanceof Error ? err.name : 'Error');
    const responseCode = failure?.responseCode;
    const message = err instanceof Error ? err.message : String(err);
    const lastError = `${errorCode}${responseCode ? ` ${responseCode}` : ''}: ${message}`.slice(0, LAST_ERROR_MAX);
    const pending = and(eq(emailOutbox.id, row.id), isNull(emailOutbox.sentAt));
    // Only ids and codes go to the log: addresses, subjects and the server's reply text (which often
    // quotes the address) stay in the row.
    const fields = { emailId: row.id, attempts, errorCode, responseCode, scope: failure?.scope ?? 'message' };

    if (failure?.permanent || attempts >= maxAttempts) {
      await db.update(emailOutbox).set({ attempts, lastError, failedAt: new Date(now()) }).where(pending);
      logger.error('email given up', { ...fields, permanent: failure?.permanent ?? false });
      return null;
    }
    const retryInMs = backoffMs(attempts);
    const retryAt = now() + retryInMs;
    await db
      .update(emailOutbox)
      .set({ attempts, lastError, nextAttemptAt: new Date(retryAt) })
      .where(pending);
    logger.warn('email send failed', { ...fields, retryInMs });
    return retryAt;
  }

  async function prune(at: number): Promise<number> {
    const sent = await pruneStampedBefore(db, emailOutbox, emailOutbox.sentAt, new Date(at - retainSentMs));
    const failed = await pruneStampedBefore(db, emailOutbox, emailOutbox.failedAt, new Date(at - retainFailedMs));
    return sent + failed;
  }

  async function round(): Promise<EmailRound & { claimed: number }> {
    const claimedAt = now();
    const leaseUntil = new Date(claimedAt + leaseMs);
    const rows = await claim(claimedAt, leaseUntil);
    const result = { sent: 0, failed: 0, claimed: rows.length };
    let tried = 0;
    /** When the rows not tried this round become due again; now, unless the server is down. */
    let untriedDueAt = now();

    for (const row of rows) {
      if (stopping) break;
      // Too little lease left for a send that hangs until its timeouts: hand the rest back instead
      // of risking another sender claiming a row while this one is still sending it.
      if (now() >= claimedAt + leaseMs * 0.8) {
        logger.warn('email lease running out, rows handed back', { remaining: rows.length - tried });
        break;
      }
      tried++;
      try {
        await transport.send({ to: row.toAddress, from, subject: row.subject, text: row.text, html: row.html });
      } catch (err) {
        result.failed++;
        const retryAt = await recordFailure(row, err);
        // The server itself is unusable: the rest of the batch would fail the same way, so it waits
        // for this row's retry without spending attempts, and a down server sees one connection per retry.
        if (err instanceof EmailSendError && err.scope === 'server') {
          untriedDueAt = retryAt ?? now() + backoffMs(row.attempts + 1);
          break;
        }
        continue;
      }
      // A sender that claimed the row after an expired lease may have sent it meanwhile.
      await db
        .update(emailOutbox)
        .set({ sentAt: new Date(now()) })
        .where(and(eq(emailOutbox.id, row.id), isNull(emailOutbox.sentAt)));
      result.sent++;
    }
    await release(rows.slice(tried), leaseUntil, new Date(untriedDueAt));

    const pruned = await prune(now());
    if (pruned > 0) logger.info('email queue pruned', { pruned });
    return result;
  }

  const loop = createWorkerLoop({
    name: 'email',
    logger,
    intervalMs,
    jitter: 0.1,
    // Mail queued before a restart goes out at once rather than after the first interval.
    initialDelayMs: 0,
    random,
    round: async () => {
      const r = await round();
      // A full batch that got through suggests a backlog; a batch that did not means the server is
      // refusing or down, and the next round waits for the interval.
      return r.claimed === batchSize && r.sent > 0 ? 'again' : undefined;
    },
  });

  return {
    async runOnce() {
      const { sent, failed } = await inFlight.track(round());
      return { sent, failed };
    },
    start() {
      stopping = false;
      loop.start();
    },
    async stop() {
      stopping = true;
      try {
        await Promise.allSettled([loop.stop(), inFlight.settled()]);
      } finally {
        stopping = false;
      }
    },
    wake: () => loop.wake(),
  };
}
