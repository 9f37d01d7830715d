/** What the gateway may put in a log line about a failure: never a message that could quote a URL, header or token. */

/** An error's name and code (`TypeError (ConnectionRefused)`), without its message. */
export function errorName(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' ? `${err.name} (${code})` : err.name;
  }
  return typeof err;
}
