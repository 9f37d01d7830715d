/**
 * pg_dump and pg_restore as child processes. The password never goes on the command line (other
 * users of the machine can read a process's arguments): it is taken out of the URL and handed over
 * in PGPASSWORD. A failure throws with the tool's own message.
 */
import { join } from 'node:path';

export interface PgTools {
  /** `pg_dump -Fc` of `what` into `file`, reading the exported `snapshot` when given. */
  dump(options: { url: string; file: string; what: { schema: string } | { table: string }; snapshot?: string }): Promise<void>;
  /** Restores a custom-format dump in one transaction (all or nothing), without owners or grants. */
  restore(options: { url: string; file: string }): Promise<void>;
}

export interface PgToolsOptions {
  /** Directory holding pg_dump and pg_restore; found on PATH when unset. */
  binDir?: string;
  /** Environment of the child processes (PATH, locale, PG* settings). */
  env: Record<string, string | undefined>;
}

/** Splits a postgres URL into a password-free connection string and the environment carrying the password. */
export function libpqConnection(url: string): { dbname: string; env: Record<string, string> } {
  const parsed = new URL(url);
  const env: Record<string, string> = {};
  if (parsed.password) {
    env.PGPASSWORD = decodeURIComponent(parsed.password);
    parsed.password = '';
  }
  return { dbname: parsed.toString(), env };
}

export function createPgTools(options: PgToolsOptions): PgTools {
  const bin = (name: string) => (options.binDir ? join(options.binDir, name) : name);

  async function run(tool: string, url: string, args: string[]): Promise<void> {
    const connection = libpqConnection(url);
    let child;
    try {
      child = Bun.spawn([bin(tool), '--no-password', `--dbname=${connection.dbname}`, ...args], {
        env: { ...options.env, ...connection.env },
        stdin: 'ignore',
        stdout: 'ignore',
        stderr: 'pipe',
      });
    } catch (err) {
      throw new Error(`${tool} could not be started (${(err as Error).message}); install the PostgreSQL client tools or set PG_BIN_DIR`);
    }
    const [code, stderr] = await Promise.all([child.exited, new Response(child.stderr).text()]);
    if (code !== 0) throw new Error(`${tool} failed (exit ${code}): ${stderr.trim().split('\n').slice(-5).join(' | ') || 'no message'}`);
  }

  return {
    dump({ url, file, what, snapshot }) {
      const selection = 'schema' in what ? `--schema=${what.schema}` : `--table=${what.table}`;
      // --strict-names: a schema or table that does not exist fails instead of giving an empty dump.
      return run('pg_dump', url, ['--format=custom', '--strict-names', selection, `--file=${file}`, ...(snapshot ? [`--snapshot=${snapshot}`] : [])]);
    },
    restore({ url, file }) {
      // Owners and grants are the source's roles, which a scratch or new server may not have: the
      // restoring role owns what it restores (restore as the service's own role for real recovery).
      return run('pg_restore', url, ['--no-owner', '--no-acl', '--single-transaction', '--exit-on-error', file]);
    },
  };
}
