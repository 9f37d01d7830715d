/** What the backup orchestrator (backup-run.ts) and the two ways of taking a database backup share. */
import type { FileItem, Manifest, SchemaEntry } from './manifest.ts';
import type { StoredFileRow } from './stored-files.ts';

export interface ModeBackupContext {
  /** The staging directory; database files go to `<dir>/db/`. */
  dir: string;
  migrationsDir: string;
  /** Starts checking (and copying) the stored files the snapshot lists. */
  copyFiles(rows: StoredFileRow[]): Promise<FileItem[]>;
  log(line: string): void;
}

export interface ModeBackup {
  createdAt: Date;
  databases: Manifest['databases'];
  schemas: Record<string, SchemaEntry>;
  pglite?: Manifest['pglite'];
  files: FileItem[];
  /** Milliseconds per phase, for the manifest (operators size their backup windows from them). */
  timings: Record<string, number>;
}
