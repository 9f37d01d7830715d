/**
 * Fixes applied to installed dependencies, run after every install (`postinstall`, and a step of each
 * Dockerfile's build stage, which installs with --ignore-scripts). Plain JavaScript for Node and Bun,
 * no dependencies. Each fix names the exact version it was written for and the text it replaces; a
 * version or text that does not match stops the install, so an upgrade cannot silently drop a fix.
 * Idempotent: a file already patched is left alone.
 *
 * postgres@3.4.9 (the newest release; upstream issues porsager/postgres#1066, #1154, #1208, fix PRs
 * unmerged): when a connection is cut inside a transaction, the ROLLBACK is buffered and then written
 * from a timer on the closed socket (`socket` is null), throwing a TypeError that ends the process.
 * A PostgreSQL restart could therefore crash any service with a transaction in flight
 * (tests/e2e/fault-postgres.test.ts). The fix fails the buffered write with CONNECTION_CLOSED instead,
 * and drops bytes buffered for a closed session so they are not sent on the next one.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MARKER = '/* fip-patch: closed-socket write */';
const root = join(dirname(fileURLToPath(import.meta.url)), '..');

const FIXES = [
  {
    pkg: 'postgres',
    version: '3.4.9',
    files: ['src/connection.js', 'cjs/src/connection.js'],
    edits: [
      {
        find: '  function nextWrite(fn) {\n    const x = socket.write(chunk, fn)\n',
        replace:
          `  function nextWrite(fn) {\n    ${MARKER}\n    if (socket === null) {\n` +
          '      nextWriteTimer !== null && clearImmediate(nextWriteTimer)\n' +
          '      chunk = nextWriteTimer = null\n' +
          "      error(Errors.connection('CONNECTION_CLOSED', options))\n" +
          '      return false\n    }\n    const x = socket.write(chunk, fn)\n',
      },
      {
        find: '    incomings = null\n    clearImmediate(nextWriteTimer)\n    socket.removeListener',
        replace: '    incomings = null\n    clearImmediate(nextWriteTimer)\n    chunk = nextWriteTimer = null\n    socket.removeListener',
      },
    ],
  },
];

let failed = false;
for (const fix of FIXES) {
  const dir = join(root, 'node_modules', fix.pkg);
  let version;
  try {
    version = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version;
  } catch {
    continue; // not installed here (e.g. a service image without it)
  }
  if (version !== fix.version) {
    console.error(`patches: ${fix.pkg} is ${version}, the fix was written for ${fix.version}: review patches/apply-patches.mjs`);
    failed = true;
    continue;
  }
  for (const file of fix.files) {
    const path = join(dir, file);
    let text = readFileSync(path, 'utf8');
    if (text.includes(MARKER)) continue;
    for (const edit of fix.edits) {
      if (!text.includes(edit.find)) {
        console.error(`patches: ${fix.pkg}/${file} does not contain the text to replace: review patches/apply-patches.mjs`);
        failed = true;
        continue;
      }
      text = text.replace(edit.find, edit.replace);
    }
    writeFileSync(path, text);
  }
}
process.exit(failed ? 1 : 0);
