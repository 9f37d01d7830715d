/** The catalogue of imputation services: reads for any signed-in user, writes for admins. */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '@shared/app.ts';
import { requireRole } from '@shared/auth.ts';
import { jsonBody, jsonContent } from '@shared/openapi.ts';
import { decodeCursor, encodeCursor, PageQuerySchema, pageOf } from '@shared/schemas/pagination.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { PROTOCOLS, ServiceSchema, ServiceWithPanelsSchema } from '@shared/schemas/registry.ts';
import { ServiceCreateSchema, ServicePatchSchema } from '../catalogue-inputs.ts';
import type { Catalogue } from '../catalogue-store.ts';

const security = [{ bearerAuth: [] }];
const adminOnly = requireRole('admin');
const tags = ['Services'];

export const ServiceRefParam = z.object({
  id: z
    .string()
    .min(1)
    .max(100)
    .openapi({ param: { name: 'id', in: 'path' }, description: 'Service id or slug', example: 'michigan' }),
});
const booleanQuery = z.enum(['true', 'false']).transform((v) => v === 'true');

const list = createRoute({
  method: 'get',
  path: '/services',
  tags,
  security,
  summary: 'The catalogue: current imputation services with live health, by name',
  request: {
    query: PageQuerySchema.extend({
      protocol: z.enum(PROTOCOLS).optional(),
      active: booleanQuery.optional().openapi({ type: 'string', enum: ['true', 'false'] }),
      status: z.enum(['healthy', 'degraded', 'unhealthy', 'unreachable', 'unknown']).optional(),
    }),
  },
  responses: { 200: { description: 'A page of services.', ...jsonContent(pageOf(ServiceSchema, 'ServicePage')) }, ...problemResponses(400, 401) },
});

const get = createRoute({
  method: 'get',
  path: '/services/{id}',
  tags,
  security,
  summary: 'One service with its panels (by id or slug; a retired service by id only)',
  request: { params: ServiceRefParam },
  responses: { 200: { description: 'The service.', ...jsonContent(ServiceWithPanelsSchema) }, ...problemResponses(400, 401, 404) },
});

const create = createRoute({
  method: 'post',
  path: '/services',
  tags,
  security,
  middleware: adminOnly,
  summary: 'Add a service (and optionally its panels) to the catalogue (admin)',
  request: jsonBody(ServiceCreateSchema),
  responses: { 201: { description: 'Created.', ...jsonContent(ServiceWithPanelsSchema) }, ...problemResponses(400, 401, 403, 409, 422) },
});

const patch = createRoute({
  method: 'patch',
  path: '/services/{id}',
  tags,
  security,
  middleware: adminOnly,
  summary: 'Change a service (admin); the slug and protocol never change',
  request: { params: ServiceRefParam, ...jsonBody(ServicePatchSchema) },
  responses: { 200: { description: 'Updated.', ...jsonContent(ServiceSchema) }, ...problemResponses(400, 401, 403, 404, 422) },
});

const retire = createRoute({
  method: 'delete',
  path: '/services/{id}',
  tags,
  security,
  middleware: adminOnly,
  summary: 'Retire a service (admin): it leaves the catalogue but stays resolvable by id for the jobs and credentials that name it',
  request: { params: ServiceRefParam },
  responses: { 204: { description: 'Retired.' }, ...problemResponses(400, 401, 403, 404) },
});

export function serviceRoutes(deps: { catalogue: Catalogue }) {
  const { catalogue } = deps;
  const app = new OpenAPIHono<AppEnv>();

  app.openapi(list, async (c) => {
    const query = c.req.valid('query');
    const after = decodeCursor(query.cursor, (p) => p.includes('\u0000'));
    const { services } = await catalogue.snapshot();
    const key = (s: { name: string; id: string }) => `${s.name}\u0000${s.id}`;
    const matching = services
      .filter((s) => query.protocol === undefined || s.protocol === query.protocol)
      .filter((s) => query.active === undefined || s.isActive === query.active)
      .filter((s) => query.status === undefined || s.health.status === query.status)
      .filter((s) => after === undefined || key(s) > after)
      .sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
    const items = matching.slice(0, query.limit);
    const nextCursor = matching.length > query.limit ? encodeCursor(key(items.at(-1)!)) : null;
    return c.json({ items, nextCursor }, 200);
  });

  app.openapi(get, async (c) => c.json(await catalogue.service(c.req.valid('param').id), 200));

  app.openapi(create, async (c) => c.json(await catalogue.createService(c.req.valid('json')), 201));

  app.openapi(patch, async (c) => c.json(await catalogue.updateService(c.req.valid('param').id, c.req.valid('json')), 200));

  app.openapi(retire, async (c) => {
    await catalogue.retireService(c.req.valid('param').id);
    return c.body(null, 204);
  });

  return app;
}
