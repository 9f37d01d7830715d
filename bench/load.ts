/**
 * Load generator, run as its own process so it never shares an event loop with the server:
 *
 *   bun bench/load.ts --url http://127.0.0.1:8001/health --connections 50 --seconds 5 --warmup 1 \
 *     [--header 'Authorization: Bearer …']… [--marks]
 *
 * Opens N keep-alive HTTP/1.1 connections, each sending one GET and waiting for the whole response
 * before sending the next (no pipelining). Requests finished during the warm-up are not counted.
 * Prints one JSON object (`FixedLoadResult`): requests/s, latency p50/p90/p99 in ms, the number of non-2xx
 * answers and the client's own CPU per request. With `--marks` it first prints `window-start` and
 * `window-end` lines when the measured window opens and closes, so a parent can read counters then.
 *
 * It speaks HTTP over raw sockets instead of calling fetch() because client and server share the
 * machine's 2 cores: a cheaper client leaves more CPU to the server, so the measured server
 * figures (and the service/bare ratio) are compressed less by the client's own cost.
 *
 * The connection (`HttpConnection`) is also what bench/platform-load drives its mixed load with
 * (any method, headers and body per request). It reads Content-Length and chunked responses.
 */
import { parseArgs } from 'node:util';

/** What any load generator reports (bench/services.ts fills it from wrk's output too). */
export interface LoadResult {
  url: string;
  connections: number;
  seconds: number;
  requests: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Non-2xx responses within the measured window. */
  errors: number;
}

/** What this generator prints: `LoadResult` and more. */
export interface FixedLoadResult extends LoadResult {
  p90Ms: number;
  /** The first non-2xx status line seen, for diagnosis. */
  firstError?: string;
  /** CPU time (user + system) of the load generator per measured request, in µs. */
  clientCpuUs: number;
}

/** One response read off a connection. Bytes are held as a latin1 string (one char per byte). */
export interface RawResponse {
  status: number;
  statusLine: string;
  /** Status line and headers, without the blank line. */
  head: string;
  /** A header's value (first occurrence, case-insensitive). */
  header(name: string): string | undefined;
  /** The body as UTF-8 text (chunked framing removed). */
  text(): string;
}

/** A request as bytes on the wire: method, path (with query), headers, optional body. */
export function encodeRequest(method: string, host: string, path: string, headers: Record<string, string> = {}, body?: Uint8Array | string): Uint8Array {
  const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body;
  let head = `${method} ${path} HTTP/1.1\r\nHost: ${host}\r\nAccept: */*\r\n`;
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
  if (bytes) head += `Content-Length: ${bytes.length}\r\n`;
  head += '\r\n';
  const headBytes = new TextEncoder().encode(head);
  if (!bytes || bytes.length === 0) return headBytes;
  const out = new Uint8Array(headBytes.length + bytes.length);
  out.set(headBytes);
  out.set(bytes, headBytes.length);
  return out;
}

/**
 * Length of the complete response at the start of `text` and where its body starts; `undefined`
 * while more bytes are needed. Throws on a response whose end cannot be known (neither
 * Content-Length nor chunked, and not a status that has no body).
 */
export function responseFrame(text: string): { total: number; bodyStart: number; chunked: boolean } | undefined {
  const headerEnd = text.indexOf('\r\n\r\n');
  if (headerEnd < 0) return undefined;
  const bodyStart = headerEnd + 4;
  const head = text.slice(0, headerEnd);
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (length) {
    const total = bodyStart + Number(length[1]);
    return text.length >= total ? { total, bodyStart, chunked: false } : undefined;
  }
  if (!/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
    if (/^HTTP\/1\.[01] (1\d\d|204|304)/.test(head)) return { total: bodyStart, bodyStart, chunked: false };
    throw new Error(`response without length: ${head.slice(0, head.indexOf('\r\n'))}`);
  }
  let at = bodyStart;
  for (;;) {
    const lineEnd = text.indexOf('\r\n', at);
    if (lineEnd < 0) return undefined;
    const size = parseInt(text.slice(at, lineEnd), 16);
    if (size === 0) {
      // No trailers are sent by the benched routes: the last chunk is followed by an empty line.
      return text.length >= lineEnd + 4 ? { total: lineEnd + 4, bodyStart, chunked: true } : undefined;
    }
    at = lineEnd + 2 + size + 2;
    if (at > text.length) return undefined;
  }
}

function dechunk(body: string): string {
  let out = '';
  let at = 0;
  for (;;) {
    const lineEnd = body.indexOf('\r\n', at);
    const size = parseInt(body.slice(at, lineEnd), 16);
    if (!(size > 0)) return out;
    out += body.slice(lineEnd + 2, lineEnd + 2 + size);
    at = lineEnd + 2 + size + 2;
  }
}

/** Parsed lazily: the fixed-URL loop reads only the status, so the hot path allocates one small object. */
class ParsedResponse implements RawResponse {
  readonly status: number;
  readonly statusLine: string;
  constructor(
    private readonly raw: string,
    private readonly bodyStart: number,
    private readonly chunked: boolean,
  ) {
    const lineEnd = raw.indexOf('\r\n');
    this.statusLine = raw.slice(0, lineEnd);
    this.status = Number(raw.slice(9, 12));
  }
  get head(): string {
    return this.raw.slice(0, this.bodyStart - 4);
  }
  header(name: string): string | undefined {
    return new RegExp(`\\r\\n${name}:[ \\t]*([^\\r]*)`, 'i').exec(this.head)?.[1];
  }
  text(): string {
    const body = this.raw.slice(this.bodyStart);
    return Buffer.from(this.chunked ? dechunk(body) : body, 'latin1').toString('utf8');
  }
}

type Socket = Bun.Socket<undefined>;
type ResponseCallback = (response: RawResponse | Error) => void;

/**
 * One keep-alive HTTP/1.1 connection over a raw socket: one request at a time, each answered
 * through a callback (cheap enough for the fixed-URL loop) or a promise (`request`).
 */
export class HttpConnection {
  private buffered = '';
  private unwritten: Uint8Array | undefined;
  private waiting: ResponseCallback | undefined;
  private socket!: Socket;
  /** True once the socket closed (by either side or an error); a closed connection takes no requests. */
  closed = false;

  private constructor() {}

  /** Connects to `hostname:port`. */
  static async open(hostname: string, port: number): Promise<HttpConnection> {
    const connection = new HttpConnection();
    connection.socket = await Bun.connect({
      hostname,
      port,
      socket: {
        data: (_socket, chunk) => connection.onData(chunk),
        drain: () => connection.flush(),
        close: () => connection.onClosed(new Error('connection closed')),
        error: (_socket, err) => connection.onClosed(err),
        connectError: (_socket, err) => connection.onClosed(err),
      },
    });
    return connection;
  }

  /** Sends `request` (bytes from `encodeRequest`); `callback` gets the response or the error that ended the connection. */
  send(request: Uint8Array, callback: ResponseCallback): void {
    if (this.closed) return callback(new Error('connection closed'));
    if (this.waiting) return callback(new Error('a request is already in flight on this connection'));
    this.waiting = callback;
    this.unwritten = request;
    this.flush();
  }

  /** `send` as a promise; rejects after `timeoutMs` (and closes the connection, whose state is then unknown). */
  request(request: Uint8Array, timeoutMs = 30_000): Promise<RawResponse> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.onClosed(new Error(`no response within ${timeoutMs} ms`));
        this.socket.terminate();
      }, timeoutMs);
      this.send(request, (response) => {
        clearTimeout(timer);
        if (response instanceof Error) reject(response);
        else resolve(response);
      });
    });
  }

  /** Closes gracefully (`end`) or at once (`terminate`). */
  close(now = false): void {
    if (now) this.socket.terminate();
    else this.socket.end();
  }

  private flush(): void {
    while (this.unwritten) {
      const written = this.socket.write(this.unwritten);
      if (written >= this.unwritten.length) this.unwritten = undefined;
      else {
        // The kernel buffer is full: the rest goes out on `drain`.
        if (written > 0) this.unwritten = this.unwritten.subarray(written);
        return;
      }
    }
  }

  private onData(chunk: Buffer): void {
    // latin1 maps bytes 1:1 to chars, so byte lengths compare with string lengths.
    this.buffered += chunk.toString('latin1');
    for (;;) {
      let frame: ReturnType<typeof responseFrame>;
      try {
        frame = responseFrame(this.buffered);
      } catch (err) {
        this.onClosed(err as Error);
        this.socket.end();
        return;
      }
      if (!frame) return;
      const raw = this.buffered.slice(0, frame.total);
      this.buffered = this.buffered.slice(frame.total);
      const callback = this.waiting;
      this.waiting = undefined;
      callback?.(new ParsedResponse(raw, frame.bodyStart, frame.chunked));
    }
  }

  private onClosed(err: Error): void {
    this.closed = true;
    this.unwritten = undefined;
    const callback = this.waiting;
    this.waiting = undefined;
    callback?.(err);
  }
}

/** The `q` quantile of ascending `sorted` (nearest rank below), NaN when empty. */
export function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

export interface FixedLoadOptions {
  url: string;
  connections: number;
  seconds: number;
  warmupSeconds: number;
  /** Extra request headers as `Name: value` lines. */
  headers?: string[];
  /** Called when the measured window opens and when it closes. */
  onWindow?: (edge: 'start' | 'end') => void;
}

/** `connections` connections sending the same GET back to back; figures only from the measured window. */
export async function runFixedLoad(options: FixedLoadOptions): Promise<FixedLoadResult> {
  const url = new URL(options.url);
  const headers = Object.fromEntries(
    (options.headers ?? []).map((line) => {
      const colon = line.indexOf(':');
      return [line.slice(0, colon).trim(), line.slice(colon + 1).trim()];
    }),
  );
  const request = encodeRequest('GET', url.host, `${url.pathname}${url.search}`, headers);
  const started = performance.now();
  const windowStart = started + options.warmupSeconds * 1000;
  const windowEnd = windowStart + options.seconds * 1000;
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const open = new Set<HttpConnection>();

  let cpuAtStart = process.cpuUsage();
  let cpuInWindow = 0;
  const openTimer = setTimeout(() => {
    cpuAtStart = process.cpuUsage();
    options.onWindow?.('start');
  }, windowStart - started);
  let windowClosed = false;
  /** Called by the timer or by the first response past the deadline, whichever runs first. */
  const closeWindow = () => {
    if (windowClosed) return;
    windowClosed = true;
    const used = process.cpuUsage(cpuAtStart);
    cpuInWindow = used.user + used.system;
    options.onWindow?.('end');
  };
  const closeTimer = setTimeout(closeWindow, windowEnd - started);

  /** One connection's loop: send, read one full response, record it, send again. */
  const connectionLoop = async (): Promise<void> => {
    const connection = await HttpConnection.open(url.hostname, Number(url.port));
    open.add(connection);
    let sentAt = 0;
    await new Promise<void>((resolve, reject) => {
      const onResponse = (response: RawResponse | Error) => {
        const now = performance.now();
        if (response instanceof Error) {
          open.delete(connection);
          // Past the window, a connection cut by the deadline timer is the expected end.
          if (now > windowEnd) resolve();
          else reject(response);
          return;
        }
        if (sentAt >= windowStart && now <= windowEnd) {
          latencies.push(now - sentAt);
          if (response.status < 200 || response.status > 299) {
            errors += 1;
            firstError ??= response.statusLine;
          }
        }
        if (now > windowEnd) {
          closeWindow();
          open.delete(connection);
          connection.close();
          resolve();
          return;
        }
        sentAt = performance.now();
        connection.send(request, onResponse);
      };
      sentAt = performance.now();
      connection.send(request, onResponse);
    });
  };

  // Closes connections still waiting 2 s after the window, so the run always ends.
  const killTimer = setTimeout(() => {
    for (const connection of open) connection.close(true);
  }, windowEnd - started + 2000);
  try {
    await Promise.all(Array.from({ length: options.connections }, connectionLoop));
  } finally {
    clearTimeout(openTimer);
    clearTimeout(closeTimer);
    clearTimeout(killTimer);
  }
  closeWindow();

  latencies.sort((a, b) => a - b);
  const round3 = (x: number) => Math.round(x * 1000) / 1000;
  return {
    url: url.href,
    connections: options.connections,
    seconds: options.seconds,
    requests: latencies.length,
    rps: Math.round(latencies.length / options.seconds),
    p50Ms: round3(quantile(latencies, 0.5)),
    p90Ms: round3(quantile(latencies, 0.9)),
    p99Ms: round3(quantile(latencies, 0.99)),
    errors,
    ...(firstError ? { firstError } : {}),
    clientCpuUs: Math.round((cpuInWindow / Math.max(1, latencies.length)) * 10) / 10,
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      connections: { type: 'string', default: '50' },
      seconds: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '1' },
      header: { type: 'string', multiple: true, default: [] },
      marks: { type: 'boolean', default: false },
    },
  });
  if (!values.url) throw new Error('--url is required');
  const result = await runFixedLoad({
    url: values.url,
    connections: Number(values.connections),
    seconds: Number(values.seconds),
    warmupSeconds: Number(values.warmup),
    headers: values.header,
    onWindow: values.marks ? (edge) => process.stdout.write(`window-${edge}\n`) : undefined,
  });
  process.stdout.write(JSON.stringify(result) + '\n');
}
