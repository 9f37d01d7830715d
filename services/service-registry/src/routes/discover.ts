/** Which services can run a request, ranked, with the reasons each was kept or dropped (job-processor's `targets: "auto"`). */
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '@shared/app.ts';
import { jsonContent } from '@shared/openapi.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { DiscoverResultSchema } from '@shared/schemas/registry.ts';
import type { Catalogue } from '../catalogue-store.ts';
import { discover, DiscoverQuerySchema } from '../ranking.ts';

const route = createRoute({
  method: 'get',
  path: '/services/discover',
  tags: ['Services'],
  security: [{ bearerAuth: [] }],
  summary: 'Services able to run a request (panel, build, population, sample count, file sizes), ranked by health, queue, latency, limits fit and distance',
  request: { query: DiscoverQuerySchema },
  responses: { 200: { description: 'Ranked candidates and the excluded services with reasons.', ...jsonContent(DiscoverResultSchema) }, ...problemResponses(400, 401) },
});

export function discoverRoutes(deps: { catalogue: Catalogue }) {
  const app = new OpenAPIHono<AppEnv>();
  app.openapi(route, async (c) => c.json(discover(await deps.catalogue.snapshot(), c.req.valid('query')), 200));
  return app;
}
