/**
 * The baseline: a bare Bun.serve answering every path (so `/ready` and `/health` both work) with
 * the same JSON body user-service's `GET /health` sends. Whatever the service is slower than this
 * is the cost of the platform (Hono, zod-openapi, request ids, access log, metrics), not of Bun.
 */
const body = JSON.stringify({ status: 'healthy', service: 'user-service' });

Bun.serve({
  hostname: process.env.HOST ?? '127.0.0.1',
  port: Number(process.env.PORT ?? 0),
  fetch: () => new Response(body, { headers: { 'content-type': 'application/json' } }),
});
