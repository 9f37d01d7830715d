/** `npm run lint`: compose against the compose spec (dclint) and every Dockerfile (dockerfile-utils). */
import { Glob } from 'bun';
import { resolve } from 'node:path';

const root = resolve(import.meta.dir, '..');
const dockerfiles = [...new Glob('services/*/Dockerfile').scanSync({ cwd: root })].sort();
const commands = [
  ['node_modules/.bin/dclint', 'compose.yaml', '--max-warnings', '0'],
  ...dockerfiles.map((file) => ['node_modules/.bin/dockerfile-utils', 'lint', file]),
];

let failed = 0;
for (const command of commands) {
  const proc = Bun.spawnSync(command, { cwd: root, stdout: 'pipe', stderr: 'pipe' });
  const output = (proc.stdout.toString() + proc.stderr.toString()).trim();
  const ok = proc.exitCode === 0;
  if (!ok) failed += 1;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${command.slice(1).join(' ')}${output && !ok ? `\n${output}` : ''}`);
}
process.exit(failed === 0 ? 0 : 1);
