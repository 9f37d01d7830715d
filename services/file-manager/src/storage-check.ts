/** Readiness of file storage: the directory exists and a file can be written, synced and removed. */
import type { ReadinessCheck } from '@shared/health.ts';
import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';

export function storageCheck(storageDir: string): ReadinessCheck {
  return {
    name: 'storage',
    async run() {
      await mkdir(storageDir, { recursive: true });
      const probe = join(storageDir, `.ready-${Bun.randomUUIDv7()}`);
      const handle = await open(probe, 'wx');
      try {
        await handle.write('ok');
        await handle.sync();
      } finally {
        await handle.close();
        await rm(probe, { force: true });
      }
    },
  };
}
