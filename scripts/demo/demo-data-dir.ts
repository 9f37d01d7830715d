/**
 * The demo's data directory is wiped at every start (a re-run must never meet a catalogue pointing at
 * old ports), but only when it is the demo's own: empty, missing, or carrying the demo's marker file,
 * and not in use by another demo that is still running (the marker names its process).
 */
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MARKER_NAME } from './demo-settings.ts';

/** The directory cannot be wiped: it is not the demo's, or another demo is using it. */
export class DemoDirError extends Error {
  override name = 'DemoDirError';
}

/** Empties `dir` (creating it when missing) and marks it as this process's demo directory. */
export async function freshDemoDir(dir: string): Promise<void> {
  const entries = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[];
    throw err;
  });
  if (entries.length > 0 && !entries.includes(MARKER_NAME)) {
    throw new DemoDirError(`${dir} is not empty and was not made by the demo (no ${MARKER_NAME}); set DEMO_DATA_DIR to an empty or new directory`);
  }
  if (entries.includes(MARKER_NAME)) {
    const owner = Number(/^pid=(\d+)$/m.exec(await readFile(join(dir, MARKER_NAME), 'utf8'))?.[1]);
    if (owner && owner !== process.pid && alive(owner)) {
      throw new DemoDirError(`another demo (process ${owner}) is using ${dir}; stop it first, or set DEMO_DATA_DIR to another directory`);
    }
  }
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, MARKER_NAME), `Written by scripts/demo.ts: this directory is wiped at every \`npm run demo\`.\npid=${process.pid}\n`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
