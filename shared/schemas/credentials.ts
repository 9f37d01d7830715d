/**
 * The vault's internal contracts: what user-service releases (a user's credential for an external
 * server) and lists (which servers a user holds credentials for). Produced by user-service's
 * `/internal/users/{userId}/credentials[/{serviceId}]`; read by job-processor and service-registry.
 */
import { z } from '@hono/zod-openapi';

/** How a user proves themselves to an external server; `SERVICE_CREDENTIAL_TYPES` adds `none` for open nodes. */
export const CREDENTIAL_TYPES = ['cloudgene-token', 'wes-bearer', 'basic'] as const;
export type CredentialType = (typeof CREDENTIAL_TYPES)[number];

export const ReleasedCredentialSchema = z
  .object({
    type: z.enum(CREDENTIAL_TYPES),
    secret: z.union([z.object({ token: z.string() }), z.object({ username: z.string(), password: z.string() })]),
    expiresAt: z.string().nullable(),
  })
  .openapi('ReleasedCredential');

export type ReleasedCredential = z.infer<typeof ReleasedCredentialSchema>;

/** A stored credential as job-processor may know it: whether it exists and whether it still works. */
export const StoredCredentialSummarySchema = z
  .object({
    serviceId: z.string(),
    type: z.enum(CREDENTIAL_TYPES),
    expiresAt: z.string().nullable().openapi({ description: "The token's own expiry when it is a JWT" }),
    expired: z.boolean(),
  })
  .openapi('StoredCredentialSummary');

export const StoredCredentialSummariesSchema = z.object({ items: z.array(StoredCredentialSummarySchema) }).openapi('StoredCredentialSummaries');
