/**
 * Signed, expiring download links: hand a file to an external imputation server or a browser
 * without a token. The link names the file and an expiry; its HMAC-SHA256 over both proves the owner
 * made it. Anyone holding an unexpired link can read that one file, nothing else.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export interface DownloadLinks {
  /** The query string (`expires=…&sig=…`) that opens `fileId` until `expiresAt`. */
  sign(fileId: string, expiresAt: Date): string;
  /** True when `sig` is the signature for `fileId` and `expires` is still in the future. */
  verify(fileId: string, expires: string | undefined, sig: string | undefined): boolean;
}

export function createDownloadLinks(key: Uint8Array, now: () => number = Date.now): DownloadLinks {
  const mac = (fileId: string, expires: string) => createHmac('sha256', key).update(`${fileId}\n${expires}`).digest();
  return {
    sign(fileId, expiresAt) {
      const expires = String(Math.floor(expiresAt.getTime() / 1000));
      return `expires=${expires}&sig=${mac(fileId, expires).toString('base64url')}`;
    },
    verify(fileId, expires, sig) {
      if (!expires || !sig || !/^\d{1,12}$/.test(expires) || Number(expires) * 1000 <= now()) return false;
      const given = Buffer.from(sig, 'base64url');
      const expected = mac(fileId, expires);
      return given.length === expected.length && timingSafeEqual(given, expected);
    },
  };
}
