/**
 * A real SMTP server for tests (the `smtp-server` package) on 127.0.0.1: it keeps every message it
 * accepted, decoded far enough to assert on (headers, text and HTML parts), and can refuse messages
 * with a chosen SMTP reply, be stopped and be restarted on the same port.
 */
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import type { AddressInfo } from 'node:net';

export interface ReceivedMail {
  /** The SMTP envelope: what the client said in MAIL FROM and RCPT TO. */
  envelope: { from: string; to: string[] };
  /** The user the client logged in as, if it did. */
  user: string | undefined;
  /** Header names lower-cased, values unfolded and decoded (RFC 2047). */
  headers: Map<string, string>;
  text: string;
  html: string;
  raw: string;
}

/** A reply the server gives instead of accepting: at RCPT TO (for matching recipients) or after DATA. */
export interface Refusal {
  stage: 'rcpt' | 'data';
  code: number;
  /** Only for these recipients; every message when absent. */
  recipients?: string[];
}

export interface TestMailServer {
  readonly port: number;
  readonly received: ReceivedMail[];
  /** Set to make the server refuse; null accepts everything. */
  refuse: Refusal | null;
  /** Stops listening; connections made afterwards are refused. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  restart(): Promise<void>;
}

export interface MailServerOptions {
  /** Require this login (plain-text AUTH allowed, as no TLS is offered). */
  auth?: { user: string; password: string };
}

export async function startMailServer(options: MailServerOptions = {}): Promise<TestMailServer> {
  const received: ReceivedMail[] = [];
  let port = 0;
  let server: SMTPServer | undefined;

  const state: TestMailServer = {
    get port() {
      return port;
    },
    received,
    refuse: null,
    async stop() {
      const s = server;
      server = undefined;
      if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    },
    async restart() {
      await listen(port);
    },
  };

  const refusal = (stage: Refusal['stage'], recipients: string[]) => {
    const r = state.refuse;
    if (!r || r.stage !== stage) return null;
    if (r.recipients && !recipients.some((a) => r.recipients!.includes(a))) return null;
    const err = new Error(`${r.code} refused by the test server`) as Error & { responseCode: number };
    err.responseCode = r.code;
    return err;
  };

  const serverOptions: SMTPServerOptions = {
    logger: false,
    disabledCommands: ['STARTTLS'],
    authOptional: !options.auth,
    allowInsecureAuth: true,
    onAuth(auth, _session, callback) {
      if (options.auth && auth.username === options.auth.user && auth.password === options.auth.password) return callback(null, { user: auth.username });
      callback(Object.assign(new Error('Invalid username or password'), { responseCode: 535 }));
    },
    onRcptTo(address, _session, callback) {
      callback(refusal('rcpt', [address.address]));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const to = session.envelope.rcptTo.map((a) => a.address);
        const refused = refusal('data', to);
        if (refused) return callback(refused);
        const raw = Buffer.concat(chunks).toString('utf8');
        const mailFrom = session.envelope.mailFrom;
        received.push({
          envelope: { from: mailFrom ? mailFrom.address : '', to },
          user: typeof session.user === 'string' ? session.user : undefined,
          ...parseMessage(raw),
          raw,
        });
        callback(null);
      });
    },
  };

  async function listen(onPort: number) {
    const s = new SMTPServer(serverOptions);
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(onPort, '127.0.0.1', () => resolve());
    });
    port = (s.server.address() as AddressInfo).port;
    server = s;
  }

  await listen(0);
  return state;
}

/** Just enough MIME for our messages: headers, one level of multipart, quoted-printable/base64 parts. */
export function parseMessage(raw: string): { headers: Map<string, string>; text: string; html: string } {
  const { headers, body } = splitEntity(raw);
  const type = headers.get('content-type') ?? 'text/plain';
  const parts: { type: string; content: string }[] = [];
  const boundary = /boundary="?([^";]+)"?/i.exec(type)?.[1];
  if (type.toLowerCase().startsWith('multipart/') && boundary) {
    for (const chunk of body.split(`--${boundary}`).slice(1)) {
      if (chunk.startsWith('--')) break;
      const part = splitEntity(chunk.replace(/^\r?\n/, ''));
      parts.push({ type: part.headers.get('content-type') ?? 'text/plain', content: decodeBody(part.body, part.headers.get('content-transfer-encoding')) });
    }
  } else {
    parts.push({ type, content: decodeBody(body, headers.get('content-transfer-encoding')) });
  }
  const find = (t: string) => parts.find((p) => p.type.toLowerCase().startsWith(t))?.content ?? '';
  return { headers, text: find('text/plain'), html: find('text/html') };
}

function splitEntity(raw: string): { headers: Map<string, string>; body: string } {
  const end = raw.search(/\r?\n\r?\n/);
  const head = end === -1 ? raw : raw.slice(0, end);
  const body = end === -1 ? '' : raw.slice(end).replace(/^\r?\n\r?\n/, '');
  const headers = new Map<string, string>();
  for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), decodeWords(line.slice(colon + 1).trim()));
  }
  return { headers, body };
}

function decodeBody(body: string, encoding: string | undefined): string {
  const enc = (encoding ?? '7bit').toLowerCase();
  let bytes: Buffer;
  if (enc === 'quoted-printable') bytes = decodeQuotedPrintable(body.replace(/=\r?\n/g, ''));
  else if (enc === 'base64') bytes = Buffer.from(body.replace(/\s+/g, ''), 'base64');
  else bytes = Buffer.from(body, 'utf8');
  return bytes.toString('utf8').replace(/\r\n/g, '\n').replace(/\n$/, '');
}

function decodeQuotedPrintable(s: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(s.slice(i + 1, i + 3))) {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(s[i]!, 'utf8'));
    }
  }
  return Buffer.from(bytes);
}

/** RFC 2047 encoded words; adjacent ones are joined before decoding, as a character may span two. */
function decodeWords(value: string): string {
  const word = /=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g;
  return value
    .replace(/(\?=)\s+(?==\?)/g, '$1')
    .replace(/(?:=\?[^?]+\?[BbQq]\?[^?]*\?=)+/g, (run) => {
      const bytes: Buffer[] = [];
      for (const m of run.matchAll(word)) {
        const [, , kind, text] = m;
        bytes.push(kind!.toUpperCase() === 'B' ? Buffer.from(text!, 'base64') : decodeQuotedPrintable(text!.replace(/_/g, ' ')));
      }
      return Buffer.concat(bytes).toString('utf8');
    });
}
