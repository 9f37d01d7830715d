/** user-service's internal directory entry: how notification (emails, admin audiences) and monitoring see a user. */
import { z } from '@hono/zod-openapi';

export const DirectoryUserSchema = z
  .object({ id: z.uuid(), email: z.string(), displayName: z.string(), roles: z.array(z.string()), isActive: z.boolean() })
  .openapi('DirectoryUser');

export const DirectoryUsersSchema = z.object({ items: z.array(DirectoryUserSchema) }).openapi('DirectoryUsers');

export type DirectoryUser = z.infer<typeof DirectoryUserSchema>;
