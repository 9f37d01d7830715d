/**
 * JWT signing keys (Ed25519), kept in the database with the private half sealed. The newest active
 * key signs; keys retired less than `publishRetiredMs` ago stay in the JWKS so tokens they signed
 * keep verifying until they expire (rotation without logging everyone out).
 */
import type { Db } from '@shared/db.ts';
import type { SecretBox } from '@shared/secret-box.ts';
import { signingKeys } from '@db/schema/users.ts';
import { desc, gt, isNull, or, sql } from 'drizzle-orm';
import { exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK, type JWTVerifyGetKey } from 'jose';

export const SIGNING_ALG = 'EdDSA';

/** The additional data a private signing key is sealed with. */
export const signingKeyAad = (kid: string) => `signing-key:${kid}`;

export interface KeyStore {
  /** The key that signs new tokens (created on first use). */
  signer(): Promise<{ kid: string; key: CryptoKey }>;
  /** Public keys to publish: the current one and recently retired ones. */
  jwks(): Promise<{ keys: JWK[] }>;
  /** Verification keys for tokens this service itself checks. */
  keySet: JWTVerifyGetKey;
  /** Makes a new key current and retires the old one. */
  rotate(): Promise<string>;
}

export function createKeyStore(deps: { db: Db; box: SecretBox; publishRetiredMs: number; now?: () => number }): KeyStore {
  const now = deps.now ?? Date.now;
  let signer: Promise<{ kid: string; key: CryptoKey }> | undefined;
  let signerLoadedAt = 0;
  let published: { at: number; keys: JWK[] } | undefined;
  const publicKeys = new Map<string, CryptoKey>();

  async function createKey(tx: Db): Promise<string> {
    const kid = Bun.randomUUIDv7();
    const { publicKey, privateKey } = await generateKeyPair(SIGNING_ALG, { crv: 'Ed25519', extractable: true });
    const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: SIGNING_ALG, use: 'sig' };
    const privateJwkSealed = await deps.box.seal(JSON.stringify(await exportJWK(privateKey)), signingKeyAad(kid));
    await tx.insert(signingKeys).values({ kid, alg: SIGNING_ALG, publicJwk, privateJwkSealed, createdAt: new Date(now()) });
    return kid;
  }

  async function loadSigner(): Promise<{ kid: string; key: CryptoKey }> {
    // Replicas starting together must agree on one key: the lock serializes "create if none".
    const row = await deps.db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(hashtext('federated-imputation:signing-keys'))`);
      const [active] = await tx.select().from(signingKeys).where(isNull(signingKeys.retiredAt)).orderBy(desc(signingKeys.createdAt)).limit(1);
      if (active) return active;
      await createKey(tx as unknown as Db);
      const [created] = await tx.select().from(signingKeys).where(isNull(signingKeys.retiredAt)).orderBy(desc(signingKeys.createdAt)).limit(1);
      return created!;
    });
    const jwk = JSON.parse(await deps.box.open(row.privateJwkSealed, signingKeyAad(row.kid))) as JWK;
    return { kid: row.kid, key: (await importJWK(jwk, SIGNING_ALG)) as CryptoKey };
  }

  async function loadPublished(): Promise<JWK[]> {
    const cutoff = new Date(now() - deps.publishRetiredMs);
    const rows = await deps.db
      .select()
      .from(signingKeys)
      .where(or(isNull(signingKeys.retiredAt), gt(signingKeys.retiredAt, cutoff)))
      .orderBy(desc(signingKeys.createdAt));
    return rows.map((r) => r.publicJwk as JWK);
  }

  const store: KeyStore = {
    signer() {
      // Reloaded each minute so a rotation done by another replica takes over here too.
      if (now() - signerLoadedAt > 60_000) signer = undefined;
      signer ??= ((signerLoadedAt = now()), loadSigner()).catch((err) => {
        signer = undefined;
        throw err;
      });
      return signer;
    },
    async jwks() {
      // Make sure a key exists before publishing, and refresh at most every few seconds.
      await store.signer();
      if (!published || now() - published.at > 5_000) published = { at: now(), keys: await loadPublished() };
      return { keys: published.keys };
    },
    async keySet(header) {
      const kid = header.kid;
      if (!kid) throw new Error('token has no kid');
      let key = publicKeys.get(kid);
      if (!key) {
        published = undefined;
        const jwk = (await store.jwks()).keys.find((k) => k.kid === kid);
        if (!jwk) throw new Error('unknown signing key');
        key = (await importJWK(jwk, SIGNING_ALG)) as CryptoKey;
        publicKeys.set(kid, key);
      }
      return key;
    },
    async rotate() {
      const kid = await deps.db.transaction(async (tx) => {
        await tx.execute(sql`select pg_advisory_xact_lock(hashtext('federated-imputation:signing-keys'))`);
        await tx.update(signingKeys).set({ retiredAt: new Date(now()) }).where(isNull(signingKeys.retiredAt));
        return createKey(tx as unknown as Db);
      });
      signer = undefined;
      published = undefined;
      return kid;
    },
  };
  return store;
}
