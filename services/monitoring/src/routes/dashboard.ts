/**
 * `GET /dashboard/stats`: a researcher's or viewer's own jobs and the services they can use; for an
 * admin, the same platform-wide plus accounts and storage. Every number comes from the service that
 * owns it, asked with monitoring's service token; a researcher's request only ever asks for their own
 * jobs. A service that does not answer leaves its section null and is named in `unavailable`: the
 * dashboard still answers, and never with a made-up number.
 */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '@shared/app.ts';
import { HttpProblem } from '@shared/errors.ts';
import { jsonContent } from '@shared/openapi.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { DashboardStatsSchema, type DashboardStats, type StatsSource } from '@shared/schemas/stats.ts';
import type { StatsClients } from '../stats-clients.ts';

const dashboardStats = createRoute({
  method: 'get',
  path: '/dashboard/stats',
  tags: ['Dashboard'],
  security: [{ bearerAuth: [] }],
  summary: 'Your jobs by state, success rate, recent jobs and available services; platform-wide with accounts and storage for admins',
  description:
    'Admins see the platform (`scope: platform`) unless they ask for `?scope=user`; everyone else always sees only their own jobs (`scope: user`), ' +
    'whatever they ask for. A section whose service did not answer is null and that service is listed in `unavailable`.',
  request: {
    query: z.object({
      scope: z.enum(['user', 'platform']).optional().openapi({ description: 'Admins: `user` for your own jobs only. Ignored for everyone else.' }),
    }),
  },
  responses: { 200: { description: 'The statistics.', ...jsonContent(DashboardStatsSchema) }, ...problemResponses(400, 401, 403) },
});

export interface DashboardDeps {
  stats: StatsClients;
  now?: () => number;
}

/** `GET /dashboard/stats` over the other services' statistics endpoints. */
export function dashboardRoutes(deps: DashboardDeps) {
  const app = new OpenAPIHono<AppEnv>();

  app.openapi(dashboardStats, async (c) => {
    const identity = c.get('identity');
    if (identity.kind !== 'user') throw new HttpProblem(403, 'users_only', 'The dashboard shows a signed-in user’s numbers; sign in as one.');
    const platform = identity.roles.includes('admin') && c.req.valid('query').scope !== 'user';
    const requestId = c.get('requestId');
    const logger = c.get('logger');
    const unavailable: StatsSource[] = [];

    /** The section, or null (and its service named) when the service failed to answer. */
    const section = async <T,>(source: StatsSource, read: () => Promise<T>): Promise<T | null> => {
      try {
        return await read();
      } catch (err) {
        unavailable.push(source);
        logger.warn('dashboard section unavailable', { source, error: err instanceof Error ? err.message : String(err) });
        return null;
      }
    };

    const [jobs, services, users, storage] = await Promise.all([
      section('job-processor', async () => {
        const { scope, ...jobStats } = await deps.stats.jobs(platform ? undefined : identity.subject, requestId);
        // Belt and braces: a user-scope dashboard must never carry platform numbers.
        if (scope !== (platform ? 'platform' : 'user')) throw new Error(`job-processor answered for scope ${scope}`);
        return jobStats;
      }),
      section('service-registry', () => deps.stats.services(requestId)),
      platform ? section('user-service', () => deps.stats.users(requestId)) : undefined,
      platform ? section('file-manager', () => deps.stats.storage(requestId)) : undefined,
    ]);

    const body: DashboardStats = {
      scope: platform ? 'platform' : 'user',
      jobs,
      services,
      ...(platform ? { users: users ?? null, storage: storage ?? null } : {}),
      unavailable: [...unavailable].sort(),
      generatedAt: new Date((deps.now ?? Date.now)()).toISOString(),
    };
    return c.json(body, 200);
  });

  return app;
}
