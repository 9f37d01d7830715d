/**
 * Request size limits per route class: uploads (`POST /api/files`) may be as large as file-manager
 * accepts; every other route takes a small JSON body. A body that declares a larger `Content-Length`
 * is refused before the upstream is contacted; a chunked one is counted while it streams and cut at
 * the limit (never buffered to be measured).
 */

export interface BodyLimits {
  /** Largest body of a JSON API request, in bytes. */
  jsonBytes: number;
  /** Largest upload (file-manager's own limit plus room for multipart framing), in bytes. */
  uploadBytes: number;
}

function trimmed(pathname: string): string {
  return pathname.length > 1 && pathname.endsWith('/') ? pathname.replace(/\/+$/, '') : pathname;
}

/** Whether the request is a file upload (the one route class with large bodies). */
export function isUploadRoute(method: string, pathname: string): boolean {
  return method === 'POST' && trimmed(pathname) === '/api/files';
}

/** The largest body the gateway forwards for this request. */
export function bodyLimitFor(limits: BodyLimits, method: string, pathname: string): number {
  return isUploadRoute(method, pathname) ? limits.uploadBytes : limits.jsonBytes;
}

/**
 * Passes `body` through unchanged while counting; once more than `maxBytes` have gone by, calls
 * `onExceeded` and errors the stream, which aborts the upstream request it feeds.
 */
export function limitedBody(body: ReadableStream<Uint8Array>, maxBytes: number, onExceeded: () => void): ReadableStream<Uint8Array> {
  let seen = 0;
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        seen += chunk.byteLength;
        if (seen > maxBytes) {
          onExceeded();
          controller.error(new RangeError(`request body exceeds ${maxBytes} bytes`));
          return;
        }
        controller.enqueue(chunk);
      },
    }),
  );
}
