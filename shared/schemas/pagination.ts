/** `?limit=&cursor=` → `{ items, nextCursor }`, with opaque cursors over a stable order. */
import { z } from '@hono/zod-openapi';
import { HttpProblem } from '../errors.ts';

export const PageQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20).openapi({ example: 20 }),
  cursor: z.string().max(200).optional().openapi({ description: 'nextCursor of the previous page' }),
});

export function pageOf<T extends z.ZodType>(item: T, name: string) {
  return z.object({ items: z.array(item), nextCursor: z.string().nullable() }).openapi(name);
}

export function encodeCursor(position: string): string {
  return Buffer.from(position, 'utf8').toString('base64url');
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * True for a UUID as PostgreSQL prints it (lowercase): the position of a cursor over UUIDv7 ids, whose
 * order is creation order. Pass it to `decodeCursor`.
 */
export const isUuidPosition = (position: string): boolean => UUID.test(position);

const TIME_ID = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\|([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

/**
 * True for `<ISO time>|<uuid>`, the position of a cursor over rows ordered by a timestamp and then an
 * id, when the time is a real one (an impossible date would reach the database as an error). Pass it to `decodeCursor`.
 */
export const isTimeUuidPosition = (position: string): boolean => !Number.isNaN(Date.parse(TIME_ID.exec(position)?.[1] ?? ''));

/** The position inside a cursor; a 400 problem when it was not made by `encodeCursor`. */
export function decodeCursor(cursor: string | undefined, valid: (position: string) => boolean): string | undefined {
  if (cursor === undefined) return undefined;
  const position = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!valid(position)) throw new HttpProblem(400, 'invalid_cursor', 'The cursor is not one this endpoint handed out.');
  return position;
}
