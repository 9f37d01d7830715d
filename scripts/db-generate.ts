/** Generates drizzle-kit migrations for every service schema into db/migrations/<schema>/. */
import { resolve } from 'node:path';

const root = resolve(import.meta.dir, '..');
const schemas = ['users', 'registry', 'jobs', 'files', 'notify', 'monitor'];
const only = Bun.argv.slice(2);

for (const schema of only.length ? only : schemas) {
  const proc = Bun.spawnSync(
    ['node_modules/.bin/drizzle-kit', 'generate', '--dialect', 'postgresql', '--schema', `db/schema/${schema}.ts`, '--out', `db/migrations/${schema}`, ...(process.env.MIGRATION_NAME ? ['--name', process.env.MIGRATION_NAME] : [])],
    { cwd: root, stdout: 'inherit', stderr: 'inherit' },
  );
  if (proc.exitCode !== 0) process.exit(proc.exitCode ?? 1);
}
