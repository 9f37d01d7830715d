/** The vault's one way out: job-processor, with its service token, fetches a user's credential; every release is audited. */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '@shared/app.ts';
import { requireRole } from '@shared/auth.ts';
import { HttpProblem } from '@shared/errors.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import type { UserDomain } from '../domain.ts';
import { ReleasedCredentialSchema, ServiceIdParam } from '../schemas.ts';

/** Services allowed to receive plaintext credentials. */
const RELEASE_TO = new Set(['job-processor']);

const releaseRoute = createRoute({
  method: 'get',
  path: '/internal/users/{userId}/credentials/{serviceId}',
  tags: ['Internal'],
  security: [{ bearerAuth: [] }],
  summary: "Release a user's credential for an external server (job-processor only; audited)",
  middleware: [requireRole('service')] as const,
  request: { params: ServiceIdParam.extend({ userId: z.uuid() }) },
  responses: { 200: { description: 'The credential.', content: { 'application/json': { schema: ReleasedCredentialSchema } } }, ...problemResponses(400, 401, 403, 404) },
});

export function internalCredentialRoutes(domain: UserDomain) {
  const app = new OpenAPIHono<AppEnv>();
  app.openapi(releaseRoute, async (c) => {
    const caller = c.get('identity');
    const { userId, serviceId } = c.req.valid('param');
    if (!RELEASE_TO.has(caller.subject)) {
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
