/**
 * Load generator, run as its own process so it never shares an event loop with the server:
 *
 *   bun bench/load.ts --url http://127.0.0.1:8001/health --connections 50 --seconds 5 --warmup 1
 *
 * Opens N keep-alive HTTP/1.1 connections, each sending one GET and waiting for the whole response
 * before sending the next (no pipelining). Requests finished during the warm-up are not counted.
 * Prints one JSON object: requests/s, latency p50/p99 in ms, and the number of non-2xx answers.
 *
 * It speaks HTTP over raw sockets instead of calling fetch() because client and server share the
 * machine's 2 cores: a cheaper client leaves more CPU to the server, so the measured server
 * figures (and the service/bare ratio) are compressed less by the client's own cost.
 * It handles only Content-Length responses, which is what the benched routes send.
 */
import { parseArgs } from 'node:util';

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

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    connections: { type: 'string', default: '50' },
    seconds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
  },
});
if (!values.url) throw new Error('--url is required');
const url = new URL(values.url);
const connections = Number(values.connections);
const seconds = Number(values.seconds);
const warmupSeconds = Number(values.warmup);

const request = `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nAccept: */*\r\n\r\n`;
const started = performance.now();
const windowStart = started + warmupSeconds * 1000;
const windowEnd = windowStart + seconds * 1000;
const latencies: number[] = [];
let errors = 0;
/** Open sockets, so the ones still waiting at the deadline can be closed. */
const open = new Set<{ terminate(): void }>();

/** One connection's loop: send, read one full response, record it, send again. */
async function connectionLoop(): Promise<void> {
  let buffered = '';
  let sentAt = 0;
  const send = (socket: { write(data: string): number }) => {
    sentAt = performance.now();
    socket.write(request);
  };
  await new Promise<void>((resolve, reject) => {
    Bun.connect({
      hostname: url.hostname,
      port: Number(url.port),
      socket: {
        open(socket) {
          open.add(socket);
          send(socket);
        },
        data(socket, chunk) {
          // latin1 maps bytes 1:1 to chars, so Content-Length (bytes) can be compared to string length.
          buffered += chunk.toString('latin1');
          for (;;) {
            const headerEnd = buffered.indexOf('\r\n\r\n');
            if (headerEnd < 0) return;
            const head = buffered.slice(0, headerEnd);
            const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
            if (!length) {
              socket.end();
              reject(new Error(`response without Content-Length: ${head.split('\r\n')[0]}`));
              return;
            }
            const total = headerEnd + 4 + Number(length[1]);
            if (buffered.length < total) return;
            buffered = buffered.slice(total);
            const now = performance.now();
            if (sentAt >= windowStart && now <= windowEnd) {
              latencies.push(now - sentAt);
              if (!/^HTTP\/1\.1 2/.test(head)) errors += 1;
            }
            if (now > windowEnd) {
              socket.end();
              return;
            }
            send(socket);
          }
        },
        close(socket) {
          open.delete(socket);
          resolve();
        },
        error: (_socket, err) => reject(err),
        connectError: (_socket, err) => reject(err),
      },
    }).catch(reject);
  });
}

// Closes connections still waiting 2 s after the window, so the process always ends.
setTimeout(() => {
  for (const socket of open) socket.terminate();
}, windowEnd - started + 2000).unref();

await Promise.all(Array.from({ length: connections }, () => connectionLoop()));

latencies.sort((a, b) => a - b);
const pick = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;
const result: LoadResult = {
  url: url.href,
  connections,
  seconds,
  requests: latencies.length,
  rps: Math.round(latencies.length / seconds),
  p50Ms: round(pick(0.5), 3),
  p99Ms: round(pick(0.99), 3),
  errors,
};
process.stdout.write(JSON.stringify(result) + '\n');
