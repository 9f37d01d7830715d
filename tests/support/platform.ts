/**
 * The whole platform in this process: the six database services and the gateway, each built from its
 * definition and served by `startService` on a loopback port, wired to each other as in production
 * (service secrets, upstream URLs). One test database (PGlite, or a scratch PostgreSQL database when
 * DATABASE_URL is set), the KV named by REDIS_URL (in memory when unset), a temp DATA_DIR.
 */
import { parseEnv, SERVICE_URL_VARIABLES, type BaseEnv } from '@shared/config.ts';
import { createKv } from '@shared/kv-factory.ts';
import type { Kv } from '@shared/kv.ts';
import { createLogger } from '@shared/log.ts';
import { startService, type RunningService } from '@shared/serve.ts';
import type { ServiceDefinition } from '@shared/service.ts';
import { randomToken } from '@shared/token-hash.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SERVICES } from '../../services/catalog.ts';
import { secretVariable } from '../../services/user-service/src/service.ts';
import { json } from './json.ts';
import { createTestDatabase, MIGRATIONS_DIR, type TestDatabase } from './test-database.ts';
import { TEST_ENCRYPTION_KEY } from './test-encryption-key.ts';

export interface PlatformOptions {
  /** Extra variables for the gateway (e.g. rate limits). */
  gatewayEnv?: Record<string, string>;
}

export interface SignedInUser {
  username: string;
  accessToken: string;
}

export interface Platform {
  /** The gateway's base URL, `http://127.0.0.1:<port>`. */
  url: string;
  services: readonly RunningService[];
  /** Registers a new user through the gateway and signs in; fails the test on any other status. */
  signIn(username: string): Promise<SignedInUser>;
  /** Stops every service, then closes the KV and drops the database and DATA_DIR. */
  stop(): Promise<void>;
}

/**
 * A service's parsed env for an in-process test: loopback on a free port, `dataDir`, the repo's
 * migrations, the test encryption key and a short readiness timeout, then `extra`.
 */
export function testServiceEnv(definition: ServiceDefinition, dataDir: string, extra: Record<string, string> = {}): BaseEnv & { PORT: number } {
  return parseEnv(definition.envSchema, {
    HOST: '127.0.0.1',
    PORT: '0',
    DATA_DIR: dataDir,
    MIGRATIONS_DIR,
    READY_TIMEOUT_MS: '1500',
    ENCRYPTION_KEYS: `${TEST_ENCRYPTION_KEY.id}:${Buffer.from(TEST_ENCRYPTION_KEY.key).toString('base64')}`,
    ...extra,
  }) as BaseEnv & { PORT: number };
}

/** Starts user-service first (the others verify tokens against it), then the other five, then the gateway. */
export async function startPlatform(options: PlatformOptions = {}): Promise<Platform> {
  const logger = createLogger({ level: 'silent' });
  const testDb: TestDatabase = await createTestDatabase();
  const dataDir = await mkdtemp(join(tmpdir(), 'fip-platform-'));
  const kv: Kv = await createKv({ url: process.env.REDIS_URL });
  const running: RunningService[] = [];
  const stop = async () => {
    await Promise.all(running.map((service) => service.stop(100)));
    await kv.close();
    await testDb.drop();
    await rm(dataDir, { recursive: true, force: true });
  };

  const envFor = (definition: ServiceDefinition, extra: Record<string, string>) =>
    testServiceEnv(definition, dataDir, {
      // Per-address counters live in the KV, which is the machine's shared Redis when REDIS_URL is set,
      // and every test user comes from 127.0.0.1: the limits themselves are tested in their own suites.
      REGISTRATIONS_PER_HOUR_PER_IP: '100000',
      LOGIN_IP_ATTEMPTS_PER_MINUTE: '10000',
      RATE_LIMIT_AUTH: '10000/1m',
      ...extra,
    });

  try {
    const secrets = new Map(SERVICES.filter((d) => d.name !== 'user-service').map((d) => [d.name, randomToken(24)]));
    const upstreams: Record<string, string> = {};
    // SERVICES lists user-service first among the database services.
    for (const definition of SERVICES.filter((d) => d.schema !== null)) {
      const extra =
        definition.name === 'user-service'
          ? Object.fromEntries([...secrets].map(([name, secret]) => [secretVariable(name), secret]))
          : { SERVICE_SECRET: secrets.get(definition.name)!, USER_SERVICE_URL: upstreams.USER_SERVICE_URL! };
      const service = await startService(definition, { env: envFor(definition, extra), kv, logger, database: testDb.database });
      running.push(service);
      upstreams[SERVICE_URL_VARIABLES[definition.name]!] = service.url;
    }
    const gatewayDefinition = SERVICES.find((d) => d.name === 'api-gateway')!;
    const gateway = await startService(gatewayDefinition, {
      env: envFor(gatewayDefinition, { ...upstreams, SERVICE_SECRET: secrets.get('api-gateway')!, ...options.gatewayEnv }),
      kv,
      logger,
    });
    running.push(gateway);

    const post = (path: string, body: unknown) =>
      fetch(`${gateway.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return {
      url: gateway.url,
      services: running,
      async signIn(username) {
        const password = 'Platform-Test-Passphrase-7';
        const registered = await post('/api/auth/register', { username, email: `${username}@example.org`, password, firstName: 'P', lastName: 'T' });
        if (registered.status !== 201) throw new Error(`register ${username}: ${registered.status} ${await registered.text()}`);
        const login = await post('/api/auth/login', { login: username, password });
        if (login.status !== 200) throw new Error(`login ${username}: ${login.status} ${await login.text()}`);
        return { username, accessToken: (await json(login)).accessToken };
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
