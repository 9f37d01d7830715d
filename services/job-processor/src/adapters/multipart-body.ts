/**
 * A multipart/form-data request body built as a stream: text fields and file parts whose content is
 * itself a stream, opened only when the body reaches it and pulled chunk by chunk. Input VCFs can be
 * gigabytes, so nothing here ever holds a whole file. When every file part's size is known the exact
 * Content-Length is computed up front (Cloudgene's upload handling and most proxies want one);
 * otherwise the body goes out chunked.
 */

/** A text field (`refpanel=hapmap-2`). */
export interface TextPart {
  name: string;
  value: string;
}

/** A file part; `open` is called once, when the body reaches this part. */
export interface FilePart {
  name: string;
  filename: string;
  contentType?: string;
  /** Exact byte count of what `open` yields; null when unknown (the body is then sent chunked). */
  size: number | null;
  open(): Promise<ReadableStream<Uint8Array>>;
}

export type MultipartPart = TextPart | FilePart;

export interface MultipartBody {
  body: ReadableStream<Uint8Array>;
  boundary: string;
  /** `multipart/form-data; boundary=…` */
  contentType: string;
  /** Exact body length when every file part's size is known, else null. */
  contentLength: number | null;
}

const encoder = new TextEncoder();
const CRLF = encoder.encode('\r\n');

/** The part of a stream reader the body uses (Bun's and Node's reader types differ in extras). */
interface ChunkReader {
  read(): Promise<{ done: boolean; value?: Uint8Array | undefined }>;
  cancel(reason?: unknown): Promise<void>;
}

const isFilePart = (part: MultipartPart): part is FilePart => 'open' in part;

/**
 * Escapes a Content-Disposition parameter the way browsers encode form data (WHATWG HTML): `"` and
 * line breaks are percent-encoded so a crafted file name cannot end the header or forge another part.
 */
function escapeParam(value: string): string {
  return value.replace(/\r\n|\r|\n/g, '%0D%0A').replace(/"/g, '%22');
}

function partHeader(boundary: string, part: MultipartPart): Uint8Array {
  let header = `--${boundary}\r\nContent-Disposition: form-data; name="${escapeParam(part.name)}"`;
  if (isFilePart(part)) {
    header += `; filename="${escapeParam(part.filename)}"\r\nContent-Type: ${part.contentType ?? 'application/octet-stream'}`;
  }
  return encoder.encode(`${header}\r\n\r\n`);
}

/** A boundary of 24 random hex digits: it cannot plausibly occur inside a part. */
function randomBoundary(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `----fip${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/**
 * Builds the streamed body for `parts`, in order. A file part whose stream yields a different number
 * of bytes than its declared `size` errors the body: a wrong Content-Length would make the server
 * read a corrupt form (or wait forever), so failing the upload is the only safe outcome.
 */
export function multipartBody(parts: MultipartPart[], options: { boundary?: string } = {}): MultipartBody {
  const boundary = options.boundary ?? randomBoundary();
  if (!/^[0-9A-Za-z'()+_,./:=?-]{1,70}$/.test(boundary)) throw new Error('invalid multipart boundary');
  const headers = parts.map((part) => partHeader(boundary, part));
  const closing = encoder.encode(`--${boundary}--\r\n`);

  let contentLength: number | null = closing.length;
  parts.forEach((part, i) => {
    if (contentLength === null) return;
    const size = isFilePart(part) ? part.size : encoder.encode(part.value).length;
    contentLength = size === null ? null : contentLength + headers[i]!.length + size + CRLF.length;
  });

  // State of the pull loop: which part, and (inside a file part) its open reader and byte count.
  let index = 0;
  let phase: 'header' | 'content' | 'trailer' = 'header';
  let reader: ChunkReader | null = null;
  let sent = 0;

  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      // Each pull enqueues at most one chunk, so backpressure reaches the file streams.
      for (;;) {
        if (index >= parts.length) {
          controller.enqueue(closing);
          controller.close();
          return;
        }
        const part = parts[index]!;
        if (phase === 'header') {
          phase = 'content';
          controller.enqueue(headers[index]!);
          return;
        }
        if (phase === 'trailer') {
          phase = 'header';
          index++;
          controller.enqueue(CRLF);
          return;
        }
        if (!isFilePart(part)) {
          phase = 'trailer';
          controller.enqueue(encoder.encode(part.value));
          return;
        }
        let current = reader;
        if (!current) {
          const stream: ReadableStream<Uint8Array> = await part.open();
          current = reader = stream.getReader();
          sent = 0;
        }
        const { done, value } = await current.read();
        if (done) {
          reader = null;
          if (part.size !== null && sent !== part.size) {
            throw new Error(`file part ${part.filename} yielded ${sent} bytes, ${part.size} were declared`);
          }
          phase = 'trailer';
          continue;
        }
        if (!value || value.length === 0) continue;
        sent += value.length;
        if (part.size !== null && sent > part.size) {
          await current.cancel().catch(() => undefined);
          throw new Error(`file part ${part.filename} yielded more than the ${part.size} bytes declared`);
        }
        controller.enqueue(value);
        return;
      }
    },
    async cancel(reason) {
      await reader?.cancel(reason).catch(() => undefined);
    },
  });

  return { body, boundary, contentType: `multipart/form-data; boundary=${boundary}`, contentLength };
}
