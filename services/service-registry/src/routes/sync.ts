/** Admin "sync": update a service's panels and protocol facts from what the server itself reports. */
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '@shared/app.ts';
import { requireRole } from '@shared/auth.ts';
import { HttpProblem } from '@shared/errors.ts';
import { jsonContent } from '@shared/openapi.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import type { Catalogue } from '../catalogue-store.ts';
import type { ServiceRow } from '../domain.ts';
import { SyncReportSchema, type SyncReport } from '../panel-sync.ts';
import { ServiceRefParam } from './services.ts';

const route = createRoute({
  method: 'post',
  path: '/services/{id}/sync',
  tags: ['Panels'],
  security: [{ bearerAuth: [] }],
  middleware: requireRole('admin'),
  summary: "Read the server's own description (Cloudgene app form, WES service-info) and update the catalogue; answers what changed (admin)",
  description:
    'Cloudgene servers need an operator credential: the `OPERATOR_TOKENS` configuration for the slug, else the calling admin’s own vault credential for it.',
  request: { params: ServiceRefParam },
  responses: { 200: { description: 'What changed.', ...jsonContent(SyncReportSchema) }, ...problemResponses(400, 401, 403, 404, 409, 502, 504) },
});

export function syncRoutes(deps: { catalogue: Catalogue; sync: (service: ServiceRow, adminUserId: string) => Promise<SyncReport> }) {
  const app = new OpenAPIHono<AppEnv>();
  app.openapi(route, async (c) => {
    const service = await deps.catalogue.serviceRow(c.req.valid('param').id);
    if (service.retiredAt) throw new HttpProblem(404, 'service_not_found', 'That service is retired.');
    const report = await deps.sync(service, c.get('identity').subject);
    await deps.catalogue.invalidate();
    return c.json(report, 200);
  });
  return app;
}
