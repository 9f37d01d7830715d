/**
 * Where file bytes live. Callers see only this interface: write a new object through a temporary
 * file that becomes visible by an atomic rename on commit, read whole objects or byte ranges as
 * streams, and remove them. The local filesystem implementation keeps objects under
 * `<root>/objects/<2 hex>/<key>` and in-progress writes under `<root>/tmp`, on the same filesystem
 * so the rename is atomic. (An S3-compatible backend would implement the same interface.)
 */
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';

export interface ObjectWriter {
  /** Appends bytes; resolves when the sink has taken them (backpressure). */
  write(chunk: Uint8Array): Promise<void>;
  /** Makes the object visible under `key`; nothing is visible before. */
  commit(key: string): Promise<void>;
  /** Discards everything written; safe to call more than once or after a failed write. */
  abort(): Promise<void>;
}

export interface FileStorage {
  createWriter(): Promise<ObjectWriter>;
  /** The object's bytes (inclusive `range` end), streamed. */
  read(key: string, range?: { start: number; end: number }): ReadableStream<Uint8Array>;
  size(key: string): Promise<number | null>;
  remove(key: string): Promise<void>;
  /** Removes temporary files older than `olderThanMs` (left by crashes); returns how many. */
  sweepTemporary(olderThanMs: number): Promise<number>;
}

const KEY = /^[A-Za-z0-9_-]{8,128}$/;

export function createLocalStorage(root: string, now: () => number = Date.now): FileStorage {
  const objects = join(root, 'objects');
  const tmp = join(root, 'tmp');
  const pathOf = (key: string) => {
    // Keys are generated ids; refusing anything else keeps paths inside the root.
    if (!KEY.test(key)) throw new Error('invalid storage key');
    return join(objects, key.slice(-2), key);
  };

  return {
    async createWriter() {
      await mkdir(tmp, { recursive: true });
      const tempPath = join(tmp, `${Bun.randomUUIDv7()}.part`);
      const out: WriteStream = createWriteStream(tempPath, { flags: 'wx', mode: 0o600 });
      let failed: Error | undefined;
      out.on('error', (err) => {
        failed = err;
      });
      // The file is opened asynchronously: wait, so an early abort cannot remove it before it exists.
      await new Promise<void>((resolve, reject) => {
        out.once('ready', () => resolve());
        out.once('error', reject);
      });
      const closed = () =>
        new Promise<void>((resolve) => {
          if (out.closed) return resolve();
          out.once('close', () => resolve());
          out.end();
        });
      return {
        write(chunk) {
          if (failed) return Promise.reject(failed);
          return new Promise<void>((resolve, reject) => {
            const ok = out.write(chunk, (err) => (err ? reject(err) : ok ? resolve() : undefined));
            if (!ok) out.once('drain', () => resolve());
          });
        },
        async commit(key) {
          await closed();
          if (failed) throw failed;
          const target = pathOf(key);
          await mkdir(join(target, '..'), { recursive: true });
          await rename(tempPath, target);
        },
        async abort() {
          if (!out.closed) {
            await new Promise<void>((resolve) => {
              out.once('close', () => resolve());
              out.destroy();
            });
          }
          await rm(tempPath, { force: true });
        },
      };
    },

    read(key, range) {
      const stream = createReadStream(pathOf(key), range ? { start: range.start, end: range.end } : {});
      return Readable.toWeb(stream) as ReadableStream<Uint8Array>;
    },

    async size(key) {
      try {
        return (await stat(pathOf(key))).size;
      } catch {
        return null;
      }
    },

    async remove(key) {
      await rm(pathOf(key), { force: true });
    },

    async sweepTemporary(olderThanMs) {
      let removed = 0;
      const names = await readdir(tmp).catch(() => [] as string[]);
      for (const name of names) {
        const path = join(tmp, name);
        const info = await stat(path).catch(() => null);
        if (info && now() - info.mtimeMs > olderThanMs) {
          await rm(path, { force: true });
          removed += 1;
        }
      }
      return removed;
    },
  };
}
