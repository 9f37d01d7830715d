/** The signed-in user's own profile, password and personal API tokens. */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '@shared/app.ts';
import { jsonBody, jsonContent } from '@shared/openapi.ts';
import { HttpProblem } from '@shared/errors.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { accountView } from '../accounts.ts';
import type { UserDomain } from '../domain.ts';
import { signedInUser } from './signed-in-user.ts';
import { ApiTokenCreateBody, ApiTokenSchema, IdParam, NewApiTokenSchema, PasswordChangeBody, ProfilePatch, SessionSchema, UserSchema } from '../schemas.ts';

const security = [{ bearerAuth: [] }];

const getMe = createRoute({
  method: 'get',
  path: '/users/me',
  tags: ['Profile'],
  security,
  summary: 'Your profile',
  responses: { 200: { description: 'Profile.', ...jsonContent(UserSchema) }, ...problemResponses(401, 403, 404) },
});

const patchMe = createRoute({
  method: 'patch',
  path: '/users/me',
  tags: ['Profile'],
  security,
  summary: 'Update your name, institution or email',
  request: jsonBody(ProfilePatch),
  responses: { 200: { description: 'Updated profile.', ...jsonContent(UserSchema) }, ...problemResponses(400, 401, 403, 409, 422) },
});

const changePassword = createRoute({
  method: 'post',
  path: '/users/me/password',
  tags: ['Profile'],
  security,
  summary: 'Change your password; every other session is signed out and a new session is returned',
  request: jsonBody(PasswordChangeBody),
  responses: { 200: { description: 'A new session.', ...jsonContent(SessionSchema) }, ...problemResponses(400, 401, 403, 422) },
});

const listTokens = createRoute({
  method: 'get',
  path: '/users/me/api-tokens',
  tags: ['API tokens'],
  security,
  summary: 'Your personal API tokens (never the secrets)',
  responses: { 200: { description: 'Tokens.', ...jsonContent(z.object({ items: z.array(ApiTokenSchema) })) }, ...problemResponses(401, 403) },
});

const createToken = createRoute({
  method: 'post',
  path: '/users/me/api-tokens',
  tags: ['API tokens'],
  security,
  summary: 'Create a personal API token for scripts (the secret is shown once)',
  request: jsonBody(ApiTokenCreateBody),
  responses: { 201: { description: 'Created.', ...jsonContent(NewApiTokenSchema) }, ...problemResponses(400, 401, 403, 409, 422) },
});

const revokeToken = createRoute({
  method: 'delete',
  path: '/users/me/api-tokens/{id}',
  tags: ['API tokens'],
  security,
  summary: 'Revoke one of your API tokens',
  request: { params: IdParam },
  responses: { 204: { description: 'Revoked.' }, ...problemResponses(400, 401, 403, 404) },
});

export function meRoutes(domain: UserDomain) {
  const app = new OpenAPIHono<AppEnv>();

  app.openapi(getMe, async (c) => {
    const row = await domain.accounts.get(signedInUser(c));
    if (!row) throw new HttpProblem(404, 'user_not_found', 'No such user.');
    return c.json(accountView(row), 200);
  });

  app.openapi(patchMe, async (c) => {
    const id = signedInUser(c);
    const row = await domain.accounts.updateProfile(id, c.req.valid('json'));
    await domain.audit(domain.auditContext(c, id), {
      action: 'user.profile_updated',
      subjectType: 'user',
      subjectId: id,
      details: { fields: Object.keys(c.req.valid('json')) },
    });
    return c.json(accountView(row), 200);
  });

  app.openapi(changePassword, async (c) => {
    const id = signedInUser(c);
    const { currentPassword, newPassword } = c.req.valid('json');
    await domain.accounts.changePassword(id, currentPassword, newPassword, (tx) => domain.refresh.revokeAllForUser(id, undefined, tx));
    await domain.revokeAccessTokens(id);
    await domain.audit(domain.auditContext(c, id), { action: 'user.password_changed', subjectType: 'user', subjectId: id });
    const row = await domain.accounts.get(id);
    // The revocation mark covers tokens issued before it, so the new session below survives it.
    return c.json(await domain.startSession(row!, c), 200);
  });

  app.openapi(listTokens, async (c) => c.json({ items: await domain.apiTokens.list(signedInUser(c)) }, 200));

  app.openapi(createToken, async (c) => {
    const id = signedInUser(c);
    const { name, expiresInDays } = c.req.valid('json');
    const expiresAt = expiresInDays ? new Date(Date.now() + expiresInDays * 86_400_000) : null;
    const { view, token } = await domain.apiTokens.create(id, name, expiresAt);
    await domain.audit(domain.auditContext(c, id), { action: 'api_token.created', subjectType: 'api_token', subjectId: view.id, details: { name } });
    return c.json({ ...view, token }, 201);
  });

  app.openapi(revokeToken, async (c) => {
    const id = signedInUser(c);
    const tokenId = c.req.valid('param').id;
    if (!(await domain.apiTokens.revoke(id, tokenId))) throw new HttpProblem(404, 'api_token_not_found', 'No such API token.');
    await domain.audit(domain.auditContext(c, id), { action: 'api_token.revoked', subjectType: 'api_token', subjectId: tokenId });
    return c.body(null, 204);
  });

  return app;
}
