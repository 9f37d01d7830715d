/** The signed-in user's vault: store, list, read metadata of and delete credentials for external servers. */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '@shared/app.ts';
import { jsonBody, jsonContent } from '@shared/openapi.ts';
import { HttpProblem } from '@shared/errors.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import type { UserDomain } from '../domain.ts';
import { CredentialPutBody, CredentialSchema, ServiceIdParam } from '../schemas.ts';
import { signedInUser } from './signed-in-user.ts';

const security = [{ bearerAuth: [] }];
const notFound = () => new HttpProblem(404, 'credential_not_found', 'You have no credential stored for that service.');

const listRoute = createRoute({
  method: 'get',
  path: '/users/me/credentials',
  tags: ['Credentials'],
  security,
  summary: 'Your stored credentials for external servers (metadata only, never the secrets)',
  responses: { 200: { description: 'Credentials.', ...jsonContent(z.object({ items: z.array(CredentialSchema) })) }, ...problemResponses(401, 403) },
});

const getRoute = createRoute({
  method: 'get',
  path: '/users/me/credentials/{serviceId}',
  tags: ['Credentials'],
  security,
  summary: 'Metadata of your credential for one service',
  request: { params: ServiceIdParam },
  responses: { 200: { description: 'Credential metadata.', ...jsonContent(CredentialSchema) }, ...problemResponses(400, 401, 403, 404) },
});

const putRoute = createRoute({
  method: 'put',
  path: '/users/me/credentials/{serviceId}',
  tags: ['Credentials'],
  security,
  summary: 'Store or replace your credential for one service (encrypted at rest)',
  request: { params: ServiceIdParam, ...jsonBody(CredentialPutBody) },
  responses: {
    200: { description: 'Replaced.', ...jsonContent(CredentialSchema) },
    201: { description: 'Stored.', ...jsonContent(CredentialSchema) },
    ...problemResponses(400, 401, 403, 422),
  },
});

const deleteRoute = createRoute({
  method: 'delete',
  path: '/users/me/credentials/{serviceId}',
  tags: ['Credentials'],
  security,
  summary: 'Delete your credential for one service',
  request: { params: ServiceIdParam },
  responses: { 204: { description: 'Deleted.' }, ...problemResponses(400, 401, 403, 404) },
});

export function credentialRoutes(domain: UserDomain) {
  const app = new OpenAPIHono<AppEnv>();

  app.openapi(listRoute, async (c) => c.json({ items: await domain.vault.list(signedInUser(c)) }, 200));

  app.openapi(getRoute, async (c) => {
    const found = await domain.vault.get(signedInUser(c), c.req.valid('param').serviceId);
    if (!found) throw notFound();
    return c.json(found, 200);
  });

  app.openapi(putRoute, async (c) => {
    const userId = signedInUser(c);
    const { serviceId } = c.req.valid('param');
    const body = c.req.valid('json');
    const secret = body.type === 'basic' ? { username: body.username, password: body.password } : { token: body.token };
    const { view, created } = await domain.vault.put(userId, serviceId, { type: body.type, label: body.label, secret });
    await domain.audit(domain.auditContext(c, userId), {
      action: created ? 'credential.stored' : 'credential.replaced',
      subjectType: 'credential',
      subjectId: serviceId,
      details: { type: body.type },
    });
    return created ? c.json(view, 201) : c.json(view, 200);
  });

  app.openapi(deleteRoute, async (c) => {
    const userId = signedInUser(c);
    const { serviceId } = c.req.valid('param');
    if (!(await domain.vault.remove(userId, serviceId))) throw notFound();
    await domain.audit(domain.auditContext(c, userId), { action: 'credential.deleted', subjectType: 'credential', subjectId: serviceId });
    return c.body(null, 204);
  });

  return app;
}
