/**
 * Where file bytes live. Callers see only this interface: write a new object through a temporary
 * file that becomes visible by an atomic rename on commit, read whole objects or byte ranges as
 * streams, and remove them. The local filesystem implementation keeps objects under
 * `<root>/objects/<2 hex>/<key>` and in-progress writes under `<root>/tmp`, on the same filesystem
 * so the rename is atomic. (An S3-compatible backend would implement the same interface: its listing
 * is ListObjectsV2, whose LastModified plays the part of the mtime here.)
 */
import { closeSync, createReadStream, openSync } from 'node:fs';
import { mkdir, opendir, rename, rm, stat } from 'node:fs/promises';
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

/** One stored object as the listing sees it. */
export interface StoredObject {
  key: string;
  sizeBytes: number;
  /** When its bytes were last written (epoch ms): for a committed object, about when its upload finished. */
  modifiedAtMs: number;
}

export interface FileStorage {
  createWriter(): Promise<ObjectWriter>;
  /** The object's bytes (inclusive `range` end), streamed. */
  read(key: string, range?: { start: number; end: number }): ReadableStream<Uint8Array>;
  size(key: string): Promise<number | null>;
  remove(key: string): Promise<void>;
  /**
   * Every committed object, one at a time (the directory is read as it goes, never loaded whole).
   * Objects committed or removed during the listing may or may not appear.
   */
  listObjects(): AsyncIterable<StoredObject>;
  /**
   * Removes temporary files last written before `modifiedBefore` (uploads cut off by a crash: a live
   * upload writes continuously); returns how many.
   */
  sweepTemporary(modifiedBefore: Date): Promise<number>;
}

const KEY = /^[A-Za-z0-9_-]{8,128}$/;

export function createLocalStorage(root: string): FileStorage {
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
      // Exclusive create, owner-only, then Bun's FileSink on that descriptor. Its writes to a regular
      // file complete on the calling thread, so the upload loop reads the socket again at once and gets
      // 64 KiB chunks; an asynchronous write let Bun coalesce 1–1.5 MiB chunks and grew RSS by
      // ~70–90 MiB per GiB uploaded (bench/upload.ts), against ~25–30 MiB this way.
      // A plain descriptor rather than a FileHandle: a FileHandle collected unclosed is fatal in Bun.
      const fd = openSync(tempPath, 'wx', 0o600);
      const sink = Bun.file(fd).writer();
      let closed = false;
      const close = async () => {
        if (closed) return;
        closed = true;
        try {
          await sink.end();
        } finally {
          // FileSink does not close a descriptor it was given.
          closeSync(fd);
        }
      };
      return {
        async write(chunk) {
          sink.write(chunk);
          await sink.flush();
        },
        async commit(key) {
          await close();
          const target = pathOf(key);
          await mkdir(join(target, '..'), { recursive: true });
          await rename(tempPath, target);
        },
        async abort() {
          await close().catch(() => {});
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

    async *listObjects() {
      for await (const shard of entries(objects)) {
        if (!shard.isDirectory()) continue;
        for await (const entry of entries(join(objects, shard.name))) {
          // Only names this storage could have written, in the shard it would have put them in, so
          // whatever a caller does with the key (remove it) touches exactly the listed file.
          if (!entry.isFile() || !KEY.test(entry.name) || entry.name.slice(-2) !== shard.name) continue;
          // Gone since the directory was read (deleted by its owner or by retention): not listed.
          const info = await stat(join(objects, shard.name, entry.name)).catch(() => null);
          if (info) yield { key: entry.name, sizeBytes: info.size, modifiedAtMs: info.mtimeMs };
        }
      }
    },

    async sweepTemporary(modifiedBefore) {
      let removed = 0;
      for await (const entry of entries(tmp)) {
        const path = join(tmp, entry.name);
        const info = await stat(path).catch(() => null);
        if (info && info.mtimeMs < modifiedBefore.getTime()) {
          await rm(path, { force: true });
          removed += 1;
        }
      }
      return removed;
    },
  };
}

/** A directory's entries as it reads them; none when the directory does not exist (nothing stored yet). */
async function* entries(dir: string) {
  const handle = await opendir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (handle) yield* handle;
}
