/**
 * Follows the signed-in user's live notification stream (`GET /api/notifications/stream`, Server-Sent
 * Events) in the background and hands each notification over, so demo:job can show when the platform
 * told the user their job finished.
 */
import type { DemoApi } from './demo-api.ts';

export interface StreamedNotification {
  id: string;
  type: string;
  title: string;
  body?: string;
  data?: Record<string, unknown> | null;
}

export interface NotificationFollower {
  stop(): void;
}

/** Opens the stream and calls `onNotification` per `event: notification`; `onError` once if the stream cannot be followed. */
export function followNotifications(
  api: DemoApi,
  token: string,
  onNotification: (n: StreamedNotification) => void,
  onError: (message: string) => void,
): NotificationFollower {
  const abort = new AbortController();
  const run = async () => {
    const res = await api.call('open the notification stream', 'GET', '/api/notifications/stream', {
      token,
      headers: { accept: 'text/event-stream' },
      signal: abort.signal,
    });
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, '\n');
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields = new Map<string, string>();
        for (const line of frame.split('\n')) {
          if (line.startsWith(':')) continue; // heartbeat comment
          const colon = line.indexOf(':');
          if (colon <= 0) continue;
          const name = line.slice(0, colon);
          const value = line.slice(colon + 1).replace(/^ /, '');
          fields.set(name, fields.has(name) ? `${fields.get(name)}\n${value}` : value);
        }
        if (fields.get('event') === 'notification' && fields.has('data')) onNotification(JSON.parse(fields.get('data')!) as StreamedNotification);
      }
    }
  };
  run().catch((err) => {
    if (!abort.signal.aborted) onError(err instanceof Error ? err.message : String(err));
  });
  return { stop: () => abort.abort() };
}
