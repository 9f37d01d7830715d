/**
 * Uploads a test can interrupt: a large bgzipped VCF made in memory (random FORMAT payloads, so it
 * does not compress away) and a request body the test releases in steps, so a signal can be sent
 * while the bytes are known to be half-way through.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { bgzip } from '../../support/vcf.ts';

/**
 * A valid bgzipped chr20 VCF of about `targetBytes` (within a few per cent): `samples` columns
 * `GT:XR`, XR a random base64url string, one variant every 10 bp.
 */
export function largeVcf(targetBytes: number, samples = 100): Uint8Array {
  const ids = Array.from({ length: samples }, (_, i) => `S${i + 1}`);
  const header = [
    '##fileformat=VCFv4.2',
    '##contig=<ID=20>',
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
    '##FORMAT=<ID=XR,Number=1,Type=String,Description="Random payload that keeps the test file from compressing">',
    ['#CHROM', 'POS', 'ID', 'REF', 'ALT', 'QUAL', 'FILTER', 'INFO', 'FORMAT', ...ids].join('\t'),
  ].join('\n');
  // Random base64url is ~6 bits a character; deflate keeps ~80 % of it.
  const textBytes = Math.ceil(targetBytes / 0.78);
  const random = randomText(textBytes);
  const lines: string[] = [header];
  let used = 0;
  let size = header.length;
  const genotypes = ['0|0', '0|1', '1|0', '1|1'];
  for (let pos = 100; size < textBytes; pos += 10) {
    const columns: string[] = [];
    for (let s = 0; s < samples; s++) {
      columns.push(`${genotypes[random.charCodeAt(used) & 3]}:${random.slice(used, used + 10)}`);
      used = (used + 10) % (random.length - 10);
    }
    const line = `20\t${pos}\t.\tA\tG\t.\tPASS\t.\tGT:XR\t${columns.join('\t')}`;
    lines.push(line);
    size += line.length + 1;
  }
  return bgzip(`${lines.join('\n')}\n`, { level: 1 });
}

function randomText(chars: number): string {
  const bytes = new Uint8Array(Math.ceil((chars * 3) / 4));
  for (let at = 0; at < bytes.length; at += 65_536) crypto.getRandomValues(bytes.subarray(at, Math.min(at + 65_536, bytes.length)));
  return Buffer.from(bytes).toString('base64url');
}

export interface PacedBody {
  /** The request body: stops after the bytes allowed so far until more are allowed. */
  readonly stream: ReadableStream<Uint8Array>;
  /** Bytes handed to the sender so far. */
  readonly sent: number;
  /** Lets the body go on up to `bytes` in total. */
  allow(bytes: number): void;
  /** Lets the whole body go. */
  allowAll(): void;
}

/** A body that hands out `bytes` in `chunkBytes` pieces, no further than the test allows. */
export function pacedBody(bytes: Uint8Array, chunkBytes = 256 * 1024): PacedBody {
  let sent = 0;
  let allowed = 0;
  let wake: (() => void) | null = null;
  const stream = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        while (sent >= allowed && sent < bytes.length) await new Promise<void>((resolve) => (wake = resolve));
        if (sent >= bytes.length) {
          controller.close();
          return;
        }
        const end = Math.min(sent + chunkBytes, allowed, bytes.length);
        // A copy: the sender may still hold the previous chunk.
        controller.enqueue(bytes.slice(sent, end));
        sent = end;
      },
      cancel() {
        allowed = bytes.length;
        sent = bytes.length;
        wake?.();
      },
    },
    { highWaterMark: 0 },
  );
  const allow = (total: number) => {
    allowed = Math.max(allowed, Math.min(total, bytes.length));
    const resume = wake;
    wake = null;
    resume?.();
  };
  return {
    stream,
    get sent() {
      return sent;
    },
    allow,
    allowAll: () => allow(bytes.length),
  };
}

/** Every file under `dir` (recursively) with its size; none when `dir` does not exist. */
export async function filesUnder(dir: string): Promise<{ path: string; size: number }[]> {
  const names = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
  const found: { path: string; size: number }[] = [];
  for (const name of names) {
    const info = await stat(join(dir, name)).catch(() => null);
    if (info?.isFile()) found.push({ path: join(dir, name), size: info.size });
  }
  return found;
}
