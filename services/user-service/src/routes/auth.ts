/** Public auth routes: register, login, refresh, logout, and the JWKS. */
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '@shared/app.ts';
import { jsonBody, jsonContent } from '@shared/openapi.ts';
import { HttpProblem } from '@shared/errors.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { accountView } from '../accounts.ts';
import type { UserDomain } from '../domain.ts';
import { JwksSchema, LoginBody, RefreshBody, RegisterBody, SessionSchema, UserSchema } from '../schemas.ts';


export const AUTH_PUBLIC_PATHS = ['/auth/register', '/auth/login', '/auth/refresh', '/auth/logout', '/auth/jwks', '/.well-known/jwks.json'];

const registerRoute = createRoute({
  method: 'post',
  path: '/auth/register',
  tags: ['Auth'],
  summary: 'Create an account (role researcher)',
  request: jsonBody(RegisterBody),
  responses: { 201: { description: 'Registered.', ...jsonContent(UserSchema) }, ...problemResponses(400, 409, 422, 429) },
});

const loginRoute = createRoute({
  method: 'post',
  path: '/auth/login',
  tags: ['Auth'],
  summary: 'Log in with username or email',
  request: jsonBody(LoginBody),
  responses: { 200: { description: 'A new session.', ...jsonContent(SessionSchema) }, ...problemResponses(400, 401, 422, 429) },
});

const refreshRoute = createRoute({
  method: 'post',
  path: '/auth/refresh',
  tags: ['Auth'],
  summary: 'Exchange a refresh token for a new session (the old token stops working)',
  request: jsonBody(RefreshBody),
  responses: { 200: { description: 'A rotated session.', ...jsonContent(SessionSchema) }, ...problemResponses(400, 401, 422) },
});

const logoutRoute = createRoute({
  method: 'post',
  path: '/auth/logout',
  tags: ['Auth'],
  summary: "Revoke the session the refresh token belongs to and the user's access tokens",
  request: jsonBody(RefreshBody),
  responses: { 204: { description: 'Logged out (also for unknown tokens).' }, ...problemResponses(400, 422) },
});

const jwksRoute = (path: string) =>
  createRoute({
    method: 'get',
    path,
    tags: ['Auth'],
    summary: 'Public keys that verify access tokens (current and recently retired)',
    responses: { 200: { description: 'JSON Web Key Set.', ...jsonContent(JwksSchema) } },
  });

export function authRoutes(domain: UserDomain) {
  const app = new OpenAPIHono<AppEnv>();

  app.openapi(registerRoute, async (c) => {
    const input = c.req.valid('json');
    const perHour = domain.config.registrationsPerHourPerIp ?? 10;
    const rate = await domain.kv.rateLimit(`register:ip:${domain.clientIp(c)}`, perHour, 60 * 60_000);
    if (!rate.allowed) throw new HttpProblem(429, 'too_many_registrations', 'Too many registrations from your address; try again later.');
    const row = await domain.accounts.register(input);
    await domain.audit(domain.auditContext(c, row.id), { action: 'user.registered', subjectType: 'user', subjectId: row.id });
    return c.json(accountView(row), 201);
  });

  app.openapi(loginRoute, async (c) => {
    const { login, password } = c.req.valid('json');
    const ip = domain.clientIp(c);
    const account = await domain.accounts.findByLogin(login);
    // Counted per account, not per name typed: failures by username also lock login by email.
    const throttleKey = account ? `account:${account.id}` : `login:${login.toLowerCase()}`;
    await domain.throttle.check(throttleKey, ip);
    const matches = await domain.accounts.passwordMatches(account, password);
    const row = matches ? account : null;
    if (!row || !row.isActive) {
      await domain.throttle.recordFailure(throttleKey);
      await domain.audit(domain.auditContext(c, null), {
        action: 'login.failed',
        subjectType: account ? 'user' : undefined,
        subjectId: account?.id,
        details: { login: login.slice(0, 254), reason: !account ? 'unknown_login' : matches ? 'inactive' : 'wrong_password' },
      });
      throw new HttpProblem(401, 'invalid_credentials', 'The username/email or password is not correct.');
    }
    await domain.throttle.recordSuccess(throttleKey);
    await domain.accounts.recordLogin(row.id);
    const session = await domain.startSession({ ...row, lastLoginAt: new Date() }, c);
    await domain.audit(domain.auditContext(c, row.id), { action: 'login.succeeded', subjectType: 'user', subjectId: row.id });
    return c.json(session, 200);
  });

  app.openapi(refreshRoute, async (c) => {
    const { refreshToken } = c.req.valid('json');
    const rotated = await domain.refresh.rotate(refreshToken, { ip: domain.clientIp(c), userAgent: c.req.header('user-agent') });
    const row = await domain.accounts.get(rotated.userId);
    if (!row || !row.isActive) throw new HttpProblem(401, 'invalid_refresh_token', 'The refresh token is invalid, expired or revoked. Log in again.');
    const access = await domain.tokens.accessToken(row);
    return c.json(
      { accessToken: access.token, refreshToken: rotated.token, tokenType: 'Bearer' as const, expiresIn: access.expiresIn, user: accountView(row) },
      200,
    );
  });

  app.openapi(logoutRoute, async (c) => {
    const { refreshToken } = c.req.valid('json');
    const revoked = await domain.refresh.revokeFamilyOf(refreshToken);
    if (revoked) {
      await domain.revokeAccessTokens(revoked.userId);
      await domain.audit(domain.auditContext(c, revoked.userId), { action: 'logout', subjectType: 'user', subjectId: revoked.userId });
    }
    return c.body(null, 204);
  });

  for (const path of ['/.well-known/jwks.json', '/auth/jwks']) {
    app.openapi(jwksRoute(path), async (c) => {
      c.header('cache-control', 'public, max-age=300');
      return c.json(await domain.keys.jwks(), 200);
    });
  }

  return app;
}
