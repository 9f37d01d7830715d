/**
 * Command-line and environment parsing shared by backup, restore and migrate. The environment is
 * validated once with zod (shared/config.ts conventions); flags with node:util's parseArgs. Which
 * databases to use is decided here, in one place, for all three commands:
 *
 *   --database <schema>=<url>   one schema's database (repeatable)           highest precedence
 *   <SCHEMA>_DATABASE_URL       e.g. USERS_DATABASE_URL, FILES_DATABASE_URL
 *   --database-url <url>        every schema not named above
 *   DATABASE_URL                the same, from the environment
 *   (none of these)             the embedded PGlite under DATA_DIR/pglite (standalone)
 */
import { z } from '@hono/zod-openapi';
import { baseEnvSchema, ConfigError, parseEnv, type Env } from '@shared/config.ts';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { join, resolve } from 'node:path';
import { isServiceSchema, SERVICE_SCHEMAS, type ServiceSchema } from './platform-schemas.ts';

/** Bad flags or variables: the command prints the message and its usage, and exits 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

const postgresUrl = z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL');

/** `USERS_DATABASE_URL`, `REGISTRY_DATABASE_URL`, ... */
export function schemaUrlVariable(schema: ServiceSchema): string {
  return `${schema.toUpperCase()}_DATABASE_URL`;
}

const operationsEnvSchema = baseEnvSchema
  .pick({ DATABASE_URL: true, DATA_DIR: true, MIGRATIONS_DIR: true })
  .extend({
    /** file-manager's storage root; file-manager's own default when unset. */
    STORAGE_DIR: z.string().optional(),
    /** Where pg_dump / pg_restore live when not on PATH (e.g. /usr/lib/postgresql/16/bin). */
    PG_BIN_DIR: z.string().optional(),
    ...Object.fromEntries(SERVICE_SCHEMAS.map((schema) => [schemaUrlVariable(schema), postgresUrl.optional()])),
  });

export interface OperationsEnv {
  DATABASE_URL?: string;
  DATA_DIR: string;
  MIGRATIONS_DIR: string;
  STORAGE_DIR?: string;
  PG_BIN_DIR?: string;
  schemaUrls: Partial<Record<ServiceSchema, string>>;
}

/** Validates the variables the operations commands read; a bad one is a UsageError naming it. */
export function parseOperationsEnv(env: Env): OperationsEnv {
  try {
    const parsed = parseEnv(operationsEnvSchema, env) as Record<string, string | undefined>;
    const schemaUrls: Partial<Record<ServiceSchema, string>> = {};
    for (const schema of SERVICE_SCHEMAS) {
      const url = parsed[schemaUrlVariable(schema)];
      if (url) schemaUrls[schema] = url;
    }
    return {
      DATABASE_URL: parsed.DATABASE_URL,
      DATA_DIR: resolve(parsed.DATA_DIR!),
      MIGRATIONS_DIR: resolve(parsed.MIGRATIONS_DIR!),
      STORAGE_DIR: parsed.STORAGE_DIR ? resolve(parsed.STORAGE_DIR) : undefined,
      PG_BIN_DIR: parsed.PG_BIN_DIR,
      schemaUrls,
    };
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
}

/** parseArgs in strict mode, with its errors turned into UsageErrors. */
/** The flags that say where the databases are (backup, migrate), and --help. */
export const DATABASE_FLAG_OPTIONS = {
  'database-url': { type: 'string' },
  database: { type: 'string', multiple: true },
  'data-dir': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export function parseFlags<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T, allowPositionals = false) {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export type DatabaseTargets =
  | { kind: 'postgres'; urls: Record<ServiceSchema, string> }
  | { kind: 'pglite'; dataDir: string; pgliteDir: string };

export interface DatabaseFlags {
  /** `--database-url`: every schema not named otherwise. */
  databaseUrl?: string;
  /** `--database <schema>=<url>` values. */
  database?: string[];
  /** `--data-dir`: overrides DATA_DIR. */
  dataDir?: string;
}

/** Decides where each schema lives (see the header for the precedence). */
export function resolveDatabaseTargets(flags: DatabaseFlags, env: OperationsEnv): DatabaseTargets {
  const named = parseSchemaUrls(flags.database ?? [], '--database');
  if (flags.databaseUrl !== undefined && !postgresUrl.safeParse(flags.databaseUrl).success) {
    throw new UsageError(`--database-url must be a postgres:// or postgresql:// URL`);
  }
  const fallback = flags.databaseUrl ?? env.DATABASE_URL;
  const urls: Partial<Record<ServiceSchema, string>> = {};
  for (const schema of SERVICE_SCHEMAS) {
    const url = named[schema] ?? env.schemaUrls[schema] ?? fallback;
    if (url) urls[schema] = url;
  }
  const given = SERVICE_SCHEMAS.filter((schema) => urls[schema]);
  if (given.length === 0) {
    const dataDir = resolve(flags.dataDir ?? env.DATA_DIR);
    return { kind: 'pglite', dataDir, pgliteDir: join(dataDir, 'pglite') };
  }
  const missing = SERVICE_SCHEMAS.filter((schema) => !urls[schema]);
  if (missing.length > 0) {
    throw new UsageError(
      `no database for ${missing.join(', ')}: give DATABASE_URL (or --database-url) for all schemas, or one URL per schema ` +
        `(${missing.map((s) => `--database ${s}=<url> or ${schemaUrlVariable(s)}`).join('; ')})`,
    );
  }
  return { kind: 'postgres', urls: urls as Record<ServiceSchema, string> };
}

/** Parses repeated `<schema>=<url>` values; a schema named twice or unknown is a UsageError. */
export function parseSchemaUrls(values: string[], flag: string): Partial<Record<ServiceSchema, string>> {
  const out: Partial<Record<ServiceSchema, string>> = {};
  for (const value of values) {
    const at = value.indexOf('=');
    const schema = at > 0 ? value.slice(0, at) : '';
    const url = value.slice(at + 1);
    if (!isServiceSchema(schema)) {
      throw new UsageError(`${flag} ${redactUrl(value)}: expected <schema>=<url> with schema one of ${SERVICE_SCHEMAS.join(', ')}`);
    }
    if (!postgresUrl.safeParse(url).success) throw new UsageError(`${flag} ${schema}=...: must be a postgres:// or postgresql:// URL`);
    if (out[schema]) throw new UsageError(`${flag}: ${schema} is given twice`);
    out[schema] = url;
  }
  return out;
}

/** A URL with its password replaced, for messages and the manifest. */
export function redactUrl(url: string): string {
  return url.replace(/(\/\/[^:@/]+):[^@/]*@/, '$1:***@');
}
