/**
 * Real token verification for services under test without running user-service: an Ed25519 key pair
 * made per process, an authenticator over its public key, and access tokens signed with it.
 */
import { createAuthenticator, SERVICE_AUDIENCE, USER_AUDIENCE, type Authenticator } from '@shared/auth.ts';
import type { Kv } from '@shared/kv.ts';
import { generateKeyPair, SignJWT } from 'jose';

const ISSUER = 'fip-test-identity';
const pair = generateKeyPair('EdDSA', { crv: 'Ed25519' });

export function testAuthenticator(kv: Kv): Authenticator {
  return createAuthenticator({ keys: async () => (await pair).publicKey, issuer: ISSUER, kv, introspect: async () => null });
}

export async function tokenFor(userId: string, roles: string[] = ['researcher']): Promise<string> {
  return new SignJWT({ roles })
    .setProtectedHeader({ alg: 'EdDSA', kid: 'test' })
    .setIssuer(ISSUER)
    .setAudience(USER_AUDIENCE)
    .setSubject(userId)
    .setIssuedAt()
    .setExpirationTime('10m')
    .setJti(crypto.randomUUID())
    .sign((await pair).privateKey);
}

/** A service token as user-service would mint it for `service`. */
export async function serviceTokenFor(service: string): Promise<string> {
  return new SignJWT({ roles: ['service'] })
    .setProtectedHeader({ alg: 'EdDSA', kid: 'test' })
    .setIssuer(ISSUER)
    .setAudience(SERVICE_AUDIENCE)
    .setSubject(service)
    .setIssuedAt()
    .setExpirationTime('10m')
    .setJti(crypto.randomUUID())
    .sign((await pair).privateKey);
}
