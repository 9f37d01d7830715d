/**
 * Waiting on a platform that works in the background (workers, relays, senders): read something
 * until it is what the test expects, within a generous deadline. The deadline only bounds a broken
 * run; nothing asserts how long it took. On timeout the error names what was awaited and shows the
 * last thing read, so a failed step says where the flow stopped.
 */

export interface WaitOptions {
  /** Give up after this long (default 30 s: the machine is shared, so be generous). */
  timeoutMs?: number;
  /** Pause between reads (default 150 ms). */
  intervalMs?: number;
}

/**
 * Calls `read` until `ok` accepts its value and answers that value. A `read` that throws counts as
 * "not yet" (a service restarting, a row not written); its error is reported if the deadline passes.
 */
export async function waitUntil<T>(what: string, read: () => Promise<T>, ok: (value: T) => boolean, options: WaitOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const intervalMs = options.intervalMs ?? 150;
  const deadline = Date.now() + timeoutMs;
  let last: string = 'nothing read yet';
  for (;;) {
    try {
      const value = await read();
      if (ok(value)) return value;
      last = describe(value);
    } catch (err) {
      last = `error: ${err instanceof Error ? err.message : String(err)}`;
    }
    if (Date.now() >= deadline) throw new Error(`waited ${timeoutMs} ms for ${what}; last read: ${last}`);
    await Bun.sleep(intervalMs);
  }
}

function describe(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 3_000 ? `${text.slice(0, 3_000)}…` : text;
}
