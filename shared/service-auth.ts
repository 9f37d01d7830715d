/**
 * How a service other than user-service authenticates: access tokens against user-service's JWKS,
 * API tokens through its introspection endpoint (with this service's own service token), and the
 * same service token for its outbound calls.
 */
import { createAuthenticator, createServiceCredential, remoteIntrospection, remoteKeys, serviceTokenIssuer, type Authenticator, type ServiceCredential } from './auth.ts';
import type { BaseEnv } from './config.ts';
import { HttpProblem } from './errors.ts';
import { createHttpClient } from './http-client.ts';
import type { Kv } from './kv.ts';

export interface ServiceAuth {
  authenticator: Authenticator;
  /** The `Authorization` for this service's calls to other services. */
  credential: ServiceCredential;
}

export function createServiceAuth(name: string, env: BaseEnv, kv: Kv): ServiceAuth {
  const userService = createHttpClient({ service: 'user-service', baseUrl: env.USER_SERVICE_URL, timeoutMs: 3_000 });
  const secret = env.SERVICE_SECRET;
  const credential = createServiceCredential(
    secret
      ? serviceTokenIssuer(userService, name, secret)
      : () => Promise.reject(new HttpProblem(503, 'service_credential_missing', `${name} has no SERVICE_SECRET configured.`)),
  );
  return {
    credential,
    authenticator: createAuthenticator({
      keys: remoteKeys(env.USER_SERVICE_URL),
      issuer: env.JWT_ISSUER,
      kv,
      introspect: remoteIntrospection(userService, credential),
      introspectionCacheMs: env.INTROSPECTION_CACHE_MS,
    }),
  };
}
