/**
 * Is the embedded database open in another process? PGlite takes no lock: a second process opening
 * the same data directory succeeds and both then write to it, which corrupts it. So the operations
 * refuse to touch DATA_DIR/pglite while anything holds it open.
 *
 * A running PGlite keeps the relation files it has used open, so on Linux the answer is any process
 * with an open file under the directory (/proc/<pid>/fd). Elsewhere, PGlite's `postmaster.pid` (there
 * while an instance is open, removed by a clean close) is the only sign; it is also left behind by a
 * crash, hence `--force` for when the operator knows the platform is stopped.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile, readlink, realpath } from 'node:fs/promises';
import { join, sep } from 'node:path';

/** The embedded database is open in another process (or looks to be). */
export class PgliteInUseError extends Error {
  override readonly name = 'PgliteInUseError';
}

export interface Holder {
  pid: number;
  command: string;
}

/** Processes other than this one with a file open under `dir`; null when /proc cannot tell. */
export async function processesHolding(dir: string): Promise<Holder[] | null> {
  if (!existsSync('/proc/self/fd')) return null;
  const root = await realpath(dir);
  const prefix = root.endsWith(sep) ? root : root + sep;
  const holders: Holder[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const fds = await readdir(`/proc/${entry}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const target = await readlink(`/proc/${entry}/fd/${fd}`).catch(() => '');
      if (target === root || target.startsWith(prefix)) {
        const command = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
        holders.push({ pid: Number(entry), command: command.split('\0').filter(Boolean).join(' ') || '?' });
        break;
      }
    }
  }
  return holders;
}

/**
 * Throws, naming the processes, when the embedded database under `pgliteDir` is open elsewhere.
 * Answers a note to print when it found a stale `postmaster.pid` (the platform did not stop cleanly).
 */
export async function assertPgliteNotInUse(pgliteDir: string, options: { force?: boolean } = {}): Promise<string | null> {
  const pidFile = existsSync(join(pgliteDir, 'postmaster.pid'));
  const holders = await processesHolding(pgliteDir);
  if (holders && holders.length > 0) {
    const who = holders.map((h) => `pid ${h.pid} (${h.command.slice(0, 120)})`).join(', ');
    throw new PgliteInUseError(
      `the embedded database ${pgliteDir} is open in another process: ${who}. PGlite serves one process at a time; ` +
        'stop the platform (Ctrl-C on npm start) and run this again',
    );
  }
  if (holders === null && pidFile && !options.force) {
    throw new PgliteInUseError(
      `${join(pgliteDir, 'postmaster.pid')} exists: the platform looks to be running (PGlite serves one process at a time). ` +
        'Stop it and run this again; if it is not running (it crashed), pass --force',
    );
  }
  return pidFile ? `note: ${join(pgliteDir, 'postmaster.pid')} was left by a platform that did not stop cleanly; nothing holds the database open, continuing` : null;
}
