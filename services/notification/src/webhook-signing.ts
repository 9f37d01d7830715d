/**
 * Standard Webhooks signatures (standardwebhooks.com): a delivery carries `webhook-id` (stable across
 * retries, for the receiver to deduplicate), `webhook-timestamp` (unix seconds of this attempt) and
 * `webhook-signature` = `v1,<base64 HMAC-SHA256 over "{id}.{timestamp}.{body}">`, keyed with the
 * endpoint's secret `whsec_<base64>` (the key is the decoded base64 part). Receivers can check what
 * we send with any Standard Webhooks library, or with `verifyWebhook` below.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const SECRET_PREFIX = 'whsec_';
/** The spec asks for 24 to 64 random bytes. */
const SECRET_BYTES = 32;
/** The spec's default window against replayed deliveries. */
export const DEFAULT_TOLERANCE_SECONDS = 5 * 60;

/** A new endpoint secret: `whsec_` and the base64 of 32 random bytes. */
export function newWebhookSecret(): string {
  return SECRET_PREFIX + randomBytes(SECRET_BYTES).toString('base64');
}

/** The additional data a webhook's sealed secret is bound to, so it cannot be copied onto another endpoint's row. */
export function webhookSecretAad(webhookId: string): string {
  return `notify.webhooks:${webhookId}`;
}

function secretKey(secret: string): Buffer {
  if (!secret.startsWith(SECRET_PREFIX)) throw new Error('a webhook secret starts with whsec_');
  const encoded = secret.slice(SECRET_PREFIX.length);
  const key = Buffer.from(encoded, 'base64');
  // Buffer.from skips bad characters silently; a round trip catches a mangled secret.
  if (key.length === 0 || key.toString('base64').replace(/=+$/, '') !== encoded.replace(/=+$/, '')) {
    throw new Error('a webhook secret is whsec_ followed by base64');
  }
  return key;
}

function mac(key: Buffer, id: string, timestampSeconds: number | string, body: string | Uint8Array): Buffer {
  const hmac = createHmac('sha256', key);
  hmac.update(`${id}.${timestampSeconds}.`);
  hmac.update(body);
  return hmac.digest();
}

/** The `webhook-signature` header value for one delivery attempt: `v1,<base64>`. `body` must be the exact bytes sent. */
export function signWebhook(secret: string, id: string, timestampSeconds: number, body: string | Uint8Array): string {
  return `v1,${mac(secretKey(secret), id, timestampSeconds, body).toString('base64')}`;
}

export interface VerifyOptions {
  /** How far `webhook-timestamp` may be from `now`, either way; default 5 minutes. */
  toleranceSeconds?: number;
  /** The receiver's clock in milliseconds since the epoch; default `Date.now()`. */
  now?: number;
}

type HeaderSource = Headers | Record<string, string | undefined>;

function header(headers: HeaderSource, name: string): string | undefined {
  if (headers instanceof Headers) return headers.get(name) ?? undefined;
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
  return key === undefined ? undefined : headers[key];
}

/**
 * What a receiver does with a delivery: true when the headers carry a `v1` signature of `body` (the
 * raw bytes received, before any JSON parsing) under `secret` and the timestamp is within tolerance.
 * The header may list several space-separated signatures (secret rotation); one match suffices. The
 * comparison is constant-time.
 */
export function verifyWebhook(secret: string, headers: HeaderSource, body: string | Uint8Array, options: VerifyOptions = {}): boolean {
  const id = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (!id || !timestamp || !signatures || !/^\d{1,12}$/.test(timestamp)) return false;
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  const nowSeconds = Math.floor((options.now ?? Date.now()) / 1000);
  if (Math.abs(nowSeconds - Number(timestamp)) > tolerance) return false;

  let key: Buffer;
  try {
    key = secretKey(secret);
  } catch {
    return false;
  }
  const expected = mac(key, id, timestamp, body);
  let matched = false;
  for (const entry of signatures.split(' ')) {
    const [version, value] = entry.split(',', 2);
    if (version !== 'v1' || !value) continue;
    const given = Buffer.from(value, 'base64');
    // Every entry is checked (no early exit), so timing says nothing about which one matched.
    if (given.length === expected.length && timingSafeEqual(given, expected)) matched = true;
  }
  return matched;
}
