/**
 * Sealing secrets at rest with AES-256-GCM under a key chosen by id, so keys can rotate: new data is
 * sealed with the current key, old data opens with whichever key sealed it. Sealed form:
 * `v1.<keyId>.<iv base64url>.<ciphertext+tag base64url>`; `aad` binds a sealed value to its owner
 * (e.g. a user id) so it cannot be copied onto another row.
 */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface SecretBox {
  readonly currentKeyId: string;
  seal(plaintext: string, aad?: string): Promise<string>;
  open(sealed: string, aad?: string): Promise<string>;
  /** The id of the key that sealed a value (to find values still under an old key). */
  keyIdOf(sealed: string): string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Parses `ENCRYPTION_KEYS`: comma-separated `<id>:<base64 of 32 bytes>`, the first one current.
 * Throws with a message that never includes key material.
 */
export function parseEncryptionKeys(value: string): { id: string; key: Uint8Array }[] {
  const keys = value
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => {
      const at = part.indexOf(':');
      const id = part.slice(0, at);
      if (at < 1 || !/^[A-Za-z0-9_-]{1,32}$/.test(id)) throw new Error('ENCRYPTION_KEYS: each entry must be <id>:<base64 key>');
      const key = Uint8Array.from(Buffer.from(part.slice(at + 1), 'base64'));
      if (key.length !== 32) throw new Error(`ENCRYPTION_KEYS: key ${id} must be 32 bytes (base64 of 32 random bytes)`);
      return { id, key };
    });
  if (keys.length === 0) throw new Error('ENCRYPTION_KEYS: no keys given');
  if (new Set(keys.map((k) => k.id)).size !== keys.length) throw new Error('ENCRYPTION_KEYS: key ids must be unique');
  return keys;
}

export async function createSecretBox(keys: { id: string; key: Uint8Array }[]): Promise<SecretBox> {
  if (keys.length === 0) throw new Error('createSecretBox: at least one key');
  const imported = new Map<string, CryptoKey>();
  for (const { id, key } of keys) {
    imported.set(id, await crypto.subtle.importKey('raw', key as Uint8Array<ArrayBuffer>, 'AES-GCM', false, ['encrypt', 'decrypt']));
  }
  const currentKeyId = keys[0]!.id;
  return {
    currentKeyId,
    async seal(plaintext, aad = '') {
      const iv = crypto.getRandomValues(new Uint8Array(12));
      const sealed = await crypto.subtle.encrypt(
        { name: 'AES-GCM', iv, additionalData: encoder.encode(aad) },
        imported.get(currentKeyId)!,
        encoder.encode(plaintext),
      );
      return `v1.${currentKeyId}.${b64url(iv)}.${b64url(new Uint8Array(sealed))}`;
    },
    async open(sealed, aad = '') {
      const [version, keyId, iv, data] = sealed.split('.');
      const key = keyId ? imported.get(keyId) : undefined;
      if (version !== 'v1' || !key || !iv || !data) throw new Error('sealed value is malformed or its key is not configured');
      try {
        const plain = await crypto.subtle.decrypt(
          { name: 'AES-GCM', iv: fromB64url(iv), additionalData: encoder.encode(aad) },
          key,
          fromB64url(data),
        );
        return decoder.decode(plain);
      } catch {
        throw new Error('sealed value failed authentication');
      }
    },
    keyIdOf(sealed) {
      return sealed.split('.')[1] ?? '';
    },
  };
}

/**
 * For embedded (standalone) installs without ENCRYPTION_KEYS: a random key kept in a 0600 file under
 * the data directory, created on first use. Production sets ENCRYPTION_KEYS instead.
 */
export async function loadOrCreateLocalKey(path: string): Promise<{ id: string; key: Uint8Array }> {
  try {
    return parseEncryptionKeys((await readFile(path, 'utf8')).trim())[0]!;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const key = crypto.getRandomValues(new Uint8Array(32));
  const line = `local:${Buffer.from(key).toString('base64')}`;
  await writeFile(path, line + '\n', { mode: 0o600, flag: 'wx' }).catch(async (err: NodeJS.ErrnoException) => {
    // Another service in the same install created it first: use theirs.
    if (err.code !== 'EEXIST') throw err;
  });
  await chmod(path, 0o600);
  return parseEncryptionKeys((await readFile(path, 'utf8')).trim())[0]!;
}

function b64url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64url');
}

function fromB64url(text: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(Buffer.from(text, 'base64url'));
}

/** Keys from configuration (`id:base64,...`), or — for embedded installs — the local key file at `fallbackPath`. */
export async function configuredKeys(value: string | undefined, fallbackPath: string): Promise<{ id: string; key: Uint8Array }[]> {
  return value ? parseEncryptionKeys(value) : [await loadOrCreateLocalKey(fallbackPath)];
}
