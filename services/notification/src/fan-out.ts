/**
 * An event becomes, for each user it concerns and each channel their preferences keep on: an inbox
 * notification, an email in the send queue, a delivery to each of their webhook endpoints that
 * subscribed to it. All of it is written in the transaction that stores the event, so a redelivered
 * event (same id) produces nothing twice and a crash leaves either everything or nothing.
 */
import { emailOutbox, events, notifications, preferences, webhookDeliveries, webhooks } from '@db/schema/notify.ts';
import type { Db } from '@shared/db.ts';
import type { EventEnvelope } from '@shared/schemas/events.ts';
import { and, eq, inArray } from 'drizzle-orm';
import { NOTIFIABLE, type Channel, type Recipient } from './domain.ts';
import { render } from './templates.ts';
import type { UsersClient } from './users-client.ts';

export type NotificationRow = typeof notifications.$inferSelect;

export interface FanOutDeps {
  db: Db;
  users: UsersClient;
  /** The platform's public base URL, for absolute links in emails. */
  publicUrl: string;
}

export interface FanOutResult {
  duplicate: boolean;
  notifications: NotificationRow[];
  emails: number;
  webhookDeliveries: number;
}

/** Who `event` concerns; resolved before the transaction (it asks user-service). */
async function recipientsOf(users: UsersClient, event: EventEnvelope): Promise<Recipient[]> {
  const info = NOTIFIABLE[event.type];
  if (!info) return [];
  if (info.audience === 'admins') return users.admins();
  if (!event.userId) return [];
  const user = await users.user(event.userId);
  return user ? [user] : [];
}

/** The Standard Webhooks payload: `{type, timestamp, data}`, with the event's own id and source inside `data`. */
export function webhookPayload(event: EventEnvelope): Record<string, unknown> {
  return { type: event.type, timestamp: event.occurredAt, data: { ...event.data, eventId: event.id, source: event.source } };
}

export async function fanOut(deps: FanOutDeps, event: EventEnvelope): Promise<FanOutResult> {
  const result: FanOutResult = { duplicate: false, notifications: [], emails: 0, webhookDeliveries: 0 };
  const [known] = await deps.db.select({ id: events.id }).from(events).where(eq(events.id, event.id));
  if (known) return { ...result, duplicate: true };
  const recipients = await recipientsOf(deps.users, event);
  const info = NOTIFIABLE[event.type];

  return deps.db.transaction(async (tx) => {
    const stored = await tx
      .insert(events)
      .values({ id: event.id, type: event.type, source: event.source, payload: event })
      .onConflictDoNothing({ target: events.id })
      .returning({ id: events.id });
    // A concurrent delivery of the same event got here first.
    if (stored.length === 0) return { ...result, duplicate: true };
    if (!info || recipients.length === 0) return result;

    const ids = recipients.map((r) => r.id);
    const chosen = await tx
      .select()
      .from(preferences)
      .where(and(inArray(preferences.userId, ids), eq(preferences.eventType, event.type)));
    const enabled = (userId: string, channel: Channel) => chosen.find((p) => p.userId === userId && p.channel === channel)?.enabled ?? info.defaults[channel];
    const endpoints = await tx
      .select()
      .from(webhooks)
      .where(and(inArray(webhooks.userId, ids), eq(webhooks.active, true)));

    for (const recipient of recipients) {
      const message = render(event, recipient, deps.publicUrl);
      if (enabled(recipient.id, 'in_app')) {
        const [row] = await tx
          .insert(notifications)
          .values({ id: Bun.randomUUIDv7(), userId: recipient.id, eventId: event.id, type: event.type, title: message.title, body: message.body, link: message.link, data: event.data })
          .returning();
        result.notifications.push(row!);
      }
      if (enabled(recipient.id, 'email') && recipient.email) {
        await tx.insert(emailOutbox).values({
          id: Bun.randomUUIDv7(),
          userId: recipient.id,
          eventId: event.id,
          toAddress: recipient.email,
          subject: message.subject,
          text: message.text,
          html: message.html,
        });
        result.emails++;
      }
      if (enabled(recipient.id, 'webhook')) {
        const subscribed = endpoints.filter((w) => w.userId === recipient.id && (w.eventTypes.includes('*') || w.eventTypes.includes(event.type)));
        if (subscribed.length > 0) {
          await tx.insert(webhookDeliveries).values(
            subscribed.map((w) => ({ id: Bun.randomUUIDv7(), webhookId: w.id, eventId: event.id, eventType: event.type, payload: webhookPayload(event) })),
          );
          result.webhookDeliveries += subscribed.length;
        }
      }
    }
    return result;
  });
}
