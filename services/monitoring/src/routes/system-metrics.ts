/**
 * The host's latest metrics sample and its stored history; any verified caller may read them. Both
 * answer the original operators' flat snake_case `system_metrics` shape (system-metrics-view.ts); the
 * history, a platform addition, pages it with the platform's `{items, nextCursor}`.
 */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '@shared/app.ts';
import { HttpProblem } from '@shared/errors.ts';
import { jsonContent } from '@shared/openapi.ts';
import { decodeCursor, encodeCursor, PageQuerySchema, pageOf } from '@shared/schemas/pagination.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { HostMetricsUnavailableError, hostSampleView, type HostSampler } from '../host-sampler.ts';
import { SystemMetricsSchema, systemMetricsView } from '../system-metrics-view.ts';

const security = [{ bearerAuth: [] }];

const latestSample = createRoute({
  method: 'get',
  path: '/metrics/system',
  tags: ['Metrics'],
  security,
  summary: 'The latest host sample: CPU, load averages, memory, disk use of the data and storage paths, network rates',
  description:
    'The original monitoring’s `system_metrics` fields (snake_case, sizes in GiB) plus `disks`, one entry per watched path. ' +
    'Answered from the sampler’s latest reading; only before the first one does the request read the host itself.',
  responses: {
    200: { description: 'The latest sample.', ...jsonContent(SystemMetricsSchema) },
    ...problemResponses(401, 503),
  },
});

const HistoryQuerySchema = PageQuerySchema.extend({
  limit: z.coerce.number().int().min(1).max(1000).default(100).openapi({ example: 100 }),
  from: z.iso.datetime({ offset: true }).optional().openapi({ description: 'Samples taken at or after this time' }),
  to: z.iso.datetime({ offset: true }).optional().openapi({ description: 'Samples taken at or before this time' }),
});

const history = createRoute({
  method: 'get',
  path: '/metrics/system/history',
  tags: ['Metrics'],
  security,
  summary: 'Stored host samples in a time range, newest first',
  request: { query: HistoryQuerySchema },
  responses: {
    200: { description: 'A page of samples.', ...jsonContent(pageOf(SystemMetricsSchema, 'SystemMetricsPage')) },
    ...problemResponses(400, 401),
  },
});

/** A cursor position: the last item's sample time and id (ids break ties between equal times). */
const CURSOR = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)\|(\d{1,18})$/;

export interface SystemMetricsDeps {
  sampler: HostSampler;
}

/** `GET /metrics/system` and `GET /metrics/system/history`; authentication comes from the service app. */
export function systemMetricsRoutes(deps: SystemMetricsDeps) {
  const app = new OpenAPIHono<AppEnv>();

  app.openapi(latestSample, async (c) => {
    const current = deps.sampler.latest();
    if (current) return c.json(systemMetricsView(current), 200);
    try {
      return c.json(systemMetricsView(await deps.sampler.sample()), 200);
    } catch (err) {
      if (!(err instanceof HostMetricsUnavailableError)) throw err;
      throw new HttpProblem(503, 'host_metrics_unavailable', `No host sample yet and the host cannot be read: ${err.message}`);
    }
  });

  app.openapi(history, async (c) => {
    const { limit, cursor, from, to } = c.req.valid('query');
    const fromDate = from === undefined ? undefined : new Date(from);
    const toDate = to === undefined ? undefined : new Date(to);
    if (fromDate && toDate && fromDate > toDate) {
      throw new HttpProblem(400, 'validation_failed', '`from` must not be after `to`.', {
        errors: [{ path: 'query.from', message: 'must not be after to' }],
      });
    }
    const position = decodeCursor(cursor, (p) => CURSOR.test(p) && !Number.isNaN(Date.parse(p.split('|')[0]!)));
    const [, at, id] = position === undefined ? [] : CURSOR.exec(position)!;
    const before = at && id ? { sampledAt: new Date(at), id: Number(id) } : undefined;
    const rows = await deps.sampler.history({ from: fromDate, to: toDate, limit: limit + 1, before });
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    const nextCursor = rows.length > limit && last ? encodeCursor(`${last.sampledAt.toISOString()}|${last.id}`) : null;
    return c.json({ items: page.map((row) => systemMetricsView(hostSampleView(row))), nextCursor }, 200);
  });

  return app;
}
