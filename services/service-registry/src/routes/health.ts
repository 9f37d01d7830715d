/** A service's current health and probe history; admins can probe on demand. */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { healthChecks, serviceHealth } from '@db/schema/registry.ts';
import type { AppEnv } from '@shared/app.ts';
import { requireRole } from '@shared/auth.ts';
import type { Db } from '@shared/db.ts';
import { HttpProblem } from '@shared/errors.ts';
import { jsonContent } from '@shared/openapi.ts';
import type { OutboundPolicy } from '@shared/outbound.ts';
import { decodeCursor, encodeCursor, isTimeUuidPosition, PageQuerySchema } from '@shared/schemas/pagination.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { HEALTH_STATUSES, ServiceHealthSchema } from '@shared/schemas/registry.ts';
import { and, desc, eq, lt, or } from 'drizzle-orm';
import type { Catalogue } from '../catalogue-store.ts';
import { healthView } from '../catalogue-views.ts';
import { ServiceRefParam } from './services.ts';

const security = [{ bearerAuth: [] }];
const tags = ['Health'];

const HealthCheckSchema = z
  .object({
    checkedAt: z.string(),
    status: z.enum(HEALTH_STATUSES),
    latencyMs: z.number().int().nullable(),
    httpStatus: z.number().int().nullable(),
    error: z.string().nullable(),
    queueSize: z.number().int().nullable(),
  })
  .openapi('HealthCheck');

const ServiceHealthReportSchema = z
  .object({
    serviceId: z.uuid(),
    current: ServiceHealthSchema,
    history: z.object({ items: z.array(HealthCheckSchema), nextCursor: z.string().nullable() }),
  })
  .openapi('ServiceHealthReport');

const read = createRoute({
  method: 'get',
  path: '/services/{id}/health',
  tags,
  security,
  summary: 'Current health and the probe history, newest first',
  request: { params: ServiceRefParam, query: PageQuerySchema },
  responses: { 200: { description: 'Health.', ...jsonContent(ServiceHealthReportSchema) }, ...problemResponses(400, 401, 404) },
});

const probe = createRoute({
  method: 'post',
  path: '/services/{id}/probe',
  tags,
  security,
  middleware: requireRole('admin'),
  summary: 'Probe a service now and store the outcome (admin)',
  request: { params: ServiceRefParam },
  responses: { 200: { description: 'The stored outcome.', ...jsonContent(ServiceHealthSchema) }, ...problemResponses(400, 401, 403, 404, 409) },
});

export function healthRoutes(deps: { catalogue: Catalogue; db: Db; policy: OutboundPolicy; probe: (serviceId: string) => Promise<unknown> }) {
  const { catalogue, db } = deps;
  const app = new OpenAPIHono<AppEnv>();

  async function current(serviceId: string) {
    const [row] = await db.select().from(serviceHealth).where(eq(serviceHealth.serviceId, serviceId));
    return healthView(row);
  }

  app.openapi(read, async (c) => {
    const service = await catalogue.serviceRow(c.req.valid('param').id);
    const { limit, cursor } = c.req.valid('query');
    const after = decodeCursor(cursor, isTimeUuidPosition);
    let position = undefined;
    if (after) {
      const [at, id] = after.split('|') as [string, string];
      const date = new Date(at);
      position = or(lt(healthChecks.checkedAt, date), and(eq(healthChecks.checkedAt, date), lt(healthChecks.id, id)));
    }
    const rows = await db
      .select()
      .from(healthChecks)
      .where(and(eq(healthChecks.serviceId, service.id), position))
      .orderBy(desc(healthChecks.checkedAt), desc(healthChecks.id))
      .limit(limit + 1);
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return c.json(
      {
        serviceId: service.id,
        current: await current(service.id),
        history: {
          items: page.map((r) => ({
            checkedAt: r.checkedAt.toISOString(),
            status: r.status as (typeof HEALTH_STATUSES)[number],
            latencyMs: r.latencyMs,
            httpStatus: r.httpStatus,
            error: r.error,
            queueSize: r.queueSize,
          })),
          nextCursor: rows.length > limit && last ? encodeCursor(`${last.checkedAt.toISOString()}|${last.id}`) : null,
        },
      },
      200,
    );
  });

  app.openapi(probe, async (c) => {
    const service = await catalogue.serviceRow(c.req.valid('param').id);
    if (service.retiredAt) throw new HttpProblem(404, 'service_not_found', 'That service is retired.');
    if (!deps.policy.allows(service.baseUrl)) {
      throw new HttpProblem(409, 'external_calls_disabled', 'Calls to servers outside this machine are switched off (EXTERNAL_CALLS=false).');
    }
    await deps.probe(service.id);
    return c.json(await current(service.id), 200);
  });

  return app;
}
