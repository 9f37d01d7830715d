/**
 * The vault's one way out, every release audited: job-processor, with its service token, fetches a
 * user's credential to submit their job; service-registry fetches an administrator's own credential
 * to sync a service as its operator, and nobody else's. job-processor may also list which servers a
 * user holds credentials for (metadata only, no release), to refuse a job it could not submit.
 */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '@shared/app.ts';
import { requireRole, requireService } from '@shared/auth.ts';
import { HttpProblem } from '@shared/errors.ts';
import { jsonContent } from '@shared/openapi.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import type { UserDomain } from '../domain.ts';
import { ReleasedCredentialSchema, StoredCredentialSummariesSchema } from '@shared/schemas/credentials.ts';
import { ServiceIdParam } from '../schemas.ts';

/** Services allowed to receive plaintext credentials of any user. */
const RELEASE_TO = new Set(['job-processor']);
/** Services allowed to receive an operator credential: one stored by an active administrator. */
const RELEASE_ADMIN_CREDENTIALS_TO = new Set(['service-registry']);

const releaseRoute = createRoute({
  method: 'get',
  path: '/internal/users/{userId}/credentials/{serviceId}',
  tags: ['Internal'],
  security: [{ bearerAuth: [] }],
  summary: "Release a user's credential for an external server (job-processor; service-registry for admins' credentials only; audited)",
  middleware: [requireRole('service')] as const,
  request: { params: ServiceIdParam.extend({ userId: z.uuid() }) },
  responses: { 200: { description: 'The credential.', content: { 'application/json': { schema: ReleasedCredentialSchema } } }, ...problemResponses(400, 401, 403, 404) },
});

const listRoute = createRoute({
  method: 'get',
  path: '/internal/users/{userId}/credentials',
  tags: ['Internal'],
  security: [{ bearerAuth: [] }],
  summary: "Which external servers a user holds credentials for, with their expiry; no secrets (job-processor only)",
  // Metadata only (never a secret), so not a release and not audited as one.
  middleware: [requireService('job-processor')] as const,
  request: { params: z.object({ userId: z.uuid() }) },
  responses: {
    200: {
      description: "The user's stored credentials (an unknown user has none).",
      ...jsonContent(StoredCredentialSummariesSchema),
    },
    ...problemResponses(400, 401, 403),
  },
});

export function internalCredentialRoutes(domain: UserDomain) {
  const app = new OpenAPIHono<AppEnv>();
  app.openapi(listRoute, async (c) => {
    const views = await domain.vault.list(c.req.valid('param').userId);
    return c.json({ items: views.map(({ serviceId, type, expiresAt, expired }) => ({ serviceId, type, expiresAt, expired })) }, 200);
  });
  app.openapi(releaseRoute, async (c) => {
    const caller = c.get('identity');
    const { userId, serviceId } = c.req.valid('param');
    if (RELEASE_ADMIN_CREDENTIALS_TO.has(caller.subject)) {
      const account = await domain.accounts.get(userId);
      if (!account?.isActive || !account.roles.includes('admin')) {
        await domain.audit(domain.auditContext(c, null), {
          action: 'credential.release_refused',
          subjectType: 'credential',
          subjectId: serviceId,
          details: { userId, to: caller.subject, reason: 'not_admin' },
        });
        throw new HttpProblem(403, 'release_forbidden', `${caller.subject} may only receive an active administrator's credential.`);
      }
    } else if (!RELEASE_TO.has(caller.subject)) {
      throw new HttpProblem(403, 'release_forbidden', 'Only job-processor may receive stored credentials.');
    }
    const released = await domain.vault.release(userId, serviceId);
    await domain.audit(domain.auditContext(c, null), {
      action: released ? 'credential.released' : 'credential.release_missing',
      subjectType: 'credential',
      subjectId: serviceId,
      details: { userId, to: caller.subject },
    });
    if (!released) throw new HttpProblem(404, 'credential_not_found', 'The user has no credential stored for that service.');
    return c.json(released, 200);
  });
  return app;
}
