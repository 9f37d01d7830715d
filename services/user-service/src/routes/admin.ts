/** Admin-only: list and search users, change roles, deactivate/reactivate, page through the audit log, rotate the signing key. */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '@shared/app.ts';
import { jsonBody, jsonContent } from '@shared/openapi.ts';
import { requireRole } from '@shared/auth.ts';
import { decodeCursor, encodeCursor, isUuidPosition, PageQuerySchema, pageOf } from '@shared/schemas/pagination.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { accountView } from '../accounts.ts';
import type { UserDomain } from '../domain.ts';
import { AdminUserPatch, AuditEntrySchema, IdParam, UserSchema } from '../schemas.ts';

const security = [{ bearerAuth: [] }];
const adminOnly = requireRole('admin');

const listUsers = createRoute({
  method: 'get',
  path: '/admin/users',
  tags: ['Admin'],
  security,
  middleware: adminOnly,
  summary: 'List users, oldest first; `q` searches username, email and name',
  request: { query: PageQuerySchema.extend({ q: z.string().trim().min(1).max(100).optional() }) },
  responses: { 200: { description: 'A page of users.', ...jsonContent(pageOf(UserSchema, 'UserPage')) }, ...problemResponses(400, 401, 403) },
});

const patchUser = createRoute({
  method: 'patch',
  path: '/admin/users/{id}',
  tags: ['Admin'],
  security,
  middleware: adminOnly,
  summary: "Change a user's roles or deactivate/reactivate them (deactivation revokes all their tokens)",
  request: { params: IdParam, ...jsonBody(AdminUserPatch) },
  responses: { 200: { description: 'Updated user.', ...jsonContent(UserSchema) }, ...problemResponses(400, 401, 403, 404, 409, 422) },
});

const auditLog = createRoute({
  method: 'get',
  path: '/admin/audit-log',
  tags: ['Admin'],
  security,
  middleware: adminOnly,
  summary: 'The audit log, newest first',
  request: { query: PageQuerySchema.extend({ action: z.string().max(64).optional(), actorId: z.uuid().optional() }) },
  responses: { 200: { description: 'A page of audit entries.', ...jsonContent(pageOf(AuditEntrySchema, 'AuditPage')) }, ...problemResponses(400, 401, 403) },
});

const rotateKeys = createRoute({
  method: 'post',
  path: '/admin/signing-keys/rotate',
  tags: ['Admin'],
  security,
  middleware: adminOnly,
  summary: 'Start signing with a new key; tokens signed by the old one keep working until they expire',
  responses: { 200: { description: 'The new key id.', ...jsonContent(z.object({ kid: z.string() })) }, ...problemResponses(401, 403) },
});

export function adminRoutes(domain: UserDomain) {
  const app = new OpenAPIHono<AppEnv>();

  app.openapi(listUsers, async (c) => {
    const { limit, cursor, q } = c.req.valid('query');
    const { rows, more } = await domain.admin.list({ limit, q, after: decodeCursor(cursor, isUuidPosition) });
    return c.json({ items: rows.map(accountView), nextCursor: more ? encodeCursor(rows.at(-1)!.id) : null }, 200);
  });

  app.openapi(patchUser, async (c) => {
    const { id } = c.req.valid('param');
    const { before, after } = await domain.admin.update(id, c.req.valid('json'));
    const context = domain.auditContext(c, c.get('identity').subject);
    if (before.isActive && !after.isActive) {
      await domain.revokeAccessTokens(id);
      await domain.audit(context, { action: 'user.deactivated', subjectType: 'user', subjectId: id });
    } else if (!before.isActive && after.isActive) {
      await domain.audit(context, { action: 'user.reactivated', subjectType: 'user', subjectId: id });
    }
    if (before.roles.join() !== after.roles.join()) {
      // Tokens carry roles: make the user pick up the new ones at their next refresh.
      await domain.revokeAccessTokens(id);
      await domain.audit(context, { action: 'user.roles_changed', subjectType: 'user', subjectId: id, details: { from: before.roles, to: after.roles } });
    }
    return c.json(accountView(after), 200);
  });

  app.openapi(auditLog, async (c) => {
    const { limit, cursor, action, actorId } = c.req.valid('query');
    const { rows, more } = await domain.admin.audit({ limit, action, actorId, before: decodeCursor(cursor, isUuidPosition) });
    const items = rows.map((r) => ({ ...r, at: r.at.toISOString(), details: (r.details as Record<string, unknown> | null) ?? null }));
    return c.json({ items, nextCursor: more ? encodeCursor(rows.at(-1)!.id) : null }, 200);
  });

  app.openapi(rotateKeys, async (c) => {
    const kid = await domain.keys.rotate();
    await domain.audit(domain.auditContext(c, c.get('identity').subject), { action: 'signing_key.rotated', subjectType: 'signing_key', subjectId: kid });
    return c.json({ kid }, 200);
  });

  return app;
}
