/** Internal auth contracts between user-service and every other service. */
import { z } from '@hono/zod-openapi';

export const IntrospectionRequestSchema = z.object({ token: z.string().min(1).max(200) }).openapi('IntrospectionRequest');

export const IntrospectionResponseSchema = z
  .object({
    active: z.boolean(),
    userId: z.string().optional(),
    roles: z.array(z.string()).optional(),
    tokenId: z.string().optional(),
  })
  .openapi('IntrospectionResponse');

export const ServiceTokenResponseSchema = z
  .object({ token: z.string(), expiresIn: z.number().int() })
  .openapi('ServiceTokenResponse');
