/** The client's address: the socket peer, or — behind the platform's own gateway — the last hop it appended. */
import type { Context } from 'hono';

export function clientIp(c: Context, trustForwardedFor: boolean): string {
  if (trustForwardedFor) {
    const hops = c.req.header('x-forwarded-for')?.split(',').map((h) => h.trim()).filter(Boolean);
    if (hops?.length) return hops.at(-1)!;
  }
  const server = c.env as { requestIP?: (request: Request) => { address: string } | null } | undefined;
  return server?.requestIP?.(c.req.raw)?.address ?? 'unknown';
}
