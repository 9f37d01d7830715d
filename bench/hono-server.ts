/**
 * The middle row of the throughput table: a plain Hono app with only `GET /health` (and `/ready`,
 * so the bench can wait for it), answering the same JSON as user-service. Between the bare
 * Bun.serve and the service it splits the gap into what Hono costs and what the service kit's
 * middleware (request id, access log, metrics) costs.
 */
import { Hono } from 'hono';

const body = { status: 'healthy', service: 'user-service' } as const;
const app = new Hono();
app.get('/health', (c) => c.json(body));
app.get('/ready', (c) => c.json(body));

Bun.serve({ hostname: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 0), fetch: app.fetch });
