/**
 * Account statistics for monitoring's admin dashboard: how many accounts, how many active, active
 * accounts by role, and how many registered in the last seven days. Numbers only, never who.
 */
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { accounts } from '@db/schema/users.ts';
import type { AppEnv } from '@shared/app.ts';
import { requireService, ROLES } from '@shared/auth.ts';
import type { Db } from '@shared/db.ts';
import { jsonContent } from '@shared/openapi.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { UserStatsSchema, type UserStats } from '@shared/schemas/stats.ts';
import { and, arrayContains, count, eq, gte, sql, type SQL } from 'drizzle-orm';

const RECENT_MS = 7 * 86_400_000;

const userStats = createRoute({
  method: 'get',
  path: '/internal/stats/users',
  tags: ['Internal'],
  security: [{ bearerAuth: [] }],
  summary: 'Accounts: total, active, active by role, registered in the last 7 days (monitoring only)',
  middleware: [requireService('monitoring')] as const,
  responses: { 200: { description: 'The statistics.', ...jsonContent(UserStatsSchema) }, ...problemResponses(401, 403) },
});

/** `GET /internal/stats/users`; `db` is user-service's database. */
export function internalStatsRoutes(deps: { db: Db; now?: () => number }) {
  const app = new OpenAPIHono<AppEnv>();
  app.openapi(userStats, async (c) => c.json(await readUserStats(deps.db, new Date((deps.now ?? Date.now)() - RECENT_MS)), 200));
  return app;
}

async function readUserStats(db: Db, registeredSince: Date): Promise<UserStats> {
  const active = eq(accounts.isActive, true);
  // Filtered aggregates keep it to one scan; drizzle's operators bind the date in the driver's own format.
  const where = (condition: SQL | undefined) => sql<number>`count(*) filter (where ${condition})`.mapWith(Number);
  const roleColumns = Object.fromEntries(ROLES.map((role) => [`role:${role}`, where(and(active, arrayContains(accounts.roles, [role])))]));
  const [row] = await db
    .select({ total: count(), active: where(active), registeredLast7Days: where(gte(accounts.createdAt, registeredSince)), ...roleColumns })
    .from(accounts);
  const stats = row as Record<string, number>;
  return {
    total: stats.total!,
    active: stats.active!,
    byRole: Object.fromEntries(ROLES.map((role) => [role, stats[`role:${role}`]!])) as UserStats['byRole'],
    registeredLast7Days: stats.registeredLast7Days!,
  };
}
