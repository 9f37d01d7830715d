/**
 * user-service built in-process on real dependencies (a test database migrated for `users`, the KV
 * from REDIS_URL or in memory, a secret box with a random key), with a logger that keeps every line
 * and a register of every secret a test handles, so a file can prove none of them was ever logged.
 * Also the pieces another service uses to authenticate against it over HTTP.
 */
import { createAuthenticator, remoteIntrospection, remoteKeys, type Authenticator } from '@shared/auth.ts';
import { createServiceApp, type AppEnv, type ServiceApp } from '@shared/app.ts';
import { parseEnv, serviceEnvSchema } from '@shared/config.ts';
import { createHttpClient } from '@shared/http-client.ts';
import type { Kv } from '@shared/kv.ts';
import { createKv } from '@shared/kv-factory.ts';
import { createLogger, type Logger } from '@shared/log.ts';
import { migrate } from '@shared/migrations.ts';
import { createSecretBox, type SecretBox } from '@shared/secret-box.ts';
import { createServiceAuth } from '@shared/service-auth.ts';
import { sql } from 'drizzle-orm';
import { createApp } from '../../services/user-service/src/app.ts';
import type { UserDomain, UserDomainConfig } from '../../services/user-service/src/domain.ts';
import { createTestDatabase, MIGRATIONS_DIR, type TestDatabase } from './test-database.ts';
import { TEST_ENCRYPTION_KEY } from './test-encryption-key.ts';
import { json } from './json.ts';

export const TEST_ISSUER = 'fip-test-issuer';
export const TEST_SERVICE = 'job-processor';
export const LOGIN_MAX_FAILURES = 3;
export const LOGIN_LOCKOUT_MS = 120_000;
export const LOGIN_IP_ATTEMPTS_PER_MINUTE = 5;

export interface Session {
  accessToken: string;
  refreshToken: string;
  tokenType: string;
  expiresIn: number;
  user: { id: string; username: string; email: string; roles: string[]; lastLoginAt: string | null } & Record<string, unknown>;
}

export interface TestUser {
  id: string;
  username: string;
  email: string;
  password: string;
}

export interface RequestOptions {
  method?: string;
  /** Sent as a JSON body with `content-type: application/json`. */
  json?: unknown;
  /** Sent as is (for malformed bodies). */
  body?: string;
  token?: string;
  headers?: Record<string, string>;
  /** The client address (via X-Forwarded-For, which the test config trusts); random when omitted. */
  ip?: string;
}

/** A random address per request keeps per-IP limits (kept in Redis across runs) out of the way. */
export function randomIp(): string {
  const byte = () => Math.floor(Math.random() * 254) + 1;
  return `10.${byte()}.${byte()}.${byte()}`;
}

export function uniqueName(prefix = 'u'): string {
  return `${prefix}${Bun.randomUUIDv7().replaceAll('-', '').slice(-12)}`;
}

/** A password the policy accepts and that contains nothing of the username. */
export function strongPassword(): string {
  return `plum violin harbour ${crypto.randomUUID().slice(0, 8)}`;
}

export interface UserServiceHarness {
  testDb: TestDatabase;
  app: ServiceApp;
  domain: UserDomain;
  kv: Kv;
  box: SecretBox;
  config: UserDomainConfig;
  logger: Logger;
  /** Every log line any app built by this harness wrote. */
  logLines: string[];
  serviceSecret: string;
  /** Registers values that must never show up in a log line. */
  remember(...values: string[]): void;
  /** Log lines that contain a remembered secret (empty when all is well). */
  leakedSecrets(): { secret: string; line: string }[];
  request(path: string, options?: RequestOptions, app?: ServiceApp): Promise<Response>;
  /** Registers a fresh user through the API. */
  register(overrides?: Partial<TestUser>): Promise<TestUser>;
  /** Logs in through the API and returns the session (throws unless 200). */
  login(login: string, password: string): Promise<Session>;
  /** A fresh user and a session for them. */
  signedInUser(): Promise<{ user: TestUser; session: Session }>;
  /** Builds another user-service app on the same database, KV and keys (e.g. with a different clock). */
  buildApp(overrides?: { now?: () => number }): { app: ServiceApp; domain: UserDomain };
  /** Runs SQL on the test database and returns the rows. */
  query<T = Record<string, unknown>>(statement: ReturnType<typeof sql>): Promise<T[]>;
  close(): Promise<void>;
}

/** Builds user-service with real dependencies; call `close()` in afterAll. */
export async function createUserServiceHarness(): Promise<UserServiceHarness> {
  const testDb = await createTestDatabase();
  await migrate(testDb.database, { schema: 'users', migrationsDir: MIGRATIONS_DIR });
  // Without DATABASE_URL every test file shares one embedded database, and each seals its signing keys
  // with its own random key: start (and leave) with no active signing key, so each file's user-service
  // creates one it can open instead of failing on another file's.
  const retireSigningKeys = () => testDb.database.db.execute(sql`update users.signing_keys set retired_at = now() where retired_at is null`);
  if (!testDb.url) await retireSigningKeys();
  const kv = await createKv({ url: process.env.REDIS_URL });
  const box = await createSecretBox([TEST_ENCRYPTION_KEY]);
  const logLines: string[] = [];
  const logger = createLogger({ level: 'debug', sink: (line) => logLines.push(line) });
  const serviceSecret = `svc-secret-${crypto.randomUUID()}`;
  const secrets = new Set<string>([serviceSecret]);
  const config: UserDomainConfig = {
    issuer: TEST_ISSUER,
    accessTokenTtlSeconds: 900,
    refreshTokenTtlMs: 30 * 86_400_000,
    serviceSecrets: new Map([[TEST_SERVICE, serviceSecret]]),
    trustForwardedFor: true,
    login: { maxFailures: LOGIN_MAX_FAILURES, lockoutMs: LOGIN_LOCKOUT_MS, ipAttemptsPerMinute: LOGIN_IP_ATTEMPTS_PER_MINUTE },
  };
  const kit = { logger, readyTimeoutMs: 1000, organization: { name: 'Test', url: 'https://example.org' } };
  const buildApp = (overrides: { now?: () => number } = {}) => createApp({ ...kit, database: testDb.database, kv, box, config, ...overrides });
  const { app, domain } = buildApp();

  const remember = (...values: string[]) => {
    for (const value of values) if (value) secrets.add(value);
  };

  async function request(path: string, options: RequestOptions = {}, target: ServiceApp = app): Promise<Response> {
    const headers: Record<string, string> = { 'x-forwarded-for': options.ip ?? randomIp(), ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    let body: string | undefined = options.body;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers['content-type'] = 'application/json';
    } else if (body !== undefined) {
      headers['content-type'] ??= 'application/json';
    }
    return target.request(path, { method: options.method ?? (body === undefined ? 'GET' : 'POST'), headers, body });
  }

  async function register(overrides: Partial<TestUser> = {}): Promise<TestUser> {
    const username = overrides.username ?? uniqueName();
    const email = overrides.email ?? `${username}@example.org`;
    const password = overrides.password ?? strongPassword();
    remember(password);
    const res = await request('/auth/register', { json: { username, email, password, firstName: 'Ada', lastName: 'Lovelace' } });
    if (res.status !== 201) throw new Error(`register answered ${res.status}: ${await res.text()}`);
    const user = await json(res);
    return { id: user.id, username, email, password };
  }

  async function login(loginName: string, password: string): Promise<Session> {
    remember(password);
    const res = await request('/auth/login', { json: { login: loginName, password } });
    if (res.status !== 200) throw new Error(`login answered ${res.status}: ${await res.text()}`);
    const session = (await json(res)) as Session;
    remember(session.accessToken, session.refreshToken);
    return session;
  }

  return {
    testDb,
    app,
    domain,
    kv,
    box,
    config,
    logger,
    logLines,
    serviceSecret,
    remember,
    leakedSecrets() {
      const leaks: { secret: string; line: string }[] = [];
      for (const line of logLines) for (const secret of secrets) if (line.includes(secret)) leaks.push({ secret, line });
      return leaks;
    },
    request,
    register,
    login,
    async signedInUser() {
      const user = await register();
      return { user, session: await login(user.username, user.password) };
    },
    buildApp,
    async query<T>(statement: ReturnType<typeof sql>) {
      const result = await testDb.database.db.execute(statement);
      return (Array.isArray(result) ? result : (result as { rows: unknown[] }).rows) as T[];
    },
    async close() {
      if (!testDb.url) await retireSigningKeys();
      await kv.close();
      await testDb.drop();
    },
  };
}

/** user-service listening on a real port, as other services reach it. */
export function serveUserService(app: ServiceApp): { url: string; stop(): Promise<void> } {
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: app.fetch });
  return { url: `http://127.0.0.1:${server.port}`, stop: () => server.stop(true) };
}

/**
 * The authenticator another service builds (`createServiceAuth`), optionally with a short revocation
 * cache: `createServiceAuth` keeps the default, so for that bound the same parts are assembled here.
 */
export function remoteAuthenticator(
  userServiceUrl: string,
  kv: Kv,
  secret: string,
  options: { introspectionCacheMs?: number; revocationCacheMs?: number } = {},
): Authenticator {
  const env = parseEnv(serviceEnvSchema(0), {
    USER_SERVICE_URL: userServiceUrl,
    JWT_ISSUER: TEST_ISSUER,
    SERVICE_SECRET: secret,
    INTROSPECTION_CACHE_MS: String(options.introspectionCacheMs ?? 10_000),
  });
  const serviceAuth = createServiceAuth(TEST_SERVICE, env, kv);
  if (options.revocationCacheMs === undefined) return serviceAuth.authenticator;
  return createAuthenticator({
    keys: remoteKeys(env.USER_SERVICE_URL),
    issuer: env.JWT_ISSUER,
    kv,
    introspect: remoteIntrospection(createHttpClient({ service: 'user-service', baseUrl: env.USER_SERVICE_URL, timeoutMs: 3_000 }), serviceAuth.credential),
    introspectionCacheMs: env.INTROSPECTION_CACHE_MS,
    revocationCacheMs: options.revocationCacheMs,
  });
}

/** A tiny protected service: GET /things reads, POST /things writes; both answer with the identity. */
export function tinyProtectedApp(authenticator: Authenticator, logger: Logger): ServiceApp {
  const app = createServiceApp({ name: 'tiny-service', version: '0.0.1', description: 'A protected test service', logger, auth: { authenticator } });
  const identity = (c: { get: (key: 'identity') => AppEnv['Variables']['identity'] }) => {
    const id = c.get('identity');
    return { subject: id.subject, kind: id.kind, roles: id.roles, via: id.via };
  };
  app.get('/things', (c) => c.json({ read: true, identity: identity(c) }, 200));
  app.post('/things', (c) => c.json({ written: true, identity: identity(c) }, 200));
  return app;
}
