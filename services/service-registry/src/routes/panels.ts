/** Reference panels: per service (admins add, change and retire them) and across the catalogue. */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '@shared/app.ts';
import { requireRole } from '@shared/auth.ts';
import { jsonBody, jsonContent } from '@shared/openapi.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { BUILDS, PanelSchema, PROTOCOLS } from '@shared/schemas/registry.ts';
import { PanelCreateSchema, PanelPatchSchema, parsePanelReference } from '../catalogue-inputs.ts';
import type { Catalogue } from '../catalogue-store.ts';
import { ServiceRefParam } from './services.ts';

const security = [{ bearerAuth: [] }];
const adminOnly = requireRole('admin');
const tags = ['Panels'];
const PanelParams = ServiceRefParam.extend({ panelId: z.string().max(100).openapi({ param: { name: 'panelId', in: 'path' } }) });

const PanelListSchema = z.object({ items: z.array(PanelSchema) }).openapi('PanelList');
const CataloguePanelSchema = PanelSchema.extend({
  service: z.object({ id: z.uuid(), slug: z.string(), name: z.string(), protocol: z.enum(PROTOCOLS) }),
}).openapi('CataloguePanel');

const listForService = createRoute({
  method: 'get',
  path: '/services/{id}/panels',
  tags,
  security,
  summary: "A service's reference panels",
  request: { params: ServiceRefParam, query: z.object({ includeRetired: z.enum(['true', 'false']).optional() }) },
  responses: { 200: { description: 'The panels.', ...jsonContent(PanelListSchema) }, ...problemResponses(400, 401, 404) },
});

const create = createRoute({
  method: 'post',
  path: '/services/{id}/panels',
  tags,
  security,
  middleware: adminOnly,
  summary: 'Add a panel to a service (admin)',
  request: { params: ServiceRefParam, ...jsonBody(PanelCreateSchema) },
  responses: { 201: { description: 'Created.', ...jsonContent(PanelSchema) }, ...problemResponses(400, 401, 403, 404, 409, 422) },
});

const patch = createRoute({
  method: 'patch',
  path: '/services/{id}/panels/{panelId}',
  tags,
  security,
  middleware: adminOnly,
  summary: 'Change a panel, or bring a retired one back with `retired: false` (admin)',
  request: { params: PanelParams, ...jsonBody(PanelPatchSchema) },
  responses: { 200: { description: 'Updated.', ...jsonContent(PanelSchema) }, ...problemResponses(400, 401, 403, 404, 422) },
});

const retire = createRoute({
  method: 'delete',
  path: '/services/{id}/panels/{panelId}',
  tags,
  security,
  middleware: adminOnly,
  summary: 'Retire a panel (admin): never deleted, because jobs may refer to it',
  request: { params: PanelParams },
  responses: { 204: { description: 'Retired.' }, ...problemResponses(400, 401, 403, 404) },
});

const listAll = createRoute({
  method: 'get',
  path: '/panels',
  tags,
  security,
  summary: 'Every current panel of every current service, filtered',
  request: {
    query: z.object({
      build: z.enum(BUILDS).optional(),
      population: z.string().min(1).max(64).optional(),
      panel: z.string().min(1).max(200).optional().openapi({ description: 'A panel id (`hapmap-2`) or Cloudgene key (`apps@hapmap-2@2.0.0`)' }),
      service: z.string().min(1).max(100).optional().openapi({ description: 'Service id or slug' }),
    }),
  },
  responses: { 200: { description: 'The panels.', ...jsonContent(z.object({ items: z.array(CataloguePanelSchema) }).openapi('CataloguePanelList')) }, ...problemResponses(400, 401) },
});

export function panelRoutes(deps: { catalogue: Catalogue }) {
  const { catalogue } = deps;
  const app = new OpenAPIHono<AppEnv>();

  app.openapi(listAll, async (c) => {
    const query = c.req.valid('query');
    const wanted = query.panel ? parsePanelReference(query.panel).externalId : undefined;
    const snapshot = await catalogue.snapshot();
    const byId = new Map(snapshot.services.map((s) => [s.id, s]));
    const items = snapshot.panels
      .filter((p) => query.build === undefined || p.build === query.build)
      .filter((p) => query.population === undefined || p.populations.some((pop) => pop.id === query.population))
      .filter((p) => wanted === undefined || p.externalId === wanted)
      .flatMap((p) => {
        const s = byId.get(p.serviceId)!;
        if (query.service !== undefined && s.id !== query.service && s.slug !== query.service) return [];
        return [{ ...p, service: { id: s.id, slug: s.slug, name: s.name, protocol: s.protocol } }];
      });
    return c.json({ items }, 200);
  });

  app.openapi(listForService, async (c) => {
    const { id } = c.req.valid('param');
    return c.json({ items: await catalogue.panels(id, { includeRetired: c.req.valid('query').includeRetired === 'true' }) }, 200);
  });

  app.openapi(create, async (c) => c.json(await catalogue.createPanel(c.req.valid('param').id, c.req.valid('json')), 201));

  app.openapi(patch, async (c) => {
    const { id, panelId } = c.req.valid('param');
    return c.json(await catalogue.updatePanel(id, panelId, c.req.valid('json')), 200);
  });

  app.openapi(retire, async (c) => {
    const { id, panelId } = c.req.valid('param');
    await catalogue.retirePanel(id, panelId);
    return c.body(null, 204);
  });

  return app;
}
