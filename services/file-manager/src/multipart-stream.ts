/**
 * Browser uploads arrive as `multipart/form-data`. Parsing the whole form (Request.formData()) would
 * hold the file in memory, so this reads the body as a stream: small text fields before the file
 * are collected, and the first file part's content is handed on as a stream of its own, without
 * ever buffering more than one chunk plus a delimiter's length.
 */
import { HttpProblem } from '@shared/errors.ts';

export interface MultipartFile {
  filename: string;
  /** Text fields that came before the file part (e.g. `build`). */
  fields: Record<string, string>;
  content: ReadableStream<Uint8Array>;
}

const MAX_HEADER_BYTES = 16 * 1024;
const MAX_FIELD_BYTES = 4 * 1024;
const bad = (detail: string) => new HttpProblem(400, 'malformed_multipart', detail);

/** The boundary of a `multipart/form-data` content type, or null for any other type. */
export function multipartBoundary(contentType: string | undefined): string | null {
  if (!contentType || !/^multipart\/form-data/i.test(contentType)) return null;
  const match = /boundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))/i.exec(contentType);
  if (!match) throw bad('The multipart content type has no boundary.');
  return match[1] ?? match[2]!;
}

/** Reads up to the first file part; its content streams from `content`. */
export async function openMultipartFile(body: ReadableStream<Uint8Array>, boundary: string): Promise<MultipartFile> {
  const reader = body.getReader();
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  // Prefixing CRLF lets the first boundary match the same delimiter as every later one.
  let buffer: Buffer = Buffer.from('\r\n');
  let done = false;

  async function fill(): Promise<boolean> {
    if (done) return false;
    const next = await reader.read();
    if (next.done) {
      done = true;
      return false;
    }
    buffer = buffer.length === 0 ? Buffer.from(next.value) : Buffer.concat([buffer, next.value]);
    return true;
  }

  async function until(marker: Buffer, limit: number): Promise<Buffer> {
    for (;;) {
      const at = buffer.indexOf(marker);
      if (at !== -1) {
        const found = buffer.subarray(0, at);
        buffer = buffer.subarray(at + marker.length);
        return found;
      }
      if (buffer.length > limit) throw bad('A multipart header or field is too long.');
      if (!(await fill())) throw bad('The multipart body ended early.');
    }
  }

  const fields: Record<string, string> = {};
  await until(delimiter, MAX_HEADER_BYTES);
  for (;;) {
    const afterDelimiter = await until(Buffer.from('\r\n'), MAX_HEADER_BYTES);
    if (afterDelimiter.toString() === '--') throw bad('The form has no file part.');
    const headers = (await until(Buffer.from('\r\n\r\n'), MAX_HEADER_BYTES)).toString('utf8');
    const disposition = /^content-disposition:\s*form-data(.*)$/im.exec(headers)?.[1] ?? '';
    const name = /;\s*name="([^"]*)"/i.exec(disposition)?.[1] ?? '';
    const filenameStar = /;\s*filename\*=UTF-8''([^;\s]+)/i.exec(disposition)?.[1];
    const filename = filenameStar ? safeDecode(filenameStar) : /;\s*filename="([^"]*)"/i.exec(disposition)?.[1];
    if (filename === undefined) {
      fields[name] = (await until(delimiter, MAX_FIELD_BYTES)).toString('utf8');
      continue;
    }
    return { filename, fields, content: fileContent() };
  }

  function fileContent(): ReadableStream<Uint8Array> {
    let finished = false;
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        for (;;) {
          if (finished) return controller.close();
          const at = buffer.indexOf(delimiter);
          if (at !== -1) {
            finished = true;
            if (at > 0) controller.enqueue(new Uint8Array(buffer.subarray(0, at)));
            buffer = Buffer.alloc(0);
            // Whatever follows the file part (closing boundary, later fields) is read and dropped.
            await reader.cancel().catch(() => {});
            return controller.close();
          }
          // Keep a delimiter's length back: it may be split across chunks.
          const safe = buffer.length - (delimiter.length - 1);
          if (safe > 0) {
            controller.enqueue(new Uint8Array(buffer.subarray(0, safe)));
            buffer = buffer.subarray(safe);
            return;
          }
          if (!(await fill())) return controller.error(bad('The multipart body ended before the file part was closed.'));
        }
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    });
  }
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
