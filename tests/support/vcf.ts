/** In-memory VCF and BGZF generators for tests and benches (no files on disk). */
import { deflateRawSync } from 'node:zlib';

/** One data line; omitted fields get defaults (REF A, ALT G, genotypes from the seeded PRNG). */
export interface VcfRecord {
  chrom?: string;
  pos: number;
  ref?: string;
  alt?: string;
  /** Phasing of this line's genotypes; defaults to the file's `phased`. */
  phased?: boolean;
  /** Literal genotype columns (one per sample) instead of generated ones. */
  genotypes?: string[];
}

/** Options of {@link makeVcf}. */
export interface MakeVcfOptions {
  /** Sample count (ids S1…Sn) or explicit ids. Default 3. */
  samples?: number | string[];
  /** Default chromosome of every record. Default `20`. */
  chromosome?: string;
  /** Positions of generated records (REF A, ALT G). Default [100, 200, 300]. Ignored with `records`. */
  positions?: number[];
  /** Explicit records (override `positions`). */
  records?: VcfRecord[];
  /** `|` (default) or `/` separated genotypes. */
  phased?: boolean;
  /** Emit the `##fileformat=VCFv4.2` line. Default true. */
  fileformat?: boolean;
  /** Emit the `#CHROM` line. Default true. */
  header?: boolean;
  /** Column separator. Default TAB. */
  separator?: string;
  /** Line ending. Default `\n`. */
  eol?: string;
  /** Seed of the genotype PRNG (deterministic output). Default 1. */
  seed?: number;
}

/** Deterministic 32-bit PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Builds a VCF as text: meta lines, `#CHROM` header and one line per record. */
export function makeVcf(options: MakeVcfOptions = {}): string {
  const ids = typeof options.samples === 'object' ? options.samples : Array.from({ length: options.samples ?? 3 }, (_, i) => `S${i + 1}`);
  const chrom = options.chromosome ?? '20';
  const sep = options.separator ?? '\t';
  const eol = options.eol ?? '\n';
  const phased = options.phased ?? true;
  const rand = prng(options.seed ?? 1);
  const records: VcfRecord[] = options.records ?? (options.positions ?? [100, 200, 300]).map((pos) => ({ pos }));
  const lines: string[] = [];
  if (options.fileformat ?? true) lines.push('##fileformat=VCFv4.2');
  lines.push(`##contig=<ID=${chrom}>`, '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">');
  if (options.header ?? true) lines.push(['#CHROM', 'POS', 'ID', 'REF', 'ALT', 'QUAL', 'FILTER', 'INFO', 'FORMAT', ...ids].join(sep));
  for (const r of records) {
    const bar = (r.phased ?? phased) ? '|' : '/';
    const gts = r.genotypes ?? ids.map(() => `${rand() < 0.3 ? 1 : 0}${bar}${rand() < 0.3 ? 1 : 0}`);
    lines.push([r.chrom ?? chrom, r.pos, '.', r.ref ?? 'A', r.alt ?? 'G', '.', 'PASS', '.', 'GT', ...gts].join(sep));
  }
  return lines.join(eol) + eol;
}

/** Largest input per BGZF block that bgzip itself uses (0xff00 bytes). */
export const BGZF_BLOCK_INPUT = 0xff00;

/** The 28-byte BGZF end-of-file marker (an empty block). */
export const BGZF_EOF = new Uint8Array([
  0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0, 0xff, 0x06, 0, 0x42, 0x43, 0x02, 0, 0x1b, 0, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0,
]);

/**
 * Compresses to real BGZF: blocks of ≤ 0xff00 input bytes, each a gzip member with FEXTRA `BC`
 * (BSIZE), raw deflate, CRC32 and ISIZE; followed by the EOF block unless `eof` is false.
 */
export function bgzip(input: string | Uint8Array, options: { eof?: boolean; level?: number } = {}): Uint8Array {
  const data = typeof input === 'string' ? new TextEncoder().encode(input) : input;
  const blocks: Uint8Array[] = [];
  let total = 0;
  for (let o = 0; o < data.length; o += BGZF_BLOCK_INPUT) {
    const raw = data.subarray(o, Math.min(o + BGZF_BLOCK_INPUT, data.length));
    const deflated = deflateRawSync(raw, { level: options.level ?? 6 });
    const size = 18 + deflated.length + 8;
    if (size > 65536) throw new Error('BGZF block over 64 KiB');
    const block = new Uint8Array(size);
    const view = new DataView(block.buffer);
    block.set([0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0, 0xff, 6, 0, 0x42, 0x43, 2, 0]);
    view.setUint16(16, size - 1, true);
    block.set(deflated, 18);
    view.setUint32(size - 8, Bun.hash.crc32(raw) >>> 0, true);
    view.setUint32(size - 4, raw.length, true);
    blocks.push(block);
    total += size;
  }
  if (options.eof ?? true) {
    blocks.push(BGZF_EOF);
    total += BGZF_EOF.length;
  }
  const out = new Uint8Array(total);
  let o = 0;
  for (const b of blocks) {
    out.set(b, o);
    o += b.length;
  }
  return out;
}
