/** How the runners start notification: port 8005, Postgres schema `notify`; the email and webhook senders run beside the API. */
import { z } from '@hono/zod-openapi';
import { kitDepsFromEnv } from '@shared/app.ts';
import { externalCallsEnv, serviceEnvSchema } from '@shared/config.ts';
import { createHttpClient } from '@shared/http-client.ts';
import { outboundPolicy } from '@shared/outbound.ts';
import { configuredKeys, createSecretBox } from '@shared/secret-box.ts';
import { join } from 'node:path';
import { createServiceAuth } from '@shared/service-auth.ts';
import { defineService } from '@shared/service.ts';
import { createApp, NOTIFICATION_VERSION } from './app.ts';
import { createEmailSender } from './email-sender.ts';
import { createWebhookSender } from './webhook-sender.ts';
import { smtpEnv, transportFromEnv } from './smtp-transport.ts';
import { usersClient } from './users-client.ts';

export const definition = defineService({
  name: 'notification',
  version: NOTIFICATION_VERSION,
  port: 8005,
  schema: 'notify',
  envSchema: serviceEnvSchema(8005).extend({
    ...externalCallsEnv,
    ...smtpEnv,
    /** The platform's public address, for links in emails. */
    PUBLIC_URL: z.url({ protocol: /^https?$/ }).default('http://127.0.0.1:8000'),
    /** Seals webhook signing secrets (`id:base64 of 32 bytes`, comma-separated); a local key file when unset. */
    ENCRYPTION_KEYS: z.string().optional(),
    /** Let webhooks reach private and loopback addresses while external calls are on (a closed network). */
    WEBHOOK_ALLOW_PRIVATE_TARGETS: z.stringbool().default(false),
    STREAM_HEARTBEAT_SECONDS: z.coerce.number().min(1).max(300).default(15),
  }),
  build: async (env, infra) => {
    const auth = createServiceAuth('notification', env, infra.kv);
    const users = usersClient(createHttpClient({ service: 'user-service', baseUrl: env.USER_SERVICE_URL, timeoutMs: 5_000 }), auth.credential);
    const smtp = transportFromEnv(env);
    // Without SMTP the emails stay queued in notify.email_outbox until a mail server is configured.
    const emailSender = smtp ? createEmailSender({ db: infra.database.db, transport: smtp.transport, from: smtp.from, logger: infra.logger.child({ worker: 'email' }) }) : null;
    const box = await createSecretBox(await configuredKeys(env.ENCRYPTION_KEYS, join(env.DATA_DIR, 'secrets', 'notify-webhooks.key')));
    const targets = { outbound: outboundPolicy(env.EXTERNAL_CALLS), allowPrivateTargets: env.WEBHOOK_ALLOW_PRIVATE_TARGETS };
    const webhookSender = createWebhookSender({ db: infra.database.db, box, logger: infra.logger.child({ worker: 'webhooks' }), ...targets });
    const shutdown = new AbortController();
    return {
      start: async () => {
        if (!smtp) infra.logger.warn('SMTP is not configured: emails stay queued in notify.email_outbox');
        emailSender?.start();
        webhookSender.start();
      },
      stop: async () => {
        shutdown.abort();
        await Promise.all([emailSender?.stop(), webhookSender.stop()]);
        smtp?.transport.close?.();
      },
      app: createApp({
        ...kitDepsFromEnv(env, infra.logger),
        authenticator: auth.authenticator,
        database: infra.database,
        kv: infra.kv,
        users,
        publicUrl: env.PUBLIC_URL,
        shutdown: shutdown.signal,
        streamHeartbeatMs: env.STREAM_HEARTBEAT_SECONDS * 1000,
        webhooks: { box, sender: webhookSender, ...targets },
        wake: (result) => {
          if (result.emails > 0) emailSender?.wake();
          if (result.webhookDeliveries > 0) webhookSender.wake();
        },
      }),
    };
  },
});
