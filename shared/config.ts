/**
 * Environment parsing: each service declares a zod object of the variables it reads; `parseEnv`
 * validates once at startup and throws `ConfigError` with one line per bad key. Nothing else in the
 * platform reads process.env.
 */
import { z } from '@hono/zod-openapi';
import { resolve } from 'node:path';

export class ConfigError extends Error {
  readonly lines: string[];
  constructor(lines: string[]) {
    super(`invalid configuration:\n${lines.map((l) => `  ${l}`).join('\n')}`);
    this.name = 'ConfigError';
    this.lines = lines;
  }
}

export type Env = Record<string, string | undefined>;

/** Validates `env` against `schema`; empty strings count as unset so `FOO=` falls back to defaults. */
export function parseEnv<S extends z.ZodType>(schema: S, env: Env): z.infer<S> {
  const cleaned: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && value !== '') cleaned[key] = value;
  }
  const result = schema.safeParse(cleaned);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const key = issue.path.join('.') || '(env)';
    const got = cleaned[key];
    const shown = got === undefined ? 'unset' : `got ${JSON.stringify(redact(key, got))}`;
    return `${key}: ${issue.message} (${shown})`;
  });
  throw new ConfigError(lines);
}

function redact(key: string, value: string): string {
  if (/SECRET|TOKEN|PASSWORD|KEY/i.test(key)) return '***';
  return value.replace(/\/\/([^:@/]+):[^@/]+@/, '//$1:***@');
}

const REPO_ROOT = resolve(import.meta.dir, '..');

/** Variables every service understands. */
export const baseEnvSchema = z.object({
  HOST: z.string().default('0.0.0.0'),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
    .optional(),
  DATA_DIR: z.string().default(resolve(REPO_ROOT, 'data')),
  MIGRATIONS_DIR: z.string().default(resolve(REPO_ROOT, 'db/migrations')),
  REDIS_URL: z
    .string()
    .regex(/^(rediss?|https?):\/\//, 'must be a redis://, rediss:// or https:// URL')
    .optional(),
  REDIS_TOKEN: z.string().optional(),
  READY_TIMEOUT_MS: z.coerce.number().int().min(50).max(30_000).default(1000),
  SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(0).max(120_000).default(10_000),
  USER_SERVICE_URL: z.url({ protocol: /^https?$/ }).default('http://127.0.0.1:8001'),
  JWT_ISSUER: z.string().min(1).default('federated-imputation'),
  /** This service's secret for getting service tokens from user-service. */
  SERVICE_SECRET: z.string().min(16).optional(),
  INTROSPECTION_CACHE_MS: z.coerce.number().int().min(0).max(300_000).default(10_000),
  ORG_NAME: z.string().default('Federated Imputation Platform'),
  ORG_URL: z.url().default('https://github.com/federated-imputation'),
});

export type BaseEnv = z.infer<typeof baseEnvSchema>;

/** For services that call external imputation servers: off by default, so nothing leaves the machine unless configured (DESIGN §7). */
export const externalCallsEnv = {
  EXTERNAL_CALLS: z.stringbool().default(false),
};

/** The variable each platform service's base URL goes by, in every service that calls it (one map for the runners and tests that wire them). */
export const SERVICE_URL_VARIABLES: Readonly<Record<string, string>> = {
  'api-gateway': 'API_GATEWAY_URL',
  'user-service': 'USER_SERVICE_URL',
  'service-registry': 'SERVICE_REGISTRY_URL',
  'job-processor': 'JOB_PROCESSOR_URL',
  'file-manager': 'FILE_MANAGER_URL',
  notification: 'NOTIFICATION_URL',
  monitoring: 'MONITORING_URL',
};

/** Base URLs of the platform's services, for the services that call or list the others. */
const platformUrl = (port: number) => z.url({ protocol: /^https?$/ }).default(`http://127.0.0.1:${port}`);
export const platformUrlsEnv = {
  API_GATEWAY_URL: platformUrl(8000),
  SERVICE_REGISTRY_URL: platformUrl(8002),
  JOB_PROCESSOR_URL: platformUrl(8003),
  FILE_MANAGER_URL: platformUrl(8004),
  NOTIFICATION_URL: platformUrl(8005),
  MONITORING_URL: platformUrl(8006),
};

/** A service's env schema: the base variables plus `PORT`, defaulting to its well-known port. */
export function serviceEnvSchema(defaultPort: number) {
  return baseEnvSchema.extend({ PORT: z.coerce.number().int().min(0).max(65_535).default(defaultPort) });
}
