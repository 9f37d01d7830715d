/**
 * Credential expiry notices: a loop that finds vault credentials whose token expires within the
 * notice window (or already has) and announces each expiry once as a `credential.expiring` event,
 * which notification turns into an in-app message and an email. Marking the credential and writing
 * the outbox row happen in one transaction, so a notice is neither lost nor sent twice; storing a new
 * token (a new expiry) makes the credential due again.
 */
import type { Db } from '@shared/db.ts';
import type { Logger } from '@shared/log.ts';
import { outboxRow } from '@shared/outbox.ts';
import { createWorkerLoop, type LoopControl } from '@shared/worker-loop.ts';
import { accounts, credentials, outbox } from '@db/schema/users.ts';
import { and, asc, eq, inArray, isNotNull, isNull, lte, ne, or } from 'drizzle-orm';

export const CREDENTIAL_EXPIRING = 'credential.expiring';

export interface CredentialExpiryRound {
  /** Events written this round, one per credential. */
  notified: number;
}

/** Once started, runs a round every `intervalMs` until `stop()`; a failed round is logged, not fatal. */
export interface CredentialExpiryNotifier extends LoopControl {
  runOnce(): Promise<CredentialExpiryRound>;
}

export interface CredentialExpiryDeps {
  db: Db;
  logger: Logger;
  /** How long before its expiry a credential is announced. */
  noticeMs: number;
  intervalMs: number;
  /** Credentials handled per transaction. */
  batchSize?: number;
  /** Called after a round committed events, e.g. to wake the outbox relay. */
  onNotified?: () => void;
  now?: () => number;
}

/** Builds the notifier; nothing runs until `start()` (or `runOnce()`). */
export function createCredentialExpiryNotifier(deps: CredentialExpiryDeps): CredentialExpiryNotifier {
  const now = deps.now ?? Date.now;
  const batchSize = deps.batchSize ?? 200;

  /** Claims, marks and announces one batch; returns how many it announced. */
  async function batch(at: number): Promise<number> {
    return deps.db.transaction(async (tx) => {
      const due = await tx
        .select({
          id: credentials.id,
          userId: credentials.userId,
          serviceId: credentials.serviceId,
          type: credentials.type,
          label: credentials.label,
          expiresAt: credentials.expiresAt,
        })
        .from(credentials)
        .where(
          and(
            isNotNull(credentials.expiresAt),
            lte(credentials.expiresAt, new Date(at + deps.noticeMs)),
            or(isNull(credentials.expiryNotifiedFor), ne(credentials.expiryNotifiedFor, credentials.expiresAt)),
            // A deactivated account gets no mail; it is still unmarked, so it is told if reactivated in time.
            inArray(credentials.userId, tx.select({ id: accounts.id }).from(accounts).where(eq(accounts.isActive, true))),
          ),
        )
        .orderBy(asc(credentials.expiresAt))
        .limit(batchSize)
        // Replicas running the same round skip each other's rows instead of announcing them twice.
        .for('update', { skipLocked: true });
      if (due.length === 0) return 0;
      await tx
        .update(credentials)
        .set({ expiryNotifiedFor: credentials.expiresAt })
        .where(
          inArray(
            credentials.id,
            due.map((c) => c.id),
          ),
        );
      await tx.insert(outbox).values(
        due.map((c) =>
          outboxRow({
            type: CREDENTIAL_EXPIRING,
            source: 'user-service',
            userId: c.userId,
            occurredAt: new Date(at),
            data: {
              // The registry slug the vault keys credentials by.
              serviceId: c.serviceId,
              credentialType: c.type,
              label: c.label,
              expiresAt: c.expiresAt!.toISOString(),
              expired: c.expiresAt!.getTime() <= at,
            },
          }),
        ),
      );
      return due.length;
    });
  }

  async function runOnce(): Promise<CredentialExpiryRound> {
    const at = now();
    let notified = 0;
    for (;;) {
      const n = await batch(at);
      notified += n;
      if (n < batchSize) break;
    }
    if (notified > 0) {
      deps.logger.info('credential expiry notices written', { notified });
      deps.onNotified?.();
    }
    return { notified };
  }

  const loop = createWorkerLoop({
    name: 'credential-expiry',
    logger: deps.logger,
    intervalMs: deps.intervalMs,
    jitter: 0.1,
    // Soon after startup, so a notice due while the service was down is not held back a whole interval.
    initialDelayMs: Math.min(deps.intervalMs, 60_000),
    round: async () => {
      await runOnce();
    },
  });

  return { runOnce, start: () => loop.start(), stop: () => loop.stop() };
}
