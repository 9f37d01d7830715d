/**
 * `bun bench/auth.ts`: what authentication costs. Login latency (argon2id dominates) through the
 * user-service app in-process on a scratch PostgreSQL database, and per-request token verification:
 * an access token (EdDSA signature + revocation mark), a personal API token with its introspection
 * cached (other services), and one checked against the database (user-service itself).
 * Prints a table; asserts nothing.
 */
import { createAuthenticator } from '@shared/auth.ts';
import { openDatabase } from '@shared/db.ts';
import { createKv } from '@shared/kv-factory.ts';
import { createLogger } from '@shared/log.ts';
import { migrate } from '@shared/migrations.ts';
import { createSecretBox } from '@shared/secret-box.ts';
import { resolve } from 'node:path';
import { createApp } from '../services/user-service/src/app.ts';
import { openScratch } from './scratch.ts';

const ADMIN_URL = process.env.BENCH_ADMIN_URL ?? 'postgres://root@127.0.0.1:5432/postgres';
const REDIS_URL = Bun.argv.includes('--redis') ? (process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379') : undefined;
const LOGINS = 60;
const VERIFICATIONS = 20_000;

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function timeEach(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return out.sort((a, b) => a - b);
}

async function perOp(n: number, fn: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 500; i++) await fn();
  const t = performance.now();
  for (let i = 0; i < n; i++) await fn();
  return ((performance.now() - t) * 1000) / n;
}

const scratch = await openScratch({ name: 'auth', adminUrl: ADMIN_URL });
await scratch.createDatabase();
const database = await openDatabase({ url: scratch.databaseUrl });
const kv = await createKv({ url: REDIS_URL });
try {
  await migrate(database, { schema: 'users', migrationsDir: resolve(import.meta.dir, '../db/migrations') });
  const { app, domain } = createApp({
    logger: createLogger({ level: 'silent' }),
    readyTimeoutMs: 1000,
    organization: { name: 'bench', url: 'https://example.org' },
    database,
    kv,
    box: await createSecretBox([{ id: 'bench', key: crypto.getRandomValues(new Uint8Array(32)) }]),
    config: {
      issuer: 'federated-imputation',
      accessTokenTtlSeconds: 900,
      refreshTokenTtlMs: 86_400_000,
      serviceSecrets: new Map(),
      trustForwardedFor: false,
      registrationsPerHourPerIp: 1000,
      login: { maxFailures: 1000, lockoutMs: 60_000, ipAttemptsPerMinute: 100_000 },
    },
  });
  const post = (path: string, body: unknown, token?: string) =>
    app.request(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
  const password = 'Bench-Passphrase-Genotypes-77';
  await post('/auth/register', { username: 'bencher', email: 'bencher@example.org', password, firstName: 'B', lastName: 'E' });

  const logins = await timeEach(LOGINS, async () => {
    const res = await post('/auth/login', { login: 'bencher', password });
    if (res.status !== 200) throw new Error(`login answered ${res.status}`);
    await res.arrayBuffer();
  });
  const hashes = await timeEach(20, () => Bun.password.hash(password, { algorithm: 'argon2id', memoryCost: 19_456, timeCost: 2 }));

  const session = (await (await post('/auth/login', { login: 'bencher', password })).json()) as { accessToken: string };
  const apiToken = ((await (await post('/users/me/api-tokens', { name: 'bench' }, session.accessToken)).json()) as { token: string }).token;
  const cachedRemote = createAuthenticator({
    keys: domain.keys.keySet,
    issuer: 'federated-imputation',
    kv,
    introspect: (t) => domain.apiTokens.introspect(t),
    introspectionCacheMs: 60_000,
  });
  const accessHeader = `Bearer ${session.accessToken}`;
  const apiHeader = `Bearer ${apiToken}`;
  const rows: [string, string][] = [
    ['access token (EdDSA verify + revocation mark, cached 5 s)', `${(await perOp(VERIFICATIONS, () => cachedRemote.authenticate(accessHeader))).toFixed(1)} µs`],
    ['access token, user-service (revocation mark read every time)', `${(await perOp(VERIFICATIONS, () => domain.authenticator.authenticate(accessHeader))).toFixed(1)} µs`],
    ['API token, other services (introspection cached)', `${(await perOp(VERIFICATIONS, () => cachedRemote.authenticate(apiHeader))).toFixed(1)} µs`],
    ['API token, user-service (database lookup)', `${(await perOp(2_000, () => domain.authenticator.authenticate(apiHeader))).toFixed(1)} µs`],
  ];

  console.log(`Bun ${Bun.version}, PostgreSQL scratch database ${scratch.databaseName}, KV ${kv.kind}; argon2id m=19 MiB t=2 p=1.\n`);
  console.log('| login (POST /auth/login, in-process) | p50 ms | p90 ms | p99 ms |');
  console.log('|---|---|---|---|');
  console.log(`| ${LOGINS} sequential logins | ${percentile(logins, 50).toFixed(1)} | ${percentile(logins, 90).toFixed(1)} | ${percentile(logins, 99).toFixed(1)} |`);
  console.log(`| argon2id hash alone (20) | ${percentile(hashes, 50).toFixed(1)} | ${percentile(hashes, 90).toFixed(1)} | ${percentile(hashes, 99).toFixed(1)} |`);
  console.log('\n| verification per request | cost |');
  console.log('|---|---|');
  for (const [label, value] of rows) console.log(`| ${label} | ${value} |`);
} finally {
  await kv.close();
  await database.close();
  await scratch.cleanup();
}
