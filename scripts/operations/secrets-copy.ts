/**
 * The key files the platform makes up for itself when ENCRYPTION_KEYS / LINK_SIGNING_KEY are unset
 * (`DATA_DIR/secrets/*.key`: the vault and signing keys, job result passwords, webhook secrets, link
 * signing). Without them a restored database's sealed values cannot be opened, and nothing else holds
 * them, so a backup copies them unless told not to; their fingerprints are recorded either way, so a
 * restore can tell whether the keys at hand are the right ones.
 */
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256File } from './checksum.ts';

export interface SecretFile {
  name: string;
  bytes: number;
  sha256: string;
}

/** Fingerprints the regular files of `secretsDir` and copies them into `targetDir` unless it is null. */
export async function backUpSecrets(secretsDir: string, targetDir: string | null): Promise<SecretFile[]> {
  if (!existsSync(secretsDir)) return [];
  const out: SecretFile[] = [];
  if (targetDir) await mkdir(targetDir, { recursive: true, mode: 0o700 });
  for (const name of (await readdir(secretsDir)).sort()) {
    const path = join(secretsDir, name);
    if (!/^[a-z0-9_][a-z0-9_.-]*$/.test(name) || !(await stat(path)).isFile()) continue;
    const { sha256, bytes } = await sha256File(path);
    if (targetDir) {
      await copyFile(path, join(targetDir, name));
      await chmod(join(targetDir, name), 0o600);
    }
    out.push({ name, bytes, sha256 });
  }
  return out;
}

/**
 * Puts backed-up key files into `targetDir` (a real recovery). An existing file with other content is
 * never replaced: the answer names it, since data sealed under one key cannot be opened with another.
 */
export async function restoreSecrets(files: SecretFile[], backupSecretsDir: string, targetDir: string): Promise<string[]> {
  const conflicts: string[] = [];
  await mkdir(targetDir, { recursive: true, mode: 0o700 });
  for (const file of files) {
    const target = join(targetDir, file.name);
    if (existsSync(target)) {
      if ((await sha256File(target)).sha256 !== file.sha256) conflicts.push(target);
      continue;
    }
    await copyFile(join(backupSecretsDir, file.name), target);
    await chmod(target, 0o600);
  }
  return conflicts;
}
