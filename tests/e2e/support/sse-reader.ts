/**
 * A Server-Sent Events client as a browser's EventSource would read the platform's live
 * notifications (`GET /api/notifications/stream` through the gateway): the body is parsed as it
 * arrives into events (`id`, `event`, `data`, comment lines), kept in order for the test to inspect.
 */

export interface SseEvent {
  id?: string;
  event?: string;
  data?: string;
  /** Comment lines (`: heartbeat`). */
  comments: string[];
}

/** A notification as the stream sends it (`event: notification`, `data:` its JSON). */
export interface StreamedNotification {
  id: string;
  type: string;
  title: string;
  body: string;
  link: string | null;
  data: Record<string, unknown> | null;
  createdAt: string;
}

export interface EventStream {
  readonly response: Response;
  /** Every event so far, in arrival order. */
  readonly events: SseEvent[];
  /** The `notification` events so far, parsed. */
  notifications(): StreamedNotification[];
  /**
   * Waits until `done` holds for the notifications received so far and answers them; throws (naming
   * `what` and listing what arrived) when the stream ends first or after `timeoutMs`.
   */
  until(done: (received: StreamedNotification[]) => boolean, what: string, timeoutMs?: number): Promise<StreamedNotification[]>;
  close(): void;
}

/** Opens `url` as an event stream with `headers` (e.g. the bearer token); throws unless it answers 200 `text/event-stream`. */
export async function openEventStream(url: string, headers: Record<string, string> = {}): Promise<EventStream> {
  const controller = new AbortController();
  const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal });
  if (response.status !== 200 || !response.headers.get('content-type')?.startsWith('text/event-stream') || !response.body) {
    const text = await response.text().catch(() => '');
    throw new Error(`event stream ${url}: ${response.status} ${response.headers.get('content-type')} ${text}`);
  }
  const events: SseEvent[] = [];
  let waiters: (() => void)[] = [];
  let ended = false;
  const wakeAll = () => {
    for (const wake of waiters) wake();
    waiters = [];
  };

  void (async () => {
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        // The spec allows CRLF and CR line ends; normalise before splitting into blocks.
        buffer += value.replace(/\r\n?/g, '\n');
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          events.push(parseBlock(buffer.slice(0, end)));
          buffer = buffer.slice(end + 2);
        }
        wakeAll();
      }
    } catch {
      // Aborted by close(), or the connection dropped: either way the stream has ended.
    } finally {
      ended = true;
      wakeAll();
    }
  })();

  const notifications = () => events.filter((e) => e.event === 'notification' && e.data !== undefined).map((e) => JSON.parse(e.data!) as StreamedNotification);

  return {
    response,
    events,
    notifications,
    async until(done, what, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (!done(notifications())) {
        const summary = () => JSON.stringify(notifications().map((n) => ({ type: n.type, jobId: n.data?.jobId, state: n.data?.state })));
        if (ended) throw new Error(`the event stream ended before ${what}; received ${summary()}`);
        if (Date.now() >= deadline) throw new Error(`no ${what} on the event stream within ${timeoutMs} ms; received ${summary()}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 200);
        });
      }
      return notifications();
    },
    close: () => controller.abort(),
  };
}

function parseBlock(block: string): SseEvent {
  const event: SseEvent = { comments: [] };
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) {
      event.comments.push(line.slice(1).trim());
      continue;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'data') event.data = event.data === undefined ? value : `${event.data}\n${value}`;
    else if (field === 'id' || field === 'event') event[field] = value;
  }
  return event;
}
