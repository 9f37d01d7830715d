/**
 * The outbox relay (DESIGN §5 "Events"): delivers each row of a producer's `outbox` table at least
 * once to the consumers' `POST /internal/events`, retrying failures with capped exponential backoff.
 *
 * Replicas share the table safely without holding a transaction during HTTP: a batch is claimed with
 * a lease (`claimDueRows`, shared/leased-queue.ts), then the rows are delivered outside any transaction.
 * A relay that dies mid-batch loses nothing: its rows become claimable again when the lease runs out
 * (at the cost of a redelivery, which consumers deduplicate).
 * Delivered rows are pruned after a week so the table stays small.
 */
import { and, asc, eq, isNull, lte, sql } from 'drizzle-orm';
import type { OutboxTable } from '@db/schema/outbox.ts';
import type { Db } from './db.ts';
import { createInFlight } from './in-flight.ts';
import { claimDueRows, pruneStampedBefore } from './leased-queue.ts';
import type { Logger } from './log.ts';
import { backoffDelay } from './retry-backoff.ts';
import type { EventEnvelope } from './schemas/events.ts';
import { createWorkerLoop, errorText, type WorkerLoop } from './worker-loop.ts';

export interface OutboxRound {
  delivered: number;
  failed: number;
}

/**
 * Once started, runs rounds every `intervalMs` (at once again while full batches get through);
 * `stop()` also waits for rounds begun by `runOnce()`; `wake()` runs a round as soon as possible,
 * e.g. right after a producer committed an event.
 */
export interface OutboxRelay extends Pick<WorkerLoop, 'start' | 'stop' | 'wake'> {
  /** Claims one batch, delivers it and prunes old delivered rows. */
  runOnce(): Promise<OutboxRound>;
}

export interface OutboxRelayDeps {
  db: Db;
  table: OutboxTable;
  /** Delivers one event; throws when the consumer did not accept it. */
  deliver: (event: EventEnvelope) => Promise<void>;
  logger: Logger;
  intervalMs?: number;
  batchSize?: number;
  /** How long a claimed row stays invisible to other relays while this one delivers it. */
  leaseMs?: number;
  /** First retry delay; doubles per failed attempt up to `maxBackoffMs` (with jitter, see `backoffDelay`). */
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  /** Delivered rows older than this are deleted. */
  retainDeliveredMs?: number;
  now?: () => number;
  /** The backoff's jitter source; default `Math.random`. */
  random?: () => number;
}

const DAY_MS = 86_400_000;

/**
 * Builds a relay over one producer's outbox table. Several relays (replicas) may run against the same
 * table; `deliver` is typically `httpEventSink(...)` from `shared/event-sink.ts`.
 */
export function createOutboxRelay(deps: OutboxRelayDeps): OutboxRelay {
  const { db, table, logger } = deps;
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  const intervalMs = deps.intervalMs ?? 1_000;
  const batchSize = deps.batchSize ?? 50;
  const leaseMs = deps.leaseMs ?? 30_000;
  const baseBackoffMs = deps.baseBackoffMs ?? 1_000;
  const maxBackoffMs = deps.maxBackoffMs ?? 10 * 60_000;
  const retainDeliveredMs = deps.retainDeliveredMs ?? 7 * DAY_MS;

  /** Rounds started by `runOnce()`; the loop's own round is the loop's to wait for. */
  const inFlight = createInFlight();

  async function claim(at: number) {
    return claimDueRows(db, table, new Date(at + leaseMs), (tx) =>
      tx
        .select({ id: table.id, type: table.type, payload: table.payload, attempts: table.attempts })
        .from(table)
        .where(and(isNull(table.deliveredAt), lte(table.nextAttemptAt, new Date(at))))
        // UUIDv7 ids break ties between rows written in one transaction (same created_at).
        .orderBy(asc(table.createdAt), asc(table.id))
        .limit(batchSize)
        .for('update', { skipLocked: true }),
    );
  }

  async function round(): Promise<OutboxRound & { claimed: number }> {
    const claimedAt = now();
    const rows = await claim(claimedAt);
    const result = { delivered: 0, failed: 0, claimed: rows.length };
    for (const row of rows) {
      // Past the lease another relay may already hold the row; leave it to whoever claims it next.
      if (now() >= claimedAt + leaseMs) {
        logger.warn('outbox lease ran out before delivery', { eventId: row.id, remaining: rows.length - result.delivered - result.failed });
        break;
      }
      try {
        await deps.deliver(row.payload as EventEnvelope);
      } catch (err) {
        const attempts = row.attempts + 1;
        const retryInMs = backoffDelay(attempts, { baseMs: baseBackoffMs, maxMs: maxBackoffMs, random });
        await db
          .update(table)
          .set({ attempts: sql`${table.attempts} + 1`, nextAttemptAt: new Date(now() + retryInMs) })
          // A relay that took over after the lease may have delivered it meanwhile.
          .where(and(eq(table.id, row.id), isNull(table.deliveredAt)));
        // The payload stays out of the log: events can carry user data.
        logger.warn('outbox delivery failed', { eventId: row.id, type: row.type, attempts, retryInMs, error: errorText(err) });
        result.failed += 1;
        continue;
      }
      await db.update(table).set({ deliveredAt: new Date(now()) }).where(eq(table.id, row.id));
      result.delivered += 1;
    }
    const pruned = await pruneStampedBefore(db, table, table.deliveredAt, new Date(now() - retainDeliveredMs));
    if (pruned > 0) logger.info('outbox pruned delivered events', { pruned });
    return result;
  }

  async function runOnce(): Promise<OutboxRound> {
    const { delivered, failed } = await inFlight.track(round());
    return { delivered, failed };
  }

  const loop = createWorkerLoop({
    name: 'outbox',
    logger,
    intervalMs,
    // Rows left from before a restart go out at once rather than after the first interval.
    initialDelayMs: 0,
    round: async () => {
      const r = await round();
      // A full batch suggests a backlog; but when nothing got through, the consumer is likely down,
      // so the next round waits for the interval rather than failing the backlog row by row.
      return r.claimed === batchSize && r.delivered > 0 ? 'again' : undefined;
    },
  });

  return {
    runOnce,
    start: () => loop.start(),
    async stop() {
      await Promise.allSettled([loop.stop(), inFlight.settled()]);
    },
    wake: () => loop.wake(),
  };
}
