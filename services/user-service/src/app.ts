/** user-service HTTP app: accounts, login, tokens, roles, audit and the credential vault. Domain routes arrive with their issues; today it serves the kit. */
import { createServiceApp, type KitDeps, type ServiceApp } from '@shared/app.ts';
import type { Database } from '@shared/db.ts';
import { pingCheck } from '@shared/health.ts';
import type { Kv } from '@shared/kv.ts';

export interface UserServiceDeps extends KitDeps {
  database: Database;
  kv: Kv;
}

/** Builds the user-service app from its dependencies; no I/O until a request arrives. */
export function createApp(deps: UserServiceDeps): ServiceApp {
  return createServiceApp({
    ...deps,
    name: 'user-service',
    version: '0.1.0',
    description: 'accounts, login, tokens, roles, audit and the credential vault',
    readiness: [pingCheck('database', deps.database), pingCheck('kv', deps.kv)],
  });
}
