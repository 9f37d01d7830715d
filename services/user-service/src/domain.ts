/**
 * user-service's domain objects built from its infrastructure, shared by the route groups.
 */
import type { AppEnv } from '@shared/app.ts';
import { createAuthenticator, revokeUserAccessTokens, type Authenticator } from '@shared/auth.ts';
import { clientIp } from '@shared/client-ip.ts';
import type { Database } from '@shared/db.ts';
import type { Kv } from '@shared/kv.ts';
import type { SecretBox } from '@shared/secret-box.ts';
import type { Context } from 'hono';
import { accountView, createAccounts, type AccountRow, type Accounts } from './accounts.ts';
import { createApiTokenStore, type ApiTokenStore } from './api-tokens.ts';
import { createAuditWriter, type AuditContext, type AuditWriter } from './audit.ts';
import { createLoginThrottle, type LoginThrottle } from './login-throttle.ts';
import { createRefreshTokenStore, type RefreshTokenStore } from './refresh-tokens.ts';
import { createKeyStore, type KeyStore } from './signing-keys.ts';
import { createTokenIssuer, type TokenIssuer } from './token-issuer.ts';
import { createUserAdmin, type UserAdmin } from './user-admin.ts';
import { createVault, type Vault } from './vault.ts';

export interface UserDomainConfig {
  issuer: string;
  accessTokenTtlSeconds: number;
  refreshTokenTtlMs: number;
  /** Service name → secret that service proves itself with to get a service token. */
  serviceSecrets: Map<string, string>;
  trustForwardedFor: boolean;
  login: { maxFailures: number; lockoutMs: number; ipAttemptsPerMinute: number };
  /** Registrations allowed per client address per hour (default 10). */
  registrationsPerHourPerIp?: number;
}

export interface UserDomain {
  kv: Kv;
  accounts: Accounts;
  keys: KeyStore;
  tokens: TokenIssuer;
  refresh: RefreshTokenStore;
  apiTokens: ApiTokenStore;
  throttle: LoginThrottle;
  audit: AuditWriter;
  vault: Vault;
  admin: UserAdmin;
  authenticator: Authenticator;
  config: UserDomainConfig;
  clientIp(c: Context): string;
  auditContext(c: Context<AppEnv>, actorId: string | null): AuditContext;
  /** Issues an access token and starts a refresh-token family. */
  startSession(row: AccountRow, c: Context): Promise<{
    accessToken: string;
    refreshToken: string;
    tokenType: 'Bearer';
    expiresIn: number;
    user: ReturnType<typeof accountView>;
  }>;
  revokeAccessTokens(userId: string): Promise<void>;
}

export function createUserDomain(deps: { database: Database; kv: Kv; box: SecretBox; config: UserDomainConfig; now?: () => number }): UserDomain {
  const { config } = deps;
  const db = deps.database.db;
  const now = deps.now ?? Date.now;
  const keys = createKeyStore({ db, box: deps.box, publishRetiredMs: config.accessTokenTtlSeconds * 1000 + 60_000, now });
  const tokens = createTokenIssuer({ keys, issuer: config.issuer, accessTtlSeconds: config.accessTokenTtlSeconds, now });
  const refresh = createRefreshTokenStore({ db, ttlMs: config.refreshTokenTtlMs, now });
  const apiTokens = createApiTokenStore({ db, now });
  const ip = (c: Context) => clientIp(c, config.trustForwardedFor);
  return {
    kv: deps.kv,
    accounts: createAccounts({ db, now }),
    keys,
    tokens,
    refresh,
    apiTokens,
    throttle: createLoginThrottle(deps.kv, config.login, now),
    audit: createAuditWriter(db),
    vault: createVault({ db, box: deps.box, now }),
    admin: createUserAdmin({
      db,
      now,
      revokeCredentials: async (userId, tx) => {
        await refresh.revokeAllForUser(userId, undefined, tx);
        await apiTokens.revokeAllForUser(userId, tx);
      },
    }),
    // user-service is where revocation happens: no caches, so it takes effect here at once.
    authenticator: createAuthenticator({
      keys: keys.keySet,
      issuer: config.issuer,
      kv: deps.kv,
      introspect: (token) => apiTokens.introspect(token),
      introspectionCacheMs: 0,
      revocationCacheMs: 0,
      now,
    }),
    config,
    clientIp: ip,
    auditContext: (c, actorId) => ({ actorId, ip: ip(c), userAgent: c.req.header('user-agent'), requestId: c.get('requestId') }),
    async startSession(row, c) {
      const access = await tokens.accessToken(row);
      const refreshToken = await refresh.start(row.id, { ip: ip(c), userAgent: c.req.header('user-agent') });
      return { accessToken: access.token, refreshToken, tokenType: 'Bearer', expiresIn: access.expiresIn, user: accountView(row) };
    },
    revokeAccessTokens: (userId) => revokeUserAccessTokens(deps.kv, userId, config.accessTokenTtlSeconds * 1000 + 60_000, now()),
  };
}
