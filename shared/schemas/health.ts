/** Liveness and readiness bodies; monitoring and the gateway parse these. */
import { z } from '@hono/zod-openapi';

export const LivenessSchema = z
  .object({
    status: z.literal('healthy'),
    service: z.string().openapi({ example: 'user-service' }),
  })
  .openapi('Liveness');

export const CheckOutcomeSchema = z
  .object({
    status: z.enum(['ok', 'failed']),
    latencyMs: z.number(),
    error: z.string().optional(),
  })
  .openapi('CheckOutcome');

export const ReadinessSchema = z
  .object({
    status: z.literal('ready'),
    service: z.string(),
    checks: z.record(z.string(), CheckOutcomeSchema),
  })
  .openapi('Readiness');

/** The gateway's aggregate `/health`, in the original system's shape. */
export const PlatformHealthSchema = z
  .object({
    status: z.enum(['healthy', 'degraded']),
    service: z.string().openapi({ example: 'api-gateway' }),
    services: z.record(z.string(), z.enum(['healthy', 'unhealthy', 'unreachable', 'timeout'])).openapi({
      example: { 'user-service': 'healthy', 'service-registry': 'healthy' },
    }),
  })
  .openapi('PlatformHealth');
