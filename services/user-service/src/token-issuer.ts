/** Signs access tokens for users and service tokens for services with the current signing key. */
import { SERVICE_AUDIENCE, USER_AUDIENCE } from '@shared/auth.ts';
import { SignJWT } from 'jose';
import { SIGNING_ALG, type KeyStore } from './signing-keys.ts';

export interface IssuedToken {
  token: string;
  /** Seconds until it expires. */
  expiresIn: number;
}

export interface TokenIssuer {
  accessToken(user: { id: string; roles: string[] }): Promise<IssuedToken>;
  serviceToken(service: string): Promise<IssuedToken>;
}

export function createTokenIssuer(deps: { keys: KeyStore; issuer: string; accessTtlSeconds: number; now?: () => number }): TokenIssuer {
  const now = deps.now ?? Date.now;
  async function sign(subject: string, audience: string, claims: Record<string, unknown>): Promise<IssuedToken> {
    const { kid, key } = await deps.keys.signer();
    const issuedMs = now();
    const iat = Math.floor(issuedMs / 1000);
    // iat_ms lets a revocation mark (in ms) tell apart tokens issued within the same second.
    const token = await new SignJWT({ ...claims, iat_ms: issuedMs })
      .setProtectedHeader({ alg: SIGNING_ALG, kid, typ: 'JWT' })
      .setIssuer(deps.issuer)
      .setSubject(subject)
      .setAudience(audience)
      .setIssuedAt(iat)
      .setExpirationTime(iat + deps.accessTtlSeconds)
      .setJti(Bun.randomUUIDv7())
      .sign(key);
    return { token, expiresIn: deps.accessTtlSeconds };
  }
  return {
    accessToken: (user) => sign(user.id, USER_AUDIENCE, { roles: user.roles }),
    serviceToken: (service) => sign(service, SERVICE_AUDIENCE, { roles: ['service'] }),
  };
}
