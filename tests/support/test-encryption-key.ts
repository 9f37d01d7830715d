/**
 * One encryption key for every test file in a `bun test` process: without DATABASE_URL the files
 * share one embedded database, so a signing key sealed by one file must open in the next.
 */
export const TEST_ENCRYPTION_KEY = { id: 'test', key: crypto.getRandomValues(new Uint8Array(32)) };
