/** Who the recipients are: user-service's internal directory (notification's service token only). */
import { DirectoryUserSchema, DirectoryUsersSchema, type DirectoryUser } from '@shared/schemas/directory.ts';
import type { ServiceCredential } from '@shared/auth.ts';
import { UpstreamError, type HttpClient } from '@shared/http-client.ts';
import type { Recipient } from './domain.ts';

export interface UsersClient {
  /** An active user, or null when there is none (deleted, deactivated). */
  user(id: string): Promise<Recipient | null>;
  /** Every active admin. */
  admins(): Promise<Recipient[]>;
}

const recipient = (u: DirectoryUser): Recipient => ({ id: u.id, email: u.email, displayName: u.displayName });

export function usersClient(client: HttpClient, credential: ServiceCredential): UsersClient {
  const headers = async () => ({ authorization: await credential.authorization() });
  return {
    async user(id) {
      try {
        const u = await client.call({ path: `/internal/directory/users/${id}`, headers: await headers(), schema: DirectoryUserSchema });
        return u.isActive ? recipient(u) : null;
      } catch (err) {
        if (err instanceof UpstreamError && err.upstreamStatus === 404) return null;
        throw err;
      }
    },
    async admins() {
      const body = await client.call({ path: '/internal/directory/users', query: { role: 'admin' }, headers: await headers(), schema: DirectoryUsersSchema });
      return body.items.filter((u) => u.isActive).map(recipient);
    },
  };
}
