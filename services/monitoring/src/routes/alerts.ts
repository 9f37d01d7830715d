/** The alert list (any signed-in user may read it) and its management by admins: acknowledge and resolve. */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { alerts } from '@db/schema/monitor.ts';
import type { AppEnv } from '@shared/app.ts';
import { requireRole } from '@shared/auth.ts';
import type { Db } from '@shared/db.ts';
import { jsonContent } from '@shared/openapi.ts';
import { decodeCursor, encodeCursor, PageQuerySchema, pageOf } from '@shared/schemas/pagination.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { and, desc, eq, lt, or, type SQL } from 'drizzle-orm';
import { AlertViewSchema, alertView, type AlertEngine } from '../alert-engine.ts';
import { ALERT_RULES } from '../alert-rules.ts';
import { SEVERITIES } from '../domain.ts';

const security = [{ bearerAuth: [] }];
const IdParam = z.object({ id: z.uuid().openapi({ param: { name: 'id', in: 'path' } }) });
/** Cursor position: `<raisedAt ISO>|<id>`, the last item of the previous page. */
const POSITION = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)\|([0-9a-f-]{36})$/;

const list = createRoute({
  method: 'get',
  path: '/alerts',
  tags: ['Alerts'],
  security,
  summary: 'Alerts, newest first, filtered by state, severity and rule',
  request: {
    query: PageQuerySchema.extend({
      state: z.enum(['active', 'resolved']).optional(),
      severity: z.enum(SEVERITIES).optional(),
      rule: z.enum(ALERT_RULES).optional(),
    }),
  },
  responses: { 200: { description: 'A page of alerts.', ...jsonContent(pageOf(AlertViewSchema, 'AlertPage')) }, ...problemResponses(400, 401) },
});

const acknowledge = createRoute({
  method: 'patch',
  path: '/alerts/{id}/acknowledge',
  tags: ['Alerts'],
  security,
  middleware: [requireRole('admin')] as const,
  summary: 'Acknowledge an active alert (admins); acknowledging twice keeps the first',
  request: { params: IdParam },
  responses: { 200: { description: 'The alert.', ...jsonContent(AlertViewSchema) }, ...problemResponses(400, 401, 403, 404, 409) },
});

const resolve = createRoute({
  method: 'patch',
  path: '/alerts/{id}/resolve',
  tags: ['Alerts'],
  security,
  middleware: [requireRole('admin')] as const,
  summary: 'Resolve an active alert (admins) and tell the other admins',
  description: 'If the condition still holds at the next evaluation, a new alert is raised: resolving does not silence a rule.',
  request: { params: IdParam },
  responses: { 200: { description: 'The resolved alert.', ...jsonContent(AlertViewSchema) }, ...problemResponses(400, 401, 403, 404, 409) },
});

export interface AlertRouteDeps {
  db: Db;
  engine: AlertEngine;
}

export function alertRoutes(deps: AlertRouteDeps) {
  const app = new OpenAPIHono<AppEnv>();

  app.openapi(list, async (c) => {
    const { limit, cursor, state, severity, rule } = c.req.valid('query');
    const position = decodeCursor(cursor, (p) => POSITION.test(p));
    const where: SQL[] = [];
    if (state) where.push(eq(alerts.state, state));
    if (severity) where.push(eq(alerts.severity, severity));
    if (rule) where.push(eq(alerts.rule, rule));
    if (position) {
      const [, at, id] = POSITION.exec(position)!;
      const raisedAt = new Date(at!);
      where.push(or(lt(alerts.raisedAt, raisedAt), and(eq(alerts.raisedAt, raisedAt), lt(alerts.id, id!)))!);
    }
    const rows = await deps.db
      .select()
      .from(alerts)
      .where(and(...where))
      .orderBy(desc(alerts.raisedAt), desc(alerts.id))
      .limit(limit + 1);
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    const nextCursor = rows.length > limit && last ? encodeCursor(`${last.raisedAt.toISOString()}|${last.id}`) : null;
    return c.json({ items: page.map(alertView), nextCursor }, 200);
  });

  app.openapi(acknowledge, async (c) => {
    const { id } = c.req.valid('param');
    return c.json(await deps.engine.acknowledge(id, c.get('identity').subject), 200);
  });

  app.openapi(resolve, async (c) => {
    const { id } = c.req.valid('param');
    return c.json(await deps.engine.resolve(id, c.get('identity').subject), 200);
  });

  return app;
}
