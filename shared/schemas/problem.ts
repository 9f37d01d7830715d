/** The RFC 9457 problem document every service answers errors with, and response helpers for routes. */
import { z } from '@hono/zod-openapi';

export const ProblemSchema = z
  .object({
    type: z.string().openapi({ example: 'https://federated-imputation.org/problems/validation_failed' }),
    title: z.string().openapi({ example: 'Unprocessable Content' }),
    status: z.number().int().openapi({ example: 422 }),
    detail: z.string().optional(),
    instance: z.string().optional(),
    code: z.string().openapi({ example: 'validation_failed' }),
    requestId: z.string().optional(),
    errors: z
      .array(z.object({ path: z.string(), message: z.string(), code: z.string().optional() }))
      .optional(),
  })
  .passthrough()
  .openapi('Problem');

const DESCRIPTIONS: Record<number, string> = {
  400: 'The request is malformed (bad JSON, bad query or path parameters).',
  401: 'Authentication is missing or invalid.',
  403: 'The caller may not do this.',
  404: 'Not found.',
  409: 'Conflicts with the current state.',
  413: 'The body is too large.',
  422: 'The body is well-formed but fails validation.',
  429: 'Too many requests.',
  500: 'Unexpected server error.',
  502: 'An upstream service could not be reached.',
  503: 'A dependency is unavailable.',
  504: 'An upstream service did not answer in time.',
};

/** `responses` entries for the given error statuses, to spread into a `createRoute` definition. */
export function problemResponses<const S extends number>(...statuses: S[]) {
  const out = {} as Record<S, { description: string; content: { 'application/problem+json': { schema: typeof ProblemSchema } } }>;
  for (const status of statuses) {
    out[status] = {
      description: DESCRIPTIONS[status] ?? 'Error.',
      content: { 'application/problem+json': { schema: ProblemSchema } },
    };
  }
  return out;
}
