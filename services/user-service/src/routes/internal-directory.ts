/**
 * The internal user directory: who a user is (address, display name, roles, whether active) and who
 * holds a role, for the services that must reach people — notification (recipients of emails and
 * alerts) and monitoring. Service tokens of those services only: it hands out email addresses.
 */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { DirectoryUserSchema, DirectoryUsersSchema, type DirectoryUser } from '@shared/schemas/directory.ts';
import type { AppEnv } from '@shared/app.ts';
import { requireService, ROLES } from '@shared/auth.ts';
import type { Db } from '@shared/db.ts';
import { HttpProblem } from '@shared/errors.ts';
import { jsonContent } from '@shared/openapi.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { accounts } from '@db/schema/users.ts';
import { and, arrayContains, asc, eq } from 'drizzle-orm';
import type { AccountRow } from '../accounts.ts';

/** Only the services that must reach people read the directory: it hands out email addresses. */
const directoryReader = requireService('notification', 'monitoring');

/** How an email greets a user: their name, or their username when they gave none. */
export function directoryUser(row: Pick<AccountRow, 'id' | 'email' | 'username' | 'firstName' | 'lastName' | 'roles' | 'isActive'>): DirectoryUser {
  const name = `${row.firstName.trim()} ${row.lastName.trim()}`.trim();
  return { id: row.id, email: row.email, displayName: name || row.username, roles: row.roles, isActive: row.isActive };
}

const columns = {
  id: accounts.id,
  email: accounts.email,
  username: accounts.username,
  firstName: accounts.firstName,
  lastName: accounts.lastName,
  roles: accounts.roles,
  isActive: accounts.isActive,
};

const getUser = createRoute({
  method: 'get',
  path: '/internal/directory/users/{id}',
  tags: ['Internal'],
  security: [{ bearerAuth: [] }],
  summary: 'A user’s address, display name, roles and state (notification and monitoring only)',
  description: 'Deactivated users are returned with `isActive: false`, so a caller can tell them from unknown ones.',
  middleware: [directoryReader] as const,
  request: { params: z.object({ id: z.uuid().openapi({ param: { name: 'id', in: 'path' } }) }) },
  responses: { 200: { description: 'The user.', ...jsonContent(DirectoryUserSchema) }, ...problemResponses(400, 401, 403, 404) },
});

const listUsers = createRoute({
  method: 'get',
  path: '/internal/directory/users',
  tags: ['Internal'],
  security: [{ bearerAuth: [] }],
  summary: 'Every active user holding a role, e.g. `?role=admin` (notification and monitoring only)',
  middleware: [directoryReader] as const,
  request: { query: z.object({ role: z.enum(ROLES) }) },
  responses: {
    200: { description: 'The active users with that role.', ...jsonContent(DirectoryUsersSchema) },
    ...problemResponses(400, 401, 403),
  },
});

/** `/internal/directory/*` routes; `db` is user-service's database. */
export function internalDirectoryRoutes(deps: { db: Db }) {
  const app = new OpenAPIHono<AppEnv>();

  app.openapi(getUser, async (c) => {
    const [row] = await deps.db.select(columns).from(accounts).where(eq(accounts.id, c.req.valid('param').id));
    if (!row) throw new HttpProblem(404, 'user_not_found', 'No such user.');
    return c.json(directoryUser(row), 200);
  });

  app.openapi(listUsers, async (c) => {
    const rows = await deps.db
      .select(columns)
      .from(accounts)
      .where(and(arrayContains(accounts.roles, [c.req.valid('query').role]), eq(accounts.isActive, true)))
      .orderBy(asc(accounts.id));
    return c.json({ items: rows.map(directoryUser) }, 200);
  });

  return app;
}
