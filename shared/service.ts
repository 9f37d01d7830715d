/**
 * What a service is to the runners: its name, port, the Postgres schema it owns, the environment it
 * reads, and a `build` that turns parsed env plus infrastructure into an app (and any background
 * loops). `services/<name>/src/index.ts` runs one definition; `services/standalone.ts` runs all seven
 * in one process on shared embedded infrastructure.
 */
import type { z } from '@hono/zod-openapi';
import type { ServiceApp } from './app.ts';
import type { BaseEnv } from './config.ts';
import type { Database } from './db.ts';
import type { Kv } from './kv.ts';
import type { Logger } from './log.ts';

export interface CommonInfra {
  kv: Kv;
  logger: Logger;
}

export interface DatabaseInfra extends CommonInfra {
  database: Database;
}

export interface BuiltService {
  app: ServiceApp;
  /** Largest request body Bun.serve accepts for this service, in bytes. */
  maxRequestBodySize?: number;
  /**
   * Startup work that needs the migrated database (initial data) and starts background loops; the
   * runner awaits it before serving. Kept out of `build` so tests can build an app without I/O.
   */
  start?: () => Promise<void>;
  /** Stops background loops; in-flight HTTP requests are drained by the runner. */
  stop?: () => Promise<void>;
}

type Env<S extends z.ZodType> = z.infer<S> & BaseEnv & { PORT: number };

interface DefinitionBase<S extends z.ZodType> {
  name: string;
  version: string;
  /** Well-known port (8000–8006); `PORT` overrides it in distributed mode. */
  port: number;
  /** Full env schema: `serviceEnvSchema(port)` extended with the service's own keys. */
  envSchema: S;
}

export interface DatabaseServiceDefinition<S extends z.ZodType = z.ZodType> extends DefinitionBase<S> {
  /** Postgres schema whose migrations live in `db/migrations/<schema>`. */
  schema: string;
  build(env: Env<S>, infra: DatabaseInfra): Promise<BuiltService> | BuiltService;
}

export interface StatelessServiceDefinition<S extends z.ZodType = z.ZodType> extends DefinitionBase<S> {
  schema: null;
  build(env: Env<S>, infra: CommonInfra): Promise<BuiltService> | BuiltService;
}

export type ServiceDefinition<S extends z.ZodType = z.ZodType> = DatabaseServiceDefinition<S> | StatelessServiceDefinition<S>;

/** Identity helper that keeps a definition's env type inferred from its schema. */
export function defineService<S extends z.ZodType>(definition: ServiceDefinition<S>): ServiceDefinition<S> {
  return definition;
}
