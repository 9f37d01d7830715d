/**
 * patches/apply-patches.mjs runs after every install (postinstall, and each Dockerfile's build stage).
 * These check it took effect on the installed postgres.js and that it refuses, rather than skips, a
 * dependency it no longer matches — so an upgrade cannot silently drop the fix.
 */
import { describe, expect, it } from 'bun:test';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dir, '../..');
const MARKER = '/* fip-patch: closed-socket write */';

describe('patches/apply-patches.mjs', () => {
  it('has patched both builds of the installed postgres.js so a write on a closed connection fails the query instead of the process', () => {
    for (const file of ['src/connection.js', 'cjs/src/connection.js']) {
      const text = readFileSync(join(ROOT, 'node_modules/postgres', file), 'utf8');
      expect(text).toContain(MARKER);
      expect(text).toContain("error(Errors.connection('CONNECTION_CLOSED', options))");
    }
  });

  it('is idempotent, and stops (exit 1) on a version or text it was not written for', () => {
    const work = mkdtempSync(join(tmpdir(), 'fip-patches-'));
    try {
      cpSync(join(ROOT, 'patches'), join(work, 'patches'), { recursive: true });
      cpSync(join(ROOT, 'node_modules/postgres'), join(work, 'node_modules/postgres'), { recursive: true });
      const run = () => Bun.spawnSync([process.execPath, join(work, 'patches/apply-patches.mjs')]);
      const before = readFileSync(join(work, 'node_modules/postgres/src/connection.js'), 'utf8');
      expect(run().exitCode).toBe(0);
      expect(readFileSync(join(work, 'node_modules/postgres/src/connection.js'), 'utf8')).toBe(before);

      // An unpatched file whose text moved (as after an upgrade): refused, named.
      writeFileSync(join(work, 'node_modules/postgres/src/connection.js'), 'export default function Connection() {}\n');
      const moved = run();
      expect(moved.exitCode).toBe(1);
      expect(moved.stderr.toString()).toContain('postgres/src/connection.js does not contain the text to replace');

      const pkg = JSON.parse(readFileSync(join(work, 'node_modules/postgres/package.json'), 'utf8'));
      writeFileSync(join(work, 'node_modules/postgres/package.json'), JSON.stringify({ ...pkg, version: '3.5.0' }));
      const upgraded = run();
      expect(upgraded.exitCode).toBe(1);
      expect(upgraded.stderr.toString()).toContain('postgres is 3.5.0, the fix was written for 3.4.9');
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
