/** GA4GH service-info 1.0.0, served by every service at `/service-info`. */
import { z } from '@hono/zod-openapi';

export const ServiceTypeSchema = z
  .object({
    group: z.string().openapi({ example: 'org.ga4gh' }),
    artifact: z.string().openapi({ example: 'service-registry' }),
    version: z.string().openapi({ example: '1.0.0' }),
  })
  .openapi('ServiceType');

export const ServiceInfoSchema = z
  .object({
    id: z.string().openapi({ example: 'org.federated-imputation.service-registry' }),
    name: z.string(),
    type: ServiceTypeSchema,
    description: z.string().optional(),
    organization: z.object({ name: z.string(), url: z.string() }),
    contactUrl: z.string().optional(),
    documentationUrl: z.string().optional(),
    createdAt: z.string().optional(),
    updatedAt: z.string().optional(),
    environment: z.string().optional(),
    version: z.string(),
  })
  .openapi('ServiceInfo');

export type ServiceInfo = z.infer<typeof ServiceInfoSchema>;
