/**
 * Scratch space shared by the benches: a temporary directory, a scratch PostgreSQL database, and the
 * child processes they start, all removed or stopped by `cleanup()`, which also runs on SIGINT/SIGTERM
 * (and children are SIGKILLed if the bench process exits without it).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';

/** Any Bun child process, whatever its stdio. */
export type Proc = Bun.Subprocess<any, any, any>;

/** What `openScratch` hands back. */
export interface Scratch {
  /** Temporary directory, removed by `cleanup()`. */
  dir: string;
  /** Name of the scratch database (`fip_bench_[<name>_]<random>`); created by `createDatabase()`. */
  databaseName: string;
  /** `adminUrl` pointing at the scratch database. */
  databaseUrl: string;
  /** One-connection client on `adminUrl`, ended by `cleanup()`. */
  admin: postgres.Sql;
  /** Creates the scratch database. */
  createDatabase(): Promise<void>;
  /** Registers a child so `cleanup()` (and the exit handler) stops it; returns it. */
  track<P extends Proc>(proc: P): P;
  /** SIGTERM (services drain and close their pools), then SIGKILL if it takes over 3 s. */
  stopChild(proc: Proc): Promise<void>;
  /** Stops tracked children, drops the database `with (force)`, ends `admin`, removes `dir`. Idempotent. */
  cleanup(): Promise<void>;
}

/**
 * Opens the scratch space. `name` (e.g. `'upload'`) goes into the directory and database names;
 * `adminUrl` is a PostgreSQL URL allowed to create and drop databases.
 */
export async function openScratch({ name, adminUrl }: { name?: string; adminUrl: string }): Promise<Scratch> {
  const tag = name ? `${name}-` : '';
  const dir = await mkdtemp(join(tmpdir(), `fip-bench-${tag}`));
  const databaseName = `fip_bench_${tag.replaceAll('-', '_')}${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`;
  const url = new URL(adminUrl);
  url.pathname = `/${databaseName}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });

  const children = new Set<Proc>();
  const track = <P extends Proc>(proc: P): P => {
    children.add(proc);
    void proc.exited.then(() => children.delete(proc));
    return proc;
  };
  const stopChild = async (proc: Proc): Promise<void> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    const timedOut = await Promise.race([proc.exited.then(() => false), Bun.sleep(3000).then(() => true)]);
    if (timedOut) {
      proc.kill('SIGKILL');
      await proc.exited;
    }
  };
  // Last resort when the bench itself dies: 'exit' handlers must be synchronous.
  process.on('exit', () => {
    for (const proc of children) proc.kill('SIGKILL');
  });

  let cleanedUp: Promise<void> | undefined;
  const cleanup = (): Promise<void> => {
    cleanedUp ??= (async () => {
      await Promise.all([...children].map(stopChild));
      // WITH (FORCE) ends sessions a killed child may have left behind.
      await admin.unsafe(`drop database if exists "${databaseName}" with (force)`).catch((err) => console.error('drop database:', err));
      await admin.end({ timeout: 5 });
      await rm(dir, { recursive: true, force: true });
    })();
    return cleanedUp;
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      void cleanup().finally(() => process.exit(130));
    });
  }

  const createDatabase = async () => {
    await admin.unsafe(`create database "${databaseName}"`);
  };
  return { dir, databaseName, databaseUrl: url.href, admin, createDatabase, track, stopChild, cleanup };
}
