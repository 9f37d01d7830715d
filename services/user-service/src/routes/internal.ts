/**
 * Service-to-service routes. `/internal/service-token` is where a service proves its per-service
 * secret (HTTP Basic) and gets a short-lived service token; `/internal/introspect` resolves personal
 * API tokens for other services and answers service tokens only.
 */
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '@shared/app.ts';
import { jsonBody, jsonContent } from '@shared/openapi.ts';
import { requireRole } from '@shared/auth.ts';
import { HttpProblem } from '@shared/errors.ts';
import { IntrospectionRequestSchema, IntrospectionResponseSchema, ServiceTokenResponseSchema } from '@shared/schemas/auth.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import { timingSafeEqual } from 'node:crypto';
import type { UserDomain } from '../domain.ts';


/** Authenticated by its own Basic credentials rather than a bearer token. */
export const INTERNAL_PUBLIC_PATHS = ['/internal/service-token'];

const serviceToken = createRoute({
  method: 'post',
  path: '/internal/service-token',
  tags: ['Internal'],
  summary: 'A service token for a service that proves its secret (HTTP Basic: name and secret)',
  security: [{ basicAuth: [] }],
  responses: { 200: { description: 'Service token.', ...jsonContent(ServiceTokenResponseSchema) }, ...problemResponses(401) },
});

const introspect = createRoute({
  method: 'post',
  path: '/internal/introspect',
  tags: ['Internal'],
  summary: 'Resolve a personal API token (service tokens only)',
  security: [{ bearerAuth: [] }],
  middleware: [requireRole('service')] as const,
  request: jsonBody(IntrospectionRequestSchema),
  responses: { 200: { description: 'Whether the token is live, and whose.', ...jsonContent(IntrospectionResponseSchema) }, ...problemResponses(401, 403, 422) },
});

function secretMatches(expected: string | undefined, given: string): boolean {
  if (!expected) return false;
  const a = Buffer.from(new Bun.CryptoHasher('sha256').update(expected).digest());
  const b = Buffer.from(new Bun.CryptoHasher('sha256').update(given).digest());
  return timingSafeEqual(a, b);
}

export function internalRoutes(domain: UserDomain) {
  const app = new OpenAPIHono<AppEnv>();

  app.openapi(serviceToken, async (c) => {
    const match = /^Basic\s+([A-Za-z0-9+/=]+)$/.exec(c.req.header('authorization') ?? '');
    const decoded = match ? Buffer.from(match[1]!, 'base64').toString('utf8') : '';
    const colon = decoded.indexOf(':');
    const name = decoded.slice(0, colon);
    if (colon < 1 || !secretMatches(domain.config.serviceSecrets.get(name), decoded.slice(colon + 1))) {
      throw new HttpProblem(401, 'invalid_service_credentials', 'Unknown service or wrong secret.', {
        headers: { 'www-authenticate': 'Basic realm="federated-imputation-internal"' },
      });
    }
    const issued = await domain.tokens.serviceToken(name);
    return c.json({ token: issued.token, expiresIn: issued.expiresIn }, 200);
  });

  app.openapi(introspect, async (c) => {
    const result = await domain.apiTokens.introspect(c.req.valid('json').token);
    return c.json(result ? { active: true, ...result } : { active: false }, 200);
  });

  return app;
}
