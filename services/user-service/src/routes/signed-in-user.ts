import type { AppEnv } from '@shared/app.ts';
import { HttpProblem } from '@shared/errors.ts';
import type { Context } from 'hono';

/** The user a personal route acts for; service tokens are refused (they act for no user). */
export function signedInUser(c: Context<AppEnv>): string {
  const identity = c.get('identity');
  if (identity.kind !== 'user') throw new HttpProblem(403, 'users_only', 'This endpoint acts for a signed-in user.');
  return identity.subject;
}
