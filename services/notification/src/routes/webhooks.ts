/**
 * The signed-in user's webhook endpoints: register (the signing secret is shown once, in the 201),
 * list, change, delete, send a test delivery, and read the delivery log. Another user's endpoint
 * is 404, never 403. URLs are checked against the outbound policy when registered or changed, and
 * again by the sender before every attempt (DNS answers change).
 */
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppEnv } from '@shared/app.ts';
import type { Db } from '@shared/db.ts';
import { HttpProblem } from '@shared/errors.ts';
import { jsonBody, jsonContent } from '@shared/openapi.ts';
import { decodeCursor, encodeCursor, isUuidPosition, PageQuerySchema, pageOf } from '@shared/schemas/pagination.ts';
import { problemResponses } from '@shared/schemas/problem.ts';
import type { SecretBox } from '@shared/secret-box.ts';
import { webhookDeliveries, webhooks } from '@db/schema/notify.ts';
import { and, count, desc, eq, lt, sql } from 'drizzle-orm';
import type { Context } from 'hono';
import { NOTIFIABLE } from '../domain.ts';
import { MAX_WEBHOOK_URL_LENGTH, webhookTargetRefusal, webhookUrlProblem, type WebhookDeliveryRow, type WebhookRow, type WebhookSender, type WebhookTargetPolicy } from '../webhook-sender.ts';
import { newWebhookSecret, webhookSecretAad } from '../webhook-signing.ts';

const security = [{ bearerAuth: [] }];
const tags = ['Webhooks'];
const IdParam = z.object({ id: z.uuid().openapi({ param: { name: 'id', in: 'path' } }) });
const notFound = () => new HttpProblem(404, 'webhook_not_found', 'No such webhook.');
export const DEFAULT_MAX_WEBHOOKS_PER_USER = 20;
export const TEST_EVENT_TYPE = 'webhook.test';

const EVENT_TYPES = ['*', ...Object.keys(NOTIFIABLE)] as [string, ...string[]];

const UrlSchema = z
  .string()
  .max(MAX_WEBHOOK_URL_LENGTH)
  .superRefine((url, ctx) => {
    const problem = webhookUrlProblem(url);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  })
  .openapi({ example: 'https://example.org/hooks/imputation', description: 'http or https, no credentials, at most 2000 characters' });
const EventTypesSchema = z
  .array(z.enum(EVENT_TYPES))
  .min(1)
  .max(EVENT_TYPES.length)
  .openapi({ description: 'Event types to deliver; `*` for every type you receive', example: ['job.completed', 'job.failed'] });
const DescriptionSchema = z.string().trim().max(500);

export const WebhookSchema = z
  .object({
    id: z.uuid(),
    url: z.string(),
    description: z.string().nullable(),
    eventTypes: z.array(z.string()),
    active: z.boolean(),
    consecutiveFailures: z.number().int().openapi({ description: 'Failed deliveries (each after all its attempts) since the last success' }),
    disabledAt: z.string().nullable(),
    disabledReason: z.string().nullable().openapi({ description: 'Why the endpoint was switched off, when it was' }),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('Webhook');
export type WebhookView = z.infer<typeof WebhookSchema>;

export const WebhookCreatedSchema = WebhookSchema.extend({
  secret: z.string().openapi({ description: 'The signing secret (`whsec_…`). Shown only in this answer: store it now.', example: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' }),
}).openapi('WebhookCreated');

export const WebhookListSchema = z.object({ items: z.array(WebhookSchema) }).openapi('WebhookList');

export const WebhookDeliverySchema = z
  .object({
    id: z.uuid().openapi({ description: 'Also the `webhook-id` header of every attempt' }),
    eventType: z.string(),
    state: z.enum(['pending', 'succeeded', 'failed']),
    attempts: z.number().int(),
    responseStatus: z.number().int().nullable().openapi({ description: 'HTTP status of the last attempt; null when none came back' }),
    responseMs: z.number().int().nullable(),
    lastError: z.string().nullable(),
    deliveredAt: z.string().nullable(),
    nextAttemptAt: z.string().nullable().openapi({ description: 'When a pending delivery is tried next (while its endpoint is active)' }),
    createdAt: z.string(),
  })
  .openapi('WebhookDelivery');

const CreateWebhookSchema = z
  .object({ url: UrlSchema, eventTypes: EventTypesSchema, description: DescriptionSchema.optional() })
  .openapi('CreateWebhook');
const UpdateWebhookSchema = z
  .object({
    url: UrlSchema.optional(),
    eventTypes: EventTypesSchema.optional(),
    description: DescriptionSchema.nullable().optional(),
    active: z.boolean().optional().openapi({ description: 'true re-activates a disabled endpoint (its failure count starts again from 0)' }),
  })
  .refine((v) => Object.values(v).some((x) => x !== undefined), { message: 'give at least one field to change' })
  .openapi('UpdateWebhook');

export function webhookView(row: WebhookRow): WebhookView {
  return {
    id: row.id,
    url: row.url,
    description: row.description,
    eventTypes: row.eventTypes,
    active: row.active,
    consecutiveFailures: row.consecutiveFailures,
    disabledAt: row.disabledAt?.toISOString() ?? null,
    disabledReason: row.disabledReason,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

export function deliveryView(row: WebhookDeliveryRow): z.infer<typeof WebhookDeliverySchema> {
  return {
    id: row.id,
    eventType: row.eventType,
    state: row.state as 'pending' | 'succeeded' | 'failed',
    attempts: row.attempts,
    responseStatus: row.responseStatus,
    responseMs: row.responseMs,
    lastError: row.lastError,
    deliveredAt: row.deliveredAt?.toISOString() ?? null,
    nextAttemptAt: row.state === 'pending' ? row.nextAttemptAt.toISOString() : null,
    createdAt: row.createdAt.toISOString(),
  };
}

const list = createRoute({
  method: 'get',
  path: '/webhooks',
  tags,
  security,
  summary: 'Your webhook endpoints (without their secrets)',
  responses: { 200: { description: 'Your endpoints, oldest first.', ...jsonContent(WebhookListSchema) }, ...problemResponses(401, 403) },
});

const create = createRoute({
  method: 'post',
  path: '/webhooks',
  tags,
  security,
  summary: 'Register an endpoint; the answer carries its signing secret, shown only once',
  description:
    'Deliveries are POSTed as JSON `{type, timestamp, data}` and signed per Standard Webhooks: headers `webhook-id`, ' +
    '`webhook-timestamp` and `webhook-signature` (`v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` keyed with the ' +
    'base64-decoded part of the secret after `whsec_`). Answer 2xx within 10 s; redirects are not followed; failures are ' +
    'retried with backoff, and an endpoint whose deliveries keep failing is disabled.',
  request: jsonBody(CreateWebhookSchema),
  responses: {
    201: { description: 'Registered.', ...jsonContent(WebhookCreatedSchema) },
    ...problemResponses(400, 401, 403, 409, 422),
  },
});

const update = createRoute({
  method: 'patch',
  path: '/webhooks/{id}',
  tags,
  security,
  summary: 'Change an endpoint’s URL, event types, description, or switch it off and on',
  request: { params: IdParam, ...jsonBody(UpdateWebhookSchema) },
  responses: { 200: { description: 'Changed.', ...jsonContent(WebhookSchema) }, ...problemResponses(400, 401, 403, 404, 422) },
});

const remove = createRoute({
  method: 'delete',
  path: '/webhooks/{id}',
  tags,
  security,
  summary: 'Delete an endpoint and its delivery log',
  request: { params: IdParam },
  responses: { 204: { description: 'Deleted.' }, ...problemResponses(400, 401, 403, 404) },
});

const sendTest = createRoute({
  method: 'post',
  path: '/webhooks/{id}/test',
  tags,
  security,
  summary: 'Queue a signed `webhook.test` delivery and try it at once',
  description: 'Answers with the delivery after its first attempt; a failed attempt is retried like any other delivery.',
  request: { params: IdParam },
  responses: {
    201: { description: 'Queued and attempted.', ...jsonContent(WebhookDeliverySchema) },
    ...problemResponses(400, 401, 403, 404, 409),
  },
});

const deliveries = createRoute({
  method: 'get',
  path: '/webhooks/{id}/deliveries',
  tags,
  security,
  summary: 'An endpoint’s delivery log, newest first',
  request: { params: IdParam, query: PageQuerySchema },
  responses: {
    200: { description: 'A page of deliveries.', ...jsonContent(pageOf(WebhookDeliverySchema, 'WebhookDeliveryPage')) },
    ...problemResponses(400, 401, 403, 404),
  },
});

export interface WebhookRoutesDeps extends WebhookTargetPolicy {
  db: Db;
  /** Seals new secrets, bound to the webhook id (`webhookSecretAad`). */
  box: SecretBox;
  /** `deliverNow` answers the test endpoint; `wake` after an endpoint is re-activated. */
  sender: Pick<WebhookSender, 'deliverNow' | 'wake'>;
  maxWebhooksPerUser?: number;
  now?: () => number;
}

function userOf(c: Context<AppEnv>): { id: string; admin: boolean } {
  const identity = c.get('identity');
  if (identity.kind !== 'user') throw new HttpProblem(403, 'users_only', 'Webhooks belong to users; sign in as one.');
  return { id: identity.subject, admin: identity.roles.includes('admin') };
}

/** Platform events (alerts, service health) reach admins only; a subscription nobody would fill is refused. */
function checkEventTypes(types: string[], admin: boolean): string[] {
  const unique = [...new Set(types)];
  const refused = admin ? [] : unique.filter((t) => NOTIFIABLE[t]?.audience === 'admins');
  if (refused.length > 0) {
    throw new HttpProblem(422, 'event_type_not_available', `Only administrators receive ${refused.join(', ')}.`, {
      errors: [{ path: 'body.eventTypes', message: `only administrators receive ${refused.join(', ')}` }],
    });
  }
  return unique.includes('*') ? ['*'] : unique;
}

export function webhookRoutes(deps: WebhookRoutesDeps) {
  const { db } = deps;
  const now = deps.now ?? Date.now;
  const maxPerUser = deps.maxWebhooksPerUser ?? DEFAULT_MAX_WEBHOOKS_PER_USER;
  const app = new OpenAPIHono<AppEnv>();

  async function ownWebhook(c: Context<AppEnv>, id: string): Promise<WebhookRow> {
    const [row] = await db
      .select()
      .from(webhooks)
      .where(and(eq(webhooks.id, id), eq(webhooks.userId, userOf(c).id)));
    if (!row) throw notFound();
    return row;
  }

  async function checkTarget(url: string): Promise<void> {
    const refusal = await webhookTargetRefusal(url, deps);
    if (refusal) {
      throw new HttpProblem(422, 'url_not_allowed', refusal, { errors: [{ path: 'body.url', message: refusal }] });
    }
  }

  app.openapi(list, async (c) => {
    const rows = await db.select().from(webhooks).where(eq(webhooks.userId, userOf(c).id)).orderBy(webhooks.createdAt, webhooks.id);
    return c.json({ items: rows.map(webhookView) }, 200);
  });

  app.openapi(create, async (c) => {
    const user = userOf(c);
    const body = c.req.valid('json');
    const eventTypes = checkEventTypes(body.eventTypes, user.admin);
    await checkTarget(body.url);
    const id = Bun.randomUUIDv7();
    const secret = newWebhookSecret();
    const secretSealed = await deps.box.seal(secret, webhookSecretAad(id));
    const at = new Date(now());
    const row = await db.transaction(async (tx) => {
      // Serialises one user's registrations, so two at once cannot both pass the limit.
      await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${`notify.webhooks:${user.id}`}::text, 0))`);
      const [existing] = await tx.select({ n: count() }).from(webhooks).where(eq(webhooks.userId, user.id));
      if ((existing?.n ?? 0) >= maxPerUser) {
        throw new HttpProblem(409, 'too_many_webhooks', `You have ${maxPerUser} webhooks already, the most allowed; delete one first.`);
      }
      const [inserted] = await tx
        .insert(webhooks)
        .values({ id, userId: user.id, url: body.url, description: body.description || null, eventTypes, secretSealed, createdAt: at, updatedAt: at })
        .returning();
      return inserted!;
    });
    return c.json({ ...webhookView(row), secret }, 201);
  });

  app.openapi(update, async (c) => {
    const user = userOf(c);
    const row = await ownWebhook(c, c.req.valid('param').id);
    const body = c.req.valid('json');
    const at = new Date(now());
    const changes: Partial<typeof webhooks.$inferInsert> = { updatedAt: at };
    if (body.url !== undefined && body.url !== row.url) {
      await checkTarget(body.url);
      changes.url = body.url;
    }
    if (body.eventTypes !== undefined) changes.eventTypes = checkEventTypes(body.eventTypes, user.admin);
    if (body.description !== undefined) changes.description = body.description || null;
    const reactivated = body.active === true && !row.active;
    if (reactivated) Object.assign(changes, { active: true, consecutiveFailures: 0, disabledAt: null, disabledReason: null });
    if (body.active === false && row.active) Object.assign(changes, { active: false, disabledAt: at, disabledReason: 'Switched off by its owner.' });
    const [updated] = await db.update(webhooks).set(changes).where(and(eq(webhooks.id, row.id), eq(webhooks.userId, user.id))).returning();
    if (!updated) throw notFound();
    // Deliveries that waited while it was off go out now rather than at the next interval.
    if (reactivated) deps.sender.wake();
    return c.json(webhookView(updated), 200);
  });

  app.openapi(remove, async (c) => {
    const deleted = await db
      .delete(webhooks)
      .where(and(eq(webhooks.id, c.req.valid('param').id), eq(webhooks.userId, userOf(c).id)))
      .returning({ id: webhooks.id });
    if (deleted.length === 0) throw notFound();
    return c.body(null, 204);
  });

  app.openapi(sendTest, async (c) => {
    const row = await ownWebhook(c, c.req.valid('param').id);
    if (!row.active) throw new HttpProblem(409, 'webhook_disabled', 'This webhook is switched off; re-activate it first.');
    const at = new Date(now());
    const id = Bun.randomUUIDv7();
    await db.insert(webhookDeliveries).values({
      id,
      webhookId: row.id,
      eventType: TEST_EVENT_TYPE,
      payload: { type: TEST_EVENT_TYPE, timestamp: at.toISOString(), data: { webhookId: row.id, message: 'A test delivery from the Federated Imputation Platform.' } },
      nextAttemptAt: at,
      createdAt: at,
    });
    // Null when a running sender claimed it first: it is being attempted anyway.
    const attempted = await deps.sender.deliverNow(id);
    const [delivery] = attempted ? [attempted] : await db.select().from(webhookDeliveries).where(eq(webhookDeliveries.id, id));
    // Deleted meanwhile along with its webhook.
    if (!delivery) throw notFound();
    return c.json(deliveryView(delivery), 201);
  });

  app.openapi(deliveries, async (c) => {
    const row = await ownWebhook(c, c.req.valid('param').id);
    const { limit, cursor } = c.req.valid('query');
    const before = decodeCursor(cursor, isUuidPosition);
    // Ids are UUIDv7: id order is creation order, and a unique tie-break for the cursor.
    const rows = await db
      .select()
      .from(webhookDeliveries)
      .where(and(eq(webhookDeliveries.webhookId, row.id), before ? lt(webhookDeliveries.id, before) : undefined))
      .orderBy(desc(webhookDeliveries.id))
      .limit(limit + 1);
    const page = rows.slice(0, limit);
    return c.json({ items: page.map(deliveryView), nextCursor: rows.length > limit ? encodeCursor(page.at(-1)!.id) : null }, 200);
  });

  return app;
}
