/**
 * A small client of the platform's public API (through the gateway), as a script would write one: JSON
 * in and out, a bearer token, and a failure that says which call failed and what the platform answered
 * (the problem's title, detail and field errors), never just a status code.
 */

/** A call to the platform that did not answer as expected. */
export class DemoApiError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
  ) {
    super(message);
    this.name = 'DemoApiError';
  }
}

export interface CallOptions {
  token?: string;
  json?: unknown;
  body?: RequestInit['body'];
  headers?: Record<string, string>;
  /** Statuses that count as success (default any 2xx). */
  expect?: number[];
  signal?: AbortSignal;
}

export interface DemoApi {
  readonly baseUrl: string;
  /** Sends the request and answers the response; throws `DemoApiError` when it fails or has an unexpected status. */
  call(what: string, method: string, path: string, options?: CallOptions): Promise<Response>;
  /** `call`, then the JSON body. */
  json<T = any>(what: string, method: string, path: string, options?: CallOptions): Promise<T>;
}

/** A client for the gateway at `baseUrl` (`http://127.0.0.1:8000`). */
export function demoApi(baseUrl: string): DemoApi {
  const base = baseUrl.replace(/\/+$/, '');
  async function call(what: string, method: string, path: string, options: CallOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    let body = options.body;
    if (options.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.json);
    }
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, { method, headers, body, signal: options.signal ?? AbortSignal.timeout(30_000) });
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new DemoApiError(`${what}: no answer from ${base} (${reason}). Is the demo running (npm run demo)?`, null);
    }
    const ok = options.expect ? options.expect.includes(res.status) : res.ok;
    if (!ok) throw new DemoApiError(`${what}: ${method} ${path} answered ${res.status}: ${await problemText(res)}`, res.status);
    return res;
  }
  return {
    baseUrl: base,
    call,
    async json<T>(what: string, method: string, path: string, options?: CallOptions): Promise<T> {
      return (await (await call(what, method, path, options)).json()) as T;
    },
  };
}

/** The useful part of an error answer: an RFC 9457 problem's title, detail and field errors, or the start of the body. */
async function problemText(res: Response): Promise<string> {
  const text = await res.text().catch(() => '');
  try {
    const problem = JSON.parse(text) as { title?: string; detail?: string; errors?: { path?: string; message?: string }[] };
    const parts = [problem.title, problem.detail].filter(Boolean);
    for (const e of problem.errors ?? []) parts.push(`${e.path ?? ''}: ${e.message ?? ''}`);
    if (parts.length > 0) return parts.join(' — ');
  } catch {
    // Not JSON: show the text itself.
  }
  return text.slice(0, 300) || '(empty body)';
}
