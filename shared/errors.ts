/**
 * One error shape everywhere: RFC 9457 problem details. Handlers throw `HttpProblem`;
 * the kit's `onError` renders it with the request id. Unknown errors become a generic 500.
 */
export interface ProblemFieldError {
  /** Dotted path of the offending field, e.g. `body.email` or `query.limit`. */
  path: string;
  message: string;
  code?: string;
}

export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance?: string;
  code: string;
  requestId?: string;
  errors?: ProblemFieldError[];
  [extension: string]: unknown;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** A problem a handler means to answer with; `code` is a stable machine-readable slug. */
export class HttpProblem extends Error {
  readonly status: number;
  readonly code: string;
  readonly detail: string | undefined;
  readonly errors: ProblemFieldError[] | undefined;
  readonly extensions: Record<string, unknown>;
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    code: string,
    detail?: string,
    options: { errors?: ProblemFieldError[]; extensions?: Record<string, unknown>; headers?: Record<string, string> } = {},
  ) {
    super(detail ?? code);
    this.name = 'HttpProblem';
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.errors = options.errors;
    this.extensions = options.extensions ?? {};
    this.headers = options.headers ?? {};
  }

  toProblem(instance?: string, requestId?: string): ProblemDetails {
    return problemBody({
      status: this.status,
      code: this.code,
      detail: this.detail,
      instance,
      requestId,
      errors: this.errors,
      extensions: this.extensions,
    });
  }
}

export function problemTitle(status: number): string {
  return TITLES[status] ?? (status >= 500 ? 'Server Error' : 'Client Error');
}

/** Builds the JSON body of a problem response. */
export function problemBody(p: {
  status: number;
  code: string;
  detail?: string | undefined;
  instance?: string | undefined;
  requestId?: string | undefined;
  errors?: ProblemFieldError[] | undefined;
  extensions?: Record<string, unknown>;
}): ProblemDetails {
  const body: ProblemDetails = {
    ...p.extensions,
    type: `https://federated-imputation.org/problems/${p.code}`,
    title: problemTitle(p.status),
    status: p.status,
    code: p.code,
  };
  if (p.detail !== undefined) body.detail = p.detail;
  if (p.instance !== undefined) body.instance = p.instance;
  if (p.requestId !== undefined) body.requestId = p.requestId;
  if (p.errors !== undefined) body.errors = p.errors;
  return body;
}

/** A complete `application/problem+json` Response, for code paths outside Hono's context (proxies, fetch handlers). */
export function problemResponse(body: ProblemDetails, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status: body.status,
    headers: { 'content-type': PROBLEM_CONTENT_TYPE, ...headers },
  });
}
