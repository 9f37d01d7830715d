/** user-service HTTP app: accounts, login, tokens, roles, audit and the credential vault. */
import { PLATFORM_VERSION } from '@shared/version.ts';
import { createServiceApp, type KitDeps, type ServiceApp } from '@shared/app.ts';
import type { Database } from '@shared/db.ts';
import { pingCheck } from '@shared/health.ts';
import type { Kv } from '@shared/kv.ts';
import type { SecretBox } from '@shared/secret-box.ts';
import { createUserDomain, type UserDomain, type UserDomainConfig } from './domain.ts';
import { AUTH_PUBLIC_PATHS, authRoutes } from './routes/auth.ts';
import { INTERNAL_PUBLIC_PATHS, internalRoutes } from './routes/internal.ts';
import { meRoutes } from './routes/me.ts';
import { adminRoutes } from './routes/admin.ts';
import { credentialRoutes } from './routes/credentials.ts';
import { internalCredentialRoutes } from './routes/internal-credentials.ts';
import { internalDirectoryRoutes } from './routes/internal-directory.ts';
import { internalStatsRoutes } from './routes/internal-stats.ts';

export interface UserServiceDeps extends KitDeps {
  database: Database;
  kv: Kv;
  box: SecretBox;
  config: UserDomainConfig;
  now?: () => number;
}

/** Builds the user-service app and its domain from dependencies; no I/O until a request arrives. */
export function createApp(deps: UserServiceDeps): { app: ServiceApp; domain: UserDomain } {
  const domain = createUserDomain(deps);
  const app = createServiceApp({
    ...deps,
    name: 'user-service',
    version: PLATFORM_VERSION,
    description: 'Accounts, login, tokens, roles, audit and the credential vault',
    readiness: [pingCheck('database', deps.database), pingCheck('kv', deps.kv)],
    auth: {
      authenticator: domain.authenticator,
      publicPaths: [...AUTH_PUBLIC_PATHS, ...INTERNAL_PUBLIC_PATHS],
      viewerWritablePrefixes: ['/users/me'],
    },
  });
  app.openAPIRegistry.registerComponent('securitySchemes', 'basicAuth', { type: 'http', scheme: 'basic' });
  app.route('/', authRoutes(domain));
  app.route('/', meRoutes(domain));
  app.route('/', credentialRoutes(domain));
  app.route('/', adminRoutes(domain));
  app.route('/', internalRoutes(domain));
  app.route('/', internalCredentialRoutes(domain));
  app.route('/', internalDirectoryRoutes({ db: deps.database.db }));
  app.route('/', internalStatsRoutes({ db: deps.database.db, now: deps.now }));
  return { app, domain };
}
