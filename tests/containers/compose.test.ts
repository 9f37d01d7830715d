/**
 * compose.yaml, checked without a Docker engine: dclint passes with no warnings, and the wiring is
 * what the design says — one port per service (compose, Dockerfile and definition agree), only the
 * gateway published, every service waiting for healthy Postgres/Redis as it needs, the gateway for
 * the six services, one database per service created by db/init, memory limits, secrets from env.
 */
import { describe, expect, it } from 'bun:test';
import { DockerfileParser, Env, From } from 'dockerfile-ast';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SERVICES } from '../../services/catalog.ts';

const ROOT = resolve(import.meta.dir, '../..');

type EnvValue = string | number | boolean | null;
interface ComposeService {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  profiles?: string[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  environment?: string[] | Record<string, EnvValue>;
  ports?: Array<string | { target?: number; published?: string | number; host_ip?: string }>;
  expose?: Array<string | number>;
  volumes?: Array<string | { type?: string; source?: string; target?: string }>;
  healthcheck?: { test?: string | string[]; disable?: boolean };
  restart?: string;
  mem_limit?: string;
  deploy?: { resources?: { limits?: { memory?: string } } };
}
interface ComposeFile {
  version?: string;
  name?: string;
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

const composeText = readFileSync(join(ROOT, 'compose.yaml'), 'utf8');
const compose = Bun.YAML.parse(composeText) as ComposeFile;
const initScript = readFileSync(join(ROOT, 'db/init/01-databases.sh'), 'utf8');

function service(name: string): ComposeService {
  const found = compose.services[name];
  if (!found) throw new Error(`compose.yaml has no service ${name}`);
  return found;
}

function environment(s: ComposeService): Record<string, string> {
  const env = s.environment ?? {};
  if (Array.isArray(env)) return Object.fromEntries(env.map((entry) => [entry.split('=')[0]!, entry.slice(entry.indexOf('=') + 1)]));
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === null ? '' : String(v)]));
}

function dependencies(s: ComposeService): Record<string, string> {
  const deps = s.depends_on ?? {};
  if (Array.isArray(deps)) return Object.fromEntries(deps.map((d) => [d, 'service_started']));
  return Object.fromEntries(Object.entries(deps).map(([k, v]) => [k, v.condition ?? 'service_started']));
}

/** `[host_ip:]published:target[/proto]` → its parts. */
function portMapping(entry: NonNullable<ComposeService['ports']>[number]): { hostIp?: string; published: string; target: string } {
  if (typeof entry !== 'string') return { hostIp: entry.host_ip, published: String(entry.published ?? ''), target: String(entry.target ?? '') };
  const parts = entry.replace(/\/(tcp|udp)$/, '').split(':');
  const target = parts.pop() ?? '';
  const published = parts.pop() ?? '';
  return { hostIp: parts.pop(), published, target };
}

/** The runtime stage's ENV of a service's Dockerfile. */
function imageEnv(name: string): Record<string, string> {
  const ast = DockerfileParser.parse(readFileSync(join(ROOT, 'services', name, 'Dockerfile'), 'utf8'));
  const env: Record<string, string> = {};
  for (const instruction of ast.getInstructions()) {
    if (instruction instanceof From) for (const key of Object.keys(env)) delete env[key];
    if (instruction instanceof Env) for (const p of instruction.getProperties()) env[p.getName()] = p.getUnescapedValue() ?? '';
  }
  return env;
}

const memoryLimit = (s: ComposeService) => s.deploy?.resources?.limits?.memory ?? s.mem_limit;
const envKey = (serviceName: string) => `${serviceName.toUpperCase().replaceAll('-', '_')}_URL`;
const gateway = SERVICES.find((s) => s.name === 'api-gateway')!;
const behindGateway = SERVICES.filter((s) => s !== gateway);

describe('compose.yaml', () => {
  it('passes dclint with the project configuration and no warnings', () => {
    const lint = Bun.spawnSync([join(ROOT, 'node_modules/.bin/dclint'), 'compose.yaml', '--config', '.dclintrc', '--max-warnings', '0'], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '1' },
    });
    expect({ exitCode: lint.exitCode, output: lint.stdout.toString() + lint.stderr.toString() }).toMatchObject({ exitCode: 0 });
  });

  it('has no version key and names the project', () => {
    expect(compose.version).toBeUndefined();
    expect(compose.name).toBe('federated-imputation');
  });

  it('builds each of the seven services from its own Dockerfile at the repository root', () => {
    for (const definition of SERVICES) {
      const s = service(definition.name);
      expect(s.build).toEqual({ context: '.', dockerfile: `services/${definition.name}/Dockerfile` });
      expect(s.image).toBeUndefined();
    }
  });

  it('publishes only the gateway, on 8000:8000', () => {
    const publishing = Object.entries(compose.services).filter(([, s]) => (s.ports ?? []).length > 0).map(([name]) => name);
    expect(publishing).toEqual([gateway.name]);
    expect(service(gateway.name).ports!.map(portMapping).map(({ published, target }) => `${published}:${target}`)).toEqual([`${gateway.port}:${gateway.port}`]);
  });

  for (const definition of SERVICES) {
    it(`${definition.name}: compose's port, its Dockerfile's ENV PORT and its definition's port are all ${definition.port}`, () => {
      const s = service(definition.name);
      expect(imageEnv(definition.name).PORT).toBe(String(definition.port));
      expect(environment(s).PORT).toBeUndefined(); // the image's ENV PORT is the one source of truth
      if (definition === gateway) {
        expect(s.ports!.map((p) => portMapping(p).target)).toEqual([String(definition.port)]);
      } else {
        expect((s.expose ?? []).map(String)).toEqual([String(definition.port)]);
      }
    });

    it(`${definition.name}: keeps its image's HEALTHCHECK`, () => {
      expect(service(definition.name).healthcheck).toBeUndefined();
    });

    it(`${definition.name}: waits for healthy ${definition.schema ? 'postgres and redis' : 'redis'}${definition === gateway ? ' and the six services' : ''}`, () => {
      const s = service(definition.name);
      const env = environment(s);
      const expected: Record<string, string> = {};
      if (definition.schema) expected.postgres = 'service_healthy';
      if (/^redis:\/\/redis:/.test(env.REDIS_URL?.replace(/^\$\{[A-Z_]+:-(.*)\}$/, '$1') ?? '')) expected.redis = 'service_healthy';
      if (definition === gateway) for (const other of behindGateway) expected[other.name] = 'service_healthy';
      expect(expected.redis).toBe('service_healthy'); // every service is given the compose Redis
      expect(dependencies(s)).toEqual(expected);
      if (definition.schema) expect(env.DATABASE_URL).toMatch(/^postgres:\/\/[^@]+@postgres:5432\//);
      else expect(env.DATABASE_URL).toBeUndefined();
    });
  }

  it('points the gateway at each service by its compose name and port', () => {
    const env = environment(service(gateway.name));
    const schemaKeys = Object.keys((gateway.envSchema as unknown as { shape: Record<string, unknown> }).shape);
    for (const definition of behindGateway) {
      expect(schemaKeys).toContain(envKey(definition.name));
      expect(env[envKey(definition.name)]).toBe(`http://${definition.name}:${definition.port}`);
    }
  });

  it('gives each database service its own database, created by db/init for the role in its URL', () => {
    const databases = behindGateway.filter((d) => d.schema !== null).map((definition) => {
      const url = environment(service(definition.name)).DATABASE_URL!.replace(/\$\{[^}]+\}/g, 'x');
      const parsed = new URL(url);
      expect(initScript).toMatch(new RegExp(`CREATE ROLE ${parsed.username} LOGIN`));
      expect(initScript).toMatch(new RegExp(`CREATE DATABASE ${parsed.pathname.slice(1)} OWNER ${parsed.username};`));
      return parsed.pathname;
    });
    expect(new Set(databases).size).toBe(databases.length);
    expect(databases).toHaveLength(6);
  });

  it('runs PostgreSQL 15 with a TCP pg_isready healthcheck, a data volume and db/init as its init scripts', () => {
    const postgres = service('postgres');
    expect(postgres.image).toBe('postgres:15-alpine');
    expect(postgres.healthcheck?.test).toContain('pg_isready');
    expect(postgres.healthcheck?.test).toContain('--host=127.0.0.1');
    expect(postgres.volumes).toContain('./db/init:/docker-entrypoint-initdb.d:ro');
    expect(postgres.volumes?.some((v) => typeof v === 'string' && v.endsWith(':/var/lib/postgresql/data'))).toBe(true);
  });

  it('runs Redis 7 with a redis-cli ping healthcheck', () => {
    const redis = service('redis');
    expect(redis.image).toBe('redis:7-alpine');
    expect([redis.healthcheck?.test ?? []].flat().join(' ')).toContain('redis-cli ping');
  });

  it('offers the Upstash REST path through SRH, only under the rest-redis profile', () => {
    const srh = service('srh');
    expect(srh.profiles).toEqual(['rest-redis']);
    expect(srh.image).toMatch(/^hiett\/serverless-redis-http:\d/);
    const env = environment(srh);
    expect(env.SRH_MODE).toBe('env');
    expect(env.SRH_CONNECTION_STRING).toBe('redis://redis:6379');
    // SRH checks the very token the services send.
    expect(env.SRH_TOKEN).toBe(environment(service(gateway.name)).REDIS_TOKEN!);
    expect(dependencies(srh)).toEqual({ redis: 'service_healthy' });
  });

  it('limits the memory of every container and restarts each unless stopped', () => {
    for (const [name, s] of Object.entries(compose.services)) {
      expect({ name, memory: memoryLimit(s) }).toEqual({ name, memory: expect.stringMatching(/^\d+[mg]$/) });
      expect({ name, restart: s.restart }).toEqual({ name, restart: 'unless-stopped' });
    }
    for (const definition of SERVICES) expect(memoryLimit(service(definition.name))).toBe('128m');
  });

  it("keeps file-manager's storage on a named volume at the image's STORAGE_DIR", () => {
    const storageDir = imageEnv('file-manager').STORAGE_DIR;
    expect(storageDir).toBeDefined();
    const mount = service('file-manager').volumes?.find((v) => typeof v === 'string' && v.endsWith(`:${storageDir}`));
    expect(mount).toBeDefined();
    const volumeName = (mount as string).split(':')[0]!;
    expect(Object.keys(compose.volumes ?? {})).toContain(volumeName);
  });

  it('takes every secret from the environment: passwords required, nothing literal', () => {
    const secretish = /PASSWORD|TOKEN|SECRET|KEY/;
    const interpolated = /^\$\{[A-Z][A-Z0-9_]*(:\?[^}]*|:-)\}$/;
    for (const [name, s] of Object.entries(compose.services)) {
      for (const [key, value] of Object.entries(environment(s))) {
        if (secretish.test(key)) expect({ name, key, value }).toEqual({ name, key, value: expect.stringMatching(interpolated) });
        if (/^[a-z]+:\/\/[^/@]*:[^/@]*@/.test(value)) {
          const password = /^[a-z]+:\/\/[^/:@]*:([^@]*)@/.exec(value)![1]!;
          expect({ name, key, password }).toEqual({ name, key, password: expect.stringMatching(/^\$\{[A-Z_]+:\?[^}]*\}$/) });
        }
      }
    }
    expect(environment(service('postgres')).POSTGRES_PASSWORD).toMatch(/^\$\{POSTGRES_PASSWORD:\?/);
    expect(initScript).not.toMatch(/PASSWORD\s+'[^']/); // the init script reads the password from env
  });
});
