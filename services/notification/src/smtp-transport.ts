/**
 * Sending one email over SMTP with nodemailer, and the SMTP settings notification reads from its
 * environment. The send queue (email-sender.ts) only sees the `EmailTransport` interface, so a test
 * or another provider can stand in for SMTP.
 */
import { z } from '@hono/zod-openapi';
import { ConfigError } from '@shared/config.ts';
import { createTransport } from 'nodemailer';

export interface OutgoingEmail {
  to: string;
  from: string;
  subject: string;
  text: string;
  html: string;
}

/** Hands one message to a mail server. Throws `EmailSendError` (or anything else, read as a temporary failure). */
export interface EmailTransport {
  send(message: OutgoingEmail): Promise<{ messageId: string }>;
  /** Releases connections, if the transport keeps any. */
  close?(): void;
}

/**
 * Why a send failed, as far as the queue needs to know:
 * - `server`: the mail server could not be used at all (unreachable, timed out, TLS or login failed);
 *   nothing is wrong with this message, so the rest of the batch waits too.
 * - `message`: the server answered and refused this message; `permanent` when retrying the same
 *   message would be refused again (an SMTP 5xx reply such as an unknown mailbox).
 */
export class EmailSendError extends Error {
  override readonly name = 'EmailSendError';
  constructor(
    message: string,
    readonly scope: 'server' | 'message',
    readonly permanent: boolean,
    /** nodemailer's error code (`ECONNECTION`, `EENVELOPE`, …). */
    readonly code: string | undefined,
    /** The SMTP reply code, when the server answered. */
    readonly responseCode: number | undefined,
  ) {
    super(message);
  }
}

export interface SmtpConfig {
  host: string;
  /** Defaults to 465 with `secure`, 587 otherwise. */
  port?: number;
  /** Implicit TLS from the first byte (usually port 465). */
  secure?: boolean;
  /** Refuse to send unless the server upgrades the connection with STARTTLS. Without it, STARTTLS is still used when offered. */
  requireStartTls?: boolean;
  auth?: { user: string; password: string };
  connectionTimeoutMs?: number;
  greetingTimeoutMs?: number;
  socketTimeoutMs?: number;
}

/** The codes of the replies to MAIL FROM/RCPT TO and DATA: the server judged this message. */
const MESSAGE_CODES = new Set(['EENVELOPE', 'EMESSAGE']);

interface NodemailerErrorLike {
  message?: string;
  code?: string;
  responseCode?: number;
  permanent?: boolean;
}

function classify(err: unknown): EmailSendError {
  const e = (typeof err === 'object' && err !== null ? err : {}) as NodemailerErrorLike;
  const message = typeof e.message === 'string' ? e.message : String(err);
  // 421 is the server closing the session ("service not available"), whatever command it answered.
  const scope = e.code !== undefined && MESSAGE_CODES.has(e.code) && e.responseCode !== 421 ? 'message' : 'server';
  return new EmailSendError(message, scope, scope === 'message' && e.permanent === true, e.code, e.responseCode);
}

/**
 * An `EmailTransport` over SMTP. One connection per message (no pool): the queue sends a handful of
 * messages per round, and a fresh connection never trips over one the server dropped while idle.
 * nodemailer's own timeouts bound every send, which the sender's claim lease relies on.
 */
export function smtpTransport(config: SmtpConfig): EmailTransport {
  const mailer = createTransport({
    host: config.host,
    port: config.port,
    secure: config.secure ?? false,
    requireTLS: config.requireStartTls ?? false,
    auth: config.auth ? { user: config.auth.user, pass: config.auth.password } : undefined,
    connectionTimeout: config.connectionTimeoutMs ?? 10_000,
    greetingTimeout: config.greetingTimeoutMs ?? 10_000,
    socketTimeout: config.socketTimeoutMs ?? 60_000,
    // Messages are built from our templates only; nothing should ever make nodemailer read a file or fetch a URL.
    disableFileAccess: true,
    disableUrlAccess: true,
  });
  return {
    async send(message) {
      try {
        const info = await mailer.sendMail({
          ...message,
          // RFC 3834: an automatic message, so mail servers and people's auto-responders do not answer it.
          headers: { 'Auto-Submitted': 'auto-generated' },
        });
        return { messageId: info.messageId };
      } catch (err) {
        throw classify(err);
      }
    },
    close: () => mailer.close(),
  };
}

const ms = (fallback: number) => z.coerce.number().int().min(100).max(600_000).default(fallback);
/** A bare address or `Name <address>`. */
const MAILBOX = /^(?:[^<>]*<[^\s<>@]+@[^\s<>@]+>|[^\s<>@]+@[^\s<>@]+)$/;

/**
 * notification's SMTP variables, to spread into its env schema (like `externalCallsEnv`). Either
 * `SMTP_URL` (`smtp://` or `smtps://`, optionally `user:password@`) or `SMTP_HOST` and friends.
 * With neither, no email is sent (see `transportFromEnv`).
 */
export const smtpEnv = {
  SMTP_URL: z
    .string()
    .regex(/^smtps?:\/\/[^/]/, 'must be an smtp:// or smtps:// URL')
    .optional(),
  SMTP_HOST: z.string().min(1).optional(),
  SMTP_PORT: z.coerce.number().int().min(1).max(65_535).optional(),
  /** Implicit TLS (port 465). */
  SMTP_SECURE: z.stringbool().default(false),
  /** Require STARTTLS; without it STARTTLS is still used when the server offers it. */
  SMTP_STARTTLS: z.stringbool().default(false),
  SMTP_USER: z.string().optional(),
  SMTP_PASSWORD: z.string().optional(),
  /** The sender, e.g. `Imputation Platform <noreply@example.org>`; required once SMTP is configured. */
  SMTP_FROM: z.string().regex(MAILBOX, 'must be an address or "Name <address>"').optional(),
  SMTP_CONNECTION_TIMEOUT_MS: ms(10_000),
  SMTP_GREETING_TIMEOUT_MS: ms(10_000),
  SMTP_SOCKET_TIMEOUT_MS: ms(60_000),
};

const smtpEnvSchema = z.object(smtpEnv);
export type SmtpEnv = z.infer<typeof smtpEnvSchema>;

/** What the email sender needs from configuration. */
export interface SmtpSetup {
  transport: EmailTransport;
  from: string;
}

/**
 * The transport and sender address from parsed env, or null when no SMTP server is configured.
 * Without one the email sender is not started: fan-out still queues emails in `email_outbox` and they
 * wait there (nothing is lost or marked failed) until a server is configured and the service restarts.
 * Contradictory settings throw `ConfigError`, so the service stops at startup with one line per problem.
 */
export function transportFromEnv(env: SmtpEnv): SmtpSetup | null {
  if (!env.SMTP_URL && !env.SMTP_HOST) return null;
  const problems: string[] = [];
  if (env.SMTP_URL && env.SMTP_HOST) problems.push('SMTP_URL: set SMTP_URL or SMTP_HOST, not both');
  if (!env.SMTP_FROM) problems.push('SMTP_FROM: required when SMTP is configured (unset)');
  if (env.SMTP_USER !== undefined && env.SMTP_PASSWORD === undefined) problems.push('SMTP_PASSWORD: required with SMTP_USER (unset)');
  if (env.SMTP_PASSWORD !== undefined && env.SMTP_USER === undefined) problems.push('SMTP_USER: required with SMTP_PASSWORD (unset)');

  let config: SmtpConfig;
  if (env.SMTP_URL) {
    const url = new URL(env.SMTP_URL);
    const secure = url.protocol === 'smtps:';
    if (env.SMTP_SECURE && !secure) problems.push('SMTP_SECURE: implicit TLS is set by an smtps:// SMTP_URL');
    config = {
      host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port ? Number(url.port) : env.SMTP_PORT,
      secure,
      auth: url.username ? { user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) } : undefined,
    };
    if (config.auth && (env.SMTP_USER !== undefined || env.SMTP_PASSWORD !== undefined)) problems.push('SMTP_USER: credentials are already in SMTP_URL');
  } else {
    config = { host: env.SMTP_HOST!, port: env.SMTP_PORT, secure: env.SMTP_SECURE };
  }
  if (config.secure && env.SMTP_STARTTLS) problems.push('SMTP_STARTTLS: not with implicit TLS (SMTP_SECURE or smtps://), which encrypts from the start');
  if (problems.length > 0) throw new ConfigError(problems);

  config.auth ??= env.SMTP_USER !== undefined ? { user: env.SMTP_USER, password: env.SMTP_PASSWORD! } : undefined;
  config.requireStartTls = env.SMTP_STARTTLS;
  config.connectionTimeoutMs = env.SMTP_CONNECTION_TIMEOUT_MS;
  config.greetingTimeoutMs = env.SMTP_GREETING_TIMEOUT_MS;
  config.socketTimeoutMs = env.SMTP_SOCKET_TIMEOUT_MS;
  return { transport: smtpTransport(config), from: env.SMTP_FROM! };
}
