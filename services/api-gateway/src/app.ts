/**
 * api-gateway HTTP app: the platform's only public entry. Routes `/api/*` to the services through
 * the streaming proxy and answers `/health` with every service's readiness.
 */
import { createRoute } from '@hono/zod-openapi';
import { createServiceApp, type KitDeps, type ServiceApp } from '@shared/app.ts';
import { pingCheck } from '@shared/health.ts';
import type { Kv } from '@shared/kv.ts';
import { PlatformHealthSchema } from '@shared/schemas/health.ts';
import type { Server } from 'bun';
import type { HealthReport } from './health-fanout.ts';
import type { Proxy } from './proxy.ts';

export interface GatewayDeps extends KitDeps {
  kv: Kv;
  proxy: Proxy;
  health: () => Promise<HealthReport>;
}

const healthRoute = createRoute({
  method: 'get',
  path: '/health',
  tags: ['Operations'],
  summary: 'Platform health: the readiness of every service behind the gateway',
  description: '200 when every service is ready; 503 with the same body when any is not.',
  responses: {
    200: { description: 'All services ready.', content: { 'application/json': { schema: PlatformHealthSchema } } },
    503: { description: 'At least one service is not ready.', content: { 'application/json': { schema: PlatformHealthSchema } } },
  },
});

/** Builds the gateway app from its dependencies; no I/O until a request arrives. */
export function createApp(deps: GatewayDeps): ServiceApp {
  const app = createServiceApp({
    ...deps,
    name: 'api-gateway',
    version: '0.1.0',
    description: 'The public entry of the Federated Imputation Platform',
    liveness: false,
    readiness: [pingCheck('kv', deps.kv)],
  });

  app.openapi(healthRoute, async (c) => {
    const report = await deps.health();
    return c.json({ ...report, service: 'api-gateway' }, report.status === 'healthy' ? 200 : 503);
  });

  app.all('/api/*', (c) => {
    const server = c.env as Server<undefined> | undefined;
    const clientIp = server?.requestIP?.(c.req.raw)?.address;
    return deps.proxy(c.req.raw, { requestId: c.get('requestId'), clientIp });
  });

  return app;
}
