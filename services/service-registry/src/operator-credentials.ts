/**
 * Operator credentials: the registry's own tokens for the external servers it probes and syncs
 * (a Cloudgene API token for reading the app form, a WES bearer for a protected service-info).
 * They come from configuration (`OPERATOR_TOKENS`, slug → token), or, for a sync an admin starts,
 * from that admin's own credential in the user-service vault, stored under the service's slug.
 */
import { z } from '@hono/zod-openapi';
import type { ServiceCredential } from '@shared/auth.ts';
import { UpstreamError, type HttpClient } from '@shared/http-client.ts';
import { ReleasedCredentialSchema } from '@shared/schemas/credentials.ts';
import { SlugSchema } from '@shared/schemas/registry.ts';

export interface OperatorCredentials {
  /** A configured token for health probes; probes never use anyone's vault. */
  forProbe(slug: string): string | undefined;
  /** For a sync started by `adminUserId`: the configured token first, else that admin's own vault credential. */
  forSync(slug: string, adminUserId: string): Promise<string | null>;
}

/** Fetches a user's stored token for a service slug; null when they have none. */
export type CredentialRelease = (userId: string, slug: string) => Promise<string | null>;

/**
 * `OPERATOR_TOKENS` for the service's env schema: a JSON object of service slug → token, e.g.
 * `{"michigan":"eyJ…","elwazi":"…"}`; unset means no configured tokens.
 */
export const operatorTokensEnv = {
  OPERATOR_TOKENS: z
    .string()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined || value.trim() === '') return {} as Record<string, string>;
      let parsed: unknown;
      try {
        parsed = JSON.parse(value);
      } catch {
        ctx.addIssue({ code: 'custom', message: 'must be a JSON object of service slug → token' });
        return z.NEVER;
      }
      const result = z.record(SlugSchema, z.string().min(1)).safeParse(parsed);
      if (!result.success) {
        ctx.addIssue({ code: 'custom', message: 'must map service slugs (lowercase letters, digits, hyphens) to non-empty token strings' });
        return z.NEVER;
      }
      return result.data;
    }),
};

/** Builds the lookup over configured tokens and an optional vault release. */
export function createOperatorCredentials(deps: { configured: Record<string, string>; release?: CredentialRelease }): OperatorCredentials {
  const configured = new Map(Object.entries(deps.configured));
  return {
    forProbe: (slug) => configured.get(slug),
    async forSync(slug, adminUserId) {
      const token = configured.get(slug);
      if (token !== undefined) return token;
      return deps.release ? deps.release(adminUserId, slug) : null;
    },
  };
}

/**
 * Releases an admin's stored credential through user-service (`GET /internal/users/{id}/credentials/{slug}`,
 * with this service's credential; user-service releases to service-registry only for admins and audits
 * it). Answers the token, or null when the user has none or stored a username/password instead.
 */
export function vaultRelease(client: HttpClient, credential: ServiceCredential): CredentialRelease {
  return async (userId, slug) => {
    try {
      const released = await client.call({
        path: `/internal/users/${encodeURIComponent(userId)}/credentials/${encodeURIComponent(slug)}`,
        headers: { authorization: await credential.authorization() },
        schema: ReleasedCredentialSchema,
      });
      return 'token' in released.secret ? released.secret.token : null;
    } catch (err) {
      if (err instanceof UpstreamError && err.upstreamStatus === 404) return null;
      throw err;
    }
  };
}
