/**
 * A backup is built in a hidden `.<name>.partial` directory beside its final place and becomes
 * `<out>/<name>` by one rename after manifest.json, the last file, is written and synced. An
 * interrupted backup therefore never looks complete: it has no manifest and keeps the `.partial` name.
 */
import { existsSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MANIFEST_NAME, type Manifest } from './manifest.ts';

export interface Staging {
  /** Where the backup is being written. */
  readonly dir: string;
  /** Writes the manifest and moves the backup to its final name; answers that path. */
  publish(manifest: Manifest): Promise<string>;
  /** Removes everything written so far. */
  discard(): Promise<void>;
}

/** `fip-backup-20250102T030405Z` for the given time. */
export function defaultBackupName(at: Date): string {
  return `fip-backup-${at.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}`;
}

export async function createStaging(outDir: string, name: string): Promise<Staging> {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) throw new Error(`backup name ${JSON.stringify(name)}: letters, digits, '_', '.', '-' only`);
  const finalDir = join(outDir, name);
  if (existsSync(finalDir)) throw new Error(`${finalDir} already exists; a backup never overwrites another`);
  await mkdir(outDir, { recursive: true });
  const dir = join(outDir, `.${name}.partial`);
  // Owner-only: the backup holds every user's data (and, in standalone mode, the platform's keys).
  await mkdir(dir, { mode: 0o700 });
  return {
    dir,
    async publish(manifest) {
      const path = join(dir, MANIFEST_NAME);
      const handle = await open(path, 'wx', 0o600);
      try {
        await handle.writeFile(`${JSON.stringify(manifest, null, 2)}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      if (existsSync(finalDir)) throw new Error(`${finalDir} appeared while the backup ran; the complete backup is left in ${dir}`);
      await rename(dir, finalDir);
      await syncDirectory(outDir);
      return finalDir;
    },
    discard: () => rm(dir, { recursive: true, force: true }),
  };
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r').catch(() => null);
  if (!handle) return;
  await handle.sync().catch(() => {});
  await handle.close();
}
