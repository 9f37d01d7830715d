/**
 * Delivers queued webhook deliveries (rows fan-out and the test endpoint write to
 * `notify.webhook_deliveries`) to users' endpoints, signed per Standard Webhooks.
 *
 * Claiming follows the outbox relay (`claimDueRows`, shared/leased-queue.ts): a short transaction takes
 * due rows of active endpoints with `FOR UPDATE SKIP LOCKED` and pushes their `next_attempt_at` forward
 * by a lease, then the HTTP calls
 * run outside it (in parallel, each bounded by `timeoutMs`, so one slow receiver does not hold up the
 * others). A sender that dies mid-batch loses nothing: the rows come due again when the lease ends.
 *
 * Outcomes:
 * - a 2xx answer: the delivery succeeded and the endpoint's `consecutive_failures` goes back to 0;
 * - anything else (3xx — redirects are never followed —, 4xx, 5xx, timeout, network error, a target the
 *   outbound policy refuses): `attempts` + 1, status/time/error recorded, retried after a backoff
 *   (×4 per attempt from `baseBackoffMs`, capped, with jitter) until `maxAttempts`, then `failed`.
 * - `consecutive_failures` counts failed DELIVERIES (given up after all attempts), not attempts: a
 *   burst of events during a short outage is retried, not a reason to disable. When it reaches
 *   `disableAfterFailures` the endpoint is switched off (`active=false`, `disabled_at`,
 *   `disabled_reason`). Its still-pending deliveries stay pending and are not claimed while it is off;
 *   they go out again once the owner re-activates it (which also resets the count).
 */
import { webhookDeliveries, webhooks } from '@db/schema/notify.ts';
import type { Db } from '@shared/db.ts';
import { createInFlight } from '@shared/in-flight.ts';
import { claimDueRows } from '@shared/leased-queue.ts';
import type { Logger } from '@shared/log.ts';
import type { OutboundPolicy } from '@shared/outbound.ts';
import { backoffDelay } from '@shared/retry-backoff.ts';
import type { SecretBox } from '@shared/secret-box.ts';
import { createWorkerLoop, errorText } from '@shared/worker-loop.ts';
import { and, asc, eq, gt, inArray, lte, sql } from 'drizzle-orm';
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { signWebhook, webhookSecretAad } from './webhook-signing.ts';

export type WebhookRow = typeof webhooks.$inferSelect;
export type WebhookDeliveryRow = typeof webhookDeliveries.$inferSelect;

export const MAX_WEBHOOK_URL_LENGTH = 2000;

// ---------------------------------------------------------------------------------------------
// Where a webhook may point

/** What decides whether a user's URL may be called; checked at registration and before every attempt. */
export interface WebhookTargetPolicy {
  /** The platform's outbound switch (shared/outbound.ts): with external calls off only loopback URLs pass. */
  outbound: Pick<OutboundPolicy, 'externalCalls' | 'allows'>;
  /**
   * With external calls on, targets resolving to private, loopback, link-local or otherwise
   * non-public addresses are refused (users must not reach the platform's own network through us)
   * unless this is set, for installations whose receivers live on the internal network.
   */
  allowPrivateTargets?: boolean;
  /** Every address a host name resolves to; defaults to the system resolver. */
  lookup?: (hostname: string) => Promise<string[]>;
}

/** Why `url` is not an acceptable webhook URL by its form alone, or null. */
export function webhookUrlProblem(url: string): string | null {
  if (url.length > MAX_WEBHOOK_URL_LENGTH) return `must be at most ${MAX_WEBHOOK_URL_LENGTH} characters`;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'must be an absolute URL';
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return 'must be an http or https URL';
  if (parsed.username || parsed.password) return 'must not contain credentials';
  if (!parsed.hostname) return 'must name a host';
  return null;
}

const systemLookup = async (hostname: string) => (await dnsLookup(hostname, { all: true, verbatim: true })).map((a) => a.address);

/** Why a delivery to `url` is refused under `policy` (a sentence for the user), or null when it may go out. */
export async function webhookTargetRefusal(url: string, policy: WebhookTargetPolicy): Promise<string | null> {
  const problem = webhookUrlProblem(url);
  if (problem) return `The URL ${problem}.`;
  if (!policy.outbound.allows(url)) return 'External calls are switched off on this installation: only loopback URLs can be called.';
  // With external calls off only loopback names pass `allows`: the operator chose a local-only setup.
  if (!policy.outbound.externalCalls || policy.allowPrivateTargets) return null;
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  let addresses: string[];
  try {
    addresses = isIP(host) ? [host] : await (policy.lookup ?? systemLookup)(host);
  } catch {
    return `The host ${host} does not resolve.`;
  }
  if (addresses.length === 0) return `The host ${host} does not resolve.`;
  const blocked = addresses.find(isNonPublicAddress);
  if (blocked) return `The host ${host} resolves to ${blocked}, a private, loopback or otherwise non-public address.`;
  return null;
}

function ipv4Number(address: string): number | null {
  const parts = address.split('.');
  if (parts.length !== 4) return null;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) return null;
    value = value * 256 + Number(part);
  }
  return value;
}

const v4 = (cidr: string): [number, number] => {
  const [base, bits] = cidr.split('/');
  return [ipv4Number(base!)!, Number(bits)];
};
/** IPv4 ranges that are not the public internet (RFC 6890 special-purpose registry, multicast, reserved). */
const NON_PUBLIC_V4 = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.0.2.0/24',
  '192.88.99.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4',
  '240.0.0.0/4',
].map(v4);

function nonPublicV4(value: number): boolean {
  return NON_PUBLIC_V4.some(([base, bits]) => Math.floor(value / 2 ** (32 - bits)) === Math.floor(base / 2 ** (32 - bits)));
}

/** The eight 16-bit groups of an IPv6 address (zone id dropped), or null. */
function ipv6Groups(address: string): number[] | null {
  let text = address.split('%')[0]!.toLowerCase();
  const lastColon = text.lastIndexOf(':');
  // A trailing dotted IPv4 part (::ffff:1.2.3.4) becomes its two hex groups.
  if (text.slice(lastColon + 1).includes('.')) {
    const embedded = ipv4Number(text.slice(lastColon + 1));
    if (embedded === null) return null;
    text = `${text.slice(0, lastColon + 1)}${Math.floor(embedded / 65536).toString(16)}:${(embedded % 65536).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const parse = (s: string) => (s === '' ? [] : s.split(':').map((g) => (/^[0-9a-f]{1,4}$/.test(g) ? parseInt(g, 16) : Number.NaN)));
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  const known = head.length + tail.length;
  if (halves.length === 1 ? known !== 8 : known > 7) return null;
  const groups = [...head, ...Array<number>(8 - known).fill(0), ...tail];
  return groups.some(Number.isNaN) ? null : groups;
}

/**
 * True unless `address` is a public unicast address. IPv6 is allowed only in global unicast
 * (2000::/3) minus documentation, Teredo and 6to4; IPv4-mapped and NAT64 addresses are judged by
 * the IPv4 address inside. Anything unparsable counts as non-public.
 */
export function isNonPublicAddress(address: string): boolean {
  if (isIP(address) === 4) return nonPublicV4(ipv4Number(address)!);
  const g = ipv6Groups(address);
  if (!g) return true;
  const embeddedV4 = g[6]! * 65536 + g[7]!;
  // ::ffff:a.b.c.d (IPv4-mapped) and 64:ff9b::a.b.c.d (well-known NAT64 prefix).
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return nonPublicV4(embeddedV4);
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return nonPublicV4(embeddedV4);
  if ((g[0]! & 0xe000) !== 0x2000) return true;
  if (g[0] === 0x2001 && (g[1] === 0x0db8 || g[1] === 0)) return true;
  if (g[0] === 0x2002) return true;
  return false;
}

// ---------------------------------------------------------------------------------------------
// The sender

export interface WebhookSenderDeps extends WebhookTargetPolicy {
  db: Db;
  /** Opens endpoints' sealed secrets (bound to the webhook id, see `webhookSecretAad`). */
  box: SecretBox;
  logger: Logger;
  /** Per attempt, answer included; default 10 s. */
  timeoutMs?: number;
  /** At most this much of an answer is read, then the body is cancelled; default 64 KiB. */
  maxResponseBytes?: number;
  /** Attempts per delivery before it is marked failed; default 8. */
  maxAttempts?: number;
  /** Consecutive failed deliveries after which an endpoint is disabled; default 10. */
  disableAfterFailures?: number;
  /** First retry delay, ×4 per further attempt up to `maxBackoffMs`; defaults 10 s and 6 h. */
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  intervalMs?: number;
  batchSize?: number;
  /** How long claimed rows stay invisible to other senders; must exceed `timeoutMs`. Default 2×timeout + 30 s. */
  leaseMs?: number;
  userAgent?: string;
  now?: () => number;
  random?: () => number;
  fetch?: typeof fetch;
}

export interface WebhookRound {
  claimed: number;
  succeeded: number;
  /** Attempts that failed (retried later or given up). */
  failed: number;
}

export interface WebhookSender {
  /** Claims one batch of due deliveries and attempts each. */
  runOnce(): Promise<WebhookRound>;
  start(): void;
  /** Stops the loop and waits for every attempt in flight (loop rounds, `runOnce`, `deliverNow`). */
  stop(): Promise<void>;
  /** Runs a round soon, e.g. after fan-out queued deliveries. */
  wake(): void;
  /**
   * Attempts one delivery at once if it is due, pending and its endpoint active; returns the row
   * after the attempt, or null when it was not claimable (another sender holds it, or it is done).
   */
  deliverNow(deliveryId: string): Promise<WebhookDeliveryRow | null>;
}

interface Claimed {
  id: string;
  webhookId: string;
  eventType: string;
  payload: unknown;
  attempts: number;
  url: string;
  secretSealed: string;
}

interface Outcome {
  ok: boolean;
  status: number | null;
  ms: number | null;
  error: string | null;
}

const SNIPPET_BYTES = 300;
const MAX_ERROR_LENGTH = 500;

/** Standard Webhooks orders the body `{type, timestamp, data}`; jsonb does not keep key order, so it is restored here. */
function bodyOf(payload: unknown): string {
  if (payload && typeof payload === 'object' && !Array.isArray(payload)) {
    const { type, timestamp, data, ...rest } = payload as Record<string, unknown>;
    return JSON.stringify({ type, timestamp, data, ...rest });
  }
  return JSON.stringify(payload);
}

/** Reads at most `cap` bytes of `res`'s body, keeping only a short prefix, then cancels the rest. Never throws. */
async function readCapped(res: Response, cap: number): Promise<string> {
  const reader = res.body?.getReader();
  if (!reader) return '';
  const kept: Uint8Array[] = [];
  let keptBytes = 0;
  let total = 0;
  try {
    while (total < cap) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (keptBytes < SNIPPET_BYTES) {
        const part = value.slice(0, SNIPPET_BYTES - keptBytes);
        kept.push(part);
        keptBytes += part.byteLength;
      }
    }
  } catch {
    // A body that breaks off (or our timeout) after the status arrived: the status is the answer.
  } finally {
    reader.cancel().catch(() => {});
  }
  return Buffer.concat(kept).toString('utf8').replace(/\s+/g, ' ').trim();
}

const clip = (s: string) => (s.length > MAX_ERROR_LENGTH ? s.slice(0, MAX_ERROR_LENGTH - 1) + '…' : s);

/**
 * Builds the webhook sender. Several senders (replicas) may share the table. `start()` at service
 * start, `stop()` on SIGTERM, `wake()` after fan-out committed deliveries, `deliverNow` for the test
 * endpoint's quick answer.
 */
export function createWebhookSender(deps: WebhookSenderDeps): WebhookSender {
  const { db, box, logger } = deps;
  const now = deps.now ?? Date.now;
  const random = deps.random ?? Math.random;
  const doFetch = deps.fetch ?? fetch;
  const timeoutMs = deps.timeoutMs ?? 10_000;
  const maxResponseBytes = deps.maxResponseBytes ?? 64 * 1024;
  const maxAttempts = deps.maxAttempts ?? 8;
  const disableAfterFailures = deps.disableAfterFailures ?? 10;
  const baseBackoffMs = deps.baseBackoffMs ?? 10_000;
  const maxBackoffMs = deps.maxBackoffMs ?? 6 * 3_600_000;
  const intervalMs = deps.intervalMs ?? 5_000;
  const batchSize = deps.batchSize ?? 20;
  const leaseMs = deps.leaseMs ?? 2 * timeoutMs + 30_000;
  const userAgent = deps.userAgent ?? 'federated-imputation-webhooks/1';
  if (leaseMs <= timeoutMs) throw new Error('createWebhookSender: leaseMs must exceed timeoutMs');

  const inFlight = createInFlight();

  async function claim(at: number, only?: string): Promise<Claimed[]> {
    return claimDueRows(db, webhookDeliveries, new Date(at + leaseMs), async (tx) => {
      // No join in the locking query: `FOR UPDATE OF` wants an unqualified name, which a schema-qualified
      // table does not give; the endpoint condition is a semi-join instead.
      const rows = await tx
        .select({
          id: webhookDeliveries.id,
          webhookId: webhookDeliveries.webhookId,
          eventType: webhookDeliveries.eventType,
          payload: webhookDeliveries.payload,
          attempts: webhookDeliveries.attempts,
        })
        .from(webhookDeliveries)
        .where(
          and(
            eq(webhookDeliveries.state, 'pending'),
            lte(webhookDeliveries.nextAttemptAt, new Date(at)),
            only ? eq(webhookDeliveries.id, only) : undefined,
            // A disabled endpoint's deliveries wait, untouched, for it to be re-activated.
            inArray(webhookDeliveries.webhookId, tx.select({ id: webhooks.id }).from(webhooks).where(eq(webhooks.active, true))),
          ),
        )
        .orderBy(asc(webhookDeliveries.nextAttemptAt), asc(webhookDeliveries.id))
        .limit(only ? 1 : batchSize)
        .for('update', { skipLocked: true });
      if (rows.length === 0) return [];
      // A row whose endpoint was deleted meanwhile is left out (and so not leased): the delete cascades to it.
      const endpoints = await tx
        .select({ id: webhooks.id, url: webhooks.url, secretSealed: webhooks.secretSealed })
        .from(webhooks)
        .where(inArray(webhooks.id, [...new Set(rows.map((r) => r.webhookId))]));
      const byId = new Map(endpoints.map((e) => [e.id, e]));
      return rows.flatMap((r) => {
        const endpoint = byId.get(r.webhookId);
        return endpoint ? [{ ...r, url: endpoint.url, secretSealed: endpoint.secretSealed }] : [];
      });
    });
  }

  async function attempt(d: Claimed): Promise<Outcome> {
    const refusal = await webhookTargetRefusal(d.url, deps);
    if (refusal) return { ok: false, status: null, ms: null, error: `Not sent: ${refusal}` };
    let secret: string;
    try {
      secret = await box.open(d.secretSealed, webhookSecretAad(d.webhookId));
    } catch (err) {
      logger.error('webhook secret cannot be opened', { webhookId: d.webhookId, error: errorText(err) });
      return { ok: false, status: null, ms: null, error: 'Not sent: the endpoint’s signing secret cannot be opened on this installation.' };
    }
    const body = bodyOf(d.payload);
    // A fresh timestamp (and so signature) per attempt; the id stays, so receivers can deduplicate.
    const timestamp = Math.floor(now() / 1000);
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    const started = performance.now();
    try {
      const res = await doFetch(d.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': userAgent,
          'webhook-id': d.id,
          'webhook-timestamp': String(timestamp),
          'webhook-signature': signWebhook(secret, d.id, timestamp, body),
        },
        body,
        redirect: 'manual',
        signal: controller.signal,
      });
      const snippet = await readCapped(res, maxResponseBytes);
      const ms = Math.round(performance.now() - started);
      if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status, ms, error: null };
      if (res.status >= 300 && res.status < 400) {
        const location = res.headers.get('location');
        return { ok: false, status: res.status, ms, error: clip(`HTTP ${res.status}: redirects are not followed${location ? ` (to ${location})` : ''}; register the final URL.`) };
      }
      return { ok: false, status: res.status, ms, error: clip(`HTTP ${res.status}${snippet ? `: ${snippet}` : ''}`) };
    } catch (err) {
      const ms = Math.round(performance.now() - started);
      if (controller.signal.aborted) return { ok: false, status: null, ms, error: `No answer within ${timeoutMs} ms.` };
      return { ok: false, status: null, ms, error: clip(`Request failed: ${errorText(err)}`) };
    } finally {
      clearTimeout(timer);
    }
  }

  async function record(d: Claimed, outcome: Outcome): Promise<void> {
    const at = new Date(now());
    const pending = and(eq(webhookDeliveries.id, d.id), eq(webhookDeliveries.state, 'pending'));
    const common = { attempts: sql`${webhookDeliveries.attempts} + 1`, responseStatus: outcome.status, responseMs: outcome.ms, lastError: outcome.error };
    if (outcome.ok) {
      // Two single statements, no transaction: holding the delivery's lock while taking the
      // endpoint's could deadlock with a DELETE of the endpoint (which locks them the other way round).
      const done = await db
        .update(webhookDeliveries)
        .set({ ...common, state: 'succeeded', deliveredAt: at })
        .where(pending)
        .returning({ id: webhookDeliveries.id });
      if (done.length > 0) {
        await db
          .update(webhooks)
          .set({ consecutiveFailures: 0 })
          .where(and(eq(webhooks.id, d.webhookId), gt(webhooks.consecutiveFailures, 0)));
      }
      return;
    }
    const attempts = d.attempts + 1;
    if (attempts < maxAttempts) {
      const retryInMs = backoffDelay(attempts, { baseMs: baseBackoffMs, maxMs: maxBackoffMs, factor: 4, random });
      await db
        .update(webhookDeliveries)
        .set({ ...common, nextAttemptAt: new Date(at.getTime() + retryInMs) })
        .where(pending);
      logger.info('webhook attempt failed', { deliveryId: d.id, webhookId: d.webhookId, attempts, retryInMs, status: outcome.status, error: outcome.error });
      return;
    }
    await db.transaction(async (tx) => {
      // The endpoint first, then the delivery: the order a cascading DELETE of the endpoint locks them in.
      const [locked] = await tx.select({ id: webhooks.id }).from(webhooks).where(eq(webhooks.id, d.webhookId)).for('update');
      if (!locked) return;
      const given = await tx.update(webhookDeliveries).set({ ...common, state: 'failed' }).where(pending).returning({ id: webhookDeliveries.id });
      if (given.length === 0) return;
      const [endpoint] = await tx
        .update(webhooks)
        .set({ consecutiveFailures: sql`${webhooks.consecutiveFailures} + 1` })
        .where(eq(webhooks.id, d.webhookId))
        .returning({ failures: webhooks.consecutiveFailures, active: webhooks.active });
      logger.warn('webhook delivery failed', { deliveryId: d.id, webhookId: d.webhookId, attempts, status: outcome.status, error: outcome.error });
      if (!endpoint || !endpoint.active || endpoint.failures < disableAfterFailures) return;
      const reason = clip(
        `Disabled automatically after ${endpoint.failures} consecutive failed deliveries (each tried ${maxAttempts} times). Last error: ${outcome.error ?? 'unknown'}`,
      );
      await tx
        .update(webhooks)
        .set({ active: false, disabledAt: at, disabledReason: reason, updatedAt: at })
        .where(and(eq(webhooks.id, d.webhookId), eq(webhooks.active, true)));
      logger.warn('webhook endpoint disabled', { webhookId: d.webhookId, failures: endpoint.failures });
    });
  }

  async function send(d: Claimed): Promise<boolean> {
    const outcome = await attempt(d);
    await record(d, outcome);
    return outcome.ok;
  }

  async function round(): Promise<WebhookRound> {
    const rows = await claim(now());
    const results = await Promise.allSettled(rows.map(send));
    const result: WebhookRound = { claimed: rows.length, succeeded: 0, failed: 0 };
    for (const [i, r] of results.entries()) {
      if (r.status === 'fulfilled') {
        if (r.value) result.succeeded += 1;
        else result.failed += 1;
      } else {
        // Recording failed (database trouble): the lease runs out and the row is tried again.
        result.failed += 1;
        logger.error('webhook delivery could not be recorded', { deliveryId: rows[i]!.id, error: errorText(r.reason) });
      }
    }
    return result;
  }

  const loop = createWorkerLoop({
    name: 'webhooks',
    logger,
    intervalMs,
    jitter: 0.1,
    initialDelayMs: 0,
    round: async () => {
      const r = await round();
      // A full batch that got something through suggests a backlog: go again at once.
      return r.claimed === batchSize && r.succeeded > 0 ? 'again' : undefined;
    },
  });

  return {
    runOnce: () => inFlight.track(round()),
    start: () => loop.start(),
    async stop() {
      await Promise.allSettled([loop.stop(), inFlight.settled()]);
    },
    wake: () => loop.wake(),
    deliverNow: (deliveryId) =>
      inFlight.track(
        (async () => {
          const [row] = await claim(now(), deliveryId);
          if (!row) return null;
          await send(row);
          const [after] = await db.select().from(webhookDeliveries).where(eq(webhookDeliveries.id, deliveryId));
          return after ?? null;
        })(),
      ),
  };
}
