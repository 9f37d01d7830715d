/**
 * A service (or any Bun script) started by a bench as a child process, with its stderr drained
 * continuously (so the pipe never fills) and the last few KiB kept for the error a failed start throws.
 */
import { resolve } from 'node:path';
import type { Scratch } from './scratch.ts';

const ROOT = resolve(import.meta.dir, '..');

export interface ServiceChild {
  name: string;
  proc: Bun.Subprocess<'ignore', 'ignore', 'pipe'>;
  /** The last few KiB the child wrote to stderr. */
  stderrTail: () => string;
}

/**
 * Runs `bun --no-install <args>` from the repo root with only PATH, HOME and `env`, tracked by the
 * scratch space so `cleanup()` stops it. `--no-install`: a child that still needs a package fails
 * instead of fetching it.
 */
export function spawnServiceChild(scratch: Pick<Scratch, 'dir' | 'track'>, name: string, args: string[], env: Record<string, string>): ServiceChild {
  const proc = scratch.track(
    Bun.spawn([process.execPath, '--no-install', ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? scratch.dir, ...env },
      stdin: 'ignore',
      stdout: 'ignore',
      stderr: 'pipe',
    }),
  );
  let tail = '';
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr) tail = (tail + decoder.decode(chunk, { stream: true })).slice(-4096);
  })().catch(() => {});
  return { name, proc, stderrTail: () => tail.trim() };
}

/**
 * Polls `url` every 20 ms until it answers 200; throws with the child's last stderr lines when it
 * exits first or `timeoutMs` passes. `Connection: close` so no idle keep-alive connection delays
 * the child's graceful stop.
 */
export async function waitReady(child: ServiceChild, url: string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url, { headers: { connection: 'close' }, signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (child.proc.exitCode !== null) throw new Error(`${child.name} exited with ${child.proc.exitCode}: ${child.stderrTail().split('\n').slice(-3).join(' | ')}`);
    if (performance.now() > deadline) throw new Error(`${child.name} not ready after ${timeoutMs} ms: ${child.stderrTail()}`);
    await Bun.sleep(20);
  }
}
