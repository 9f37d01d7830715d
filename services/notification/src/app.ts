/** notification HTTP app: event intake, in-app notifications, live stream, email and webhooks. Every route outside the kit's public ones needs a verified identity. */
import { PLATFORM_VERSION } from '@shared/version.ts';
import { createServiceApp, type KitDeps, type ServiceApp } from '@shared/app.ts';
import type { Authenticator } from '@shared/auth.ts';
import type { Database } from '@shared/db.ts';
import { pingCheck } from '@shared/health.ts';
import type { Kv } from '@shared/kv.ts';
import type { FanOutResult } from './fan-out.ts';
import { publishNotifications } from './live-feed.ts';
import { internalEventRoutes } from './routes/internal-events.ts';
import { notificationRoutes } from './routes/notifications.ts';
import { preferenceRoutes } from './routes/preferences.ts';
import { streamRoutes } from './routes/stream.ts';
import { webhookRoutes, type WebhookRoutesDeps } from './routes/webhooks.ts';
import type { UsersClient } from './users-client.ts';

export const NOTIFICATION_VERSION = PLATFORM_VERSION;

export interface NotificationDeps extends KitDeps {
  authenticator: Authenticator;
  database: Database;
  kv: Kv;
  users: UsersClient;
  /** The platform's public base URL, for links in emails. */
  publicUrl: string;
  /** Wakes the email and webhook senders after an event queued work for them. */
  wake?: (result: FanOutResult) => void;
  /** Webhook endpoints: their API needs the sealing box, the target policy and the sender (test deliveries). */
  webhooks: Omit<WebhookRoutesDeps, 'db'>;
  /** Aborted when the service stops, ending open live streams so clients reconnect elsewhere. */
  shutdown?: AbortSignal;
  streamHeartbeatMs?: number;
}

/** Builds the notification app from its dependencies; no I/O until a request arrives. */
export function createApp(deps: NotificationDeps): ServiceApp {
  const app = createServiceApp({
    ...deps,
    name: 'notification',
    version: NOTIFICATION_VERSION,
    description: 'event intake, in-app notifications, live stream, email and webhooks',
    // A read-only viewer may still manage their own inbox and preferences.
    auth: { authenticator: deps.authenticator, viewerWritablePrefixes: ['/notifications'] },
    readiness: [pingCheck('database', deps.database), pingCheck('kv', deps.kv)],
  });
  const db = deps.database.db;
  app.route(
    '/',
    internalEventRoutes({
      db,
      users: deps.users,
      publicUrl: deps.publicUrl,
      delivered: async (result) => {
        deps.wake?.(result);
        // Committed already: a failed live publish only delays the stream (clients resume from the inbox).
        await publishNotifications(deps.kv, result.notifications).catch((err) => deps.logger.warn('live publish failed', { error: err instanceof Error ? err.message : String(err) }));
      },
    }),
  );
  app.route('/', notificationRoutes({ db }));
  app.route('/', preferenceRoutes({ db }));
  app.route('/', streamRoutes({ db, kv: deps.kv, shutdown: deps.shutdown, heartbeatMs: deps.streamHeartbeatMs }));
  app.route('/', webhookRoutes({ db, ...deps.webhooks }));
  return app;
}
