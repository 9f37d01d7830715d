/**
 * Throughput of the streaming VCF validator (DESIGN.md §9: ≥ 100 MB/s of compressed input).
 *
 *   bun bench/vcf-validate.ts [--mb 30] [--samples 200] [--runs 3]
 *
 * Generates in memory a bgzipped VCF of ~`--mb` MB (random genotypes under Hardy–Weinberg with a
 * per-site allele frequency, ~10 % multiallelic/indel sites), then times, single process:
 * the full validator fed 64 KiB chunks; inflate alone (BGZF walk + node:zlib inflateRawSync with a
 * 64 KiB output chunk + CRC32, as the validator does; the default chunk size and Bun.inflateSync
 * for comparison); and line scanning alone (validator on the already
 * decompressed text). Median of `--runs`. Prints a table; never asserts.
 */
import { inflateRawSync } from 'node:zlib';
import { parseArgs } from 'node:util';
import { createVcfValidator } from '../services/file-manager/src/vcf-validator.ts';
import { bgzip, BGZF_BLOCK_INPUT, BGZF_EOF, prng } from '../tests/support/vcf.ts';

const { values } = parseArgs({
  options: { mb: { type: 'string', default: '30' }, samples: { type: 'string', default: '200' }, runs: { type: 'string', default: '3' } },
});
const targetBytes = Number(values.mb) * 1e6;
const samples = Number(values.samples);
const runs = Number(values.runs);

// ---- generate -------------------------------------------------------------------------------
function generate(): { gz: Uint8Array; textBytes: number; variants: number } {
  const rand = prng(42);
  const pool: string[] = []; // genotype columns, one string per allele-frequency draw
  for (let i = 0; i < 4096; i++) {
    const p = Math.min(0.5, rand() ** 2); // skewed towards rare variants, like real arrays
    let row = '';
    for (let s = 0; s < samples; s++) row += `\t${rand() < p ? 1 : 0}|${rand() < p ? 1 : 0}`;
    pool.push(row);
  }
  const header =
    '##fileformat=VCFv4.2\n##contig=<ID=20>\n##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n' +
    ['#CHROM', 'POS', 'ID', 'REF', 'ALT', 'QUAL', 'FILTER', 'INFO', 'FORMAT', ...Array.from({ length: samples }, (_, i) => `S${i + 1}`)].join('\t') +
    '\n';
  const bases = ['A', 'C', 'G', 'T'];
  const parts: Uint8Array[] = [];
  let gzBytes = 0;
  let textBytes = 0;
  let pos = 60_000;
  let variants = 0;
  let piece = header;
  const encoder = new TextEncoder();
  while (gzBytes < targetBytes) {
    while (piece.length < 16 * BGZF_BLOCK_INPUT) {
      pos += 1 + Math.floor(rand() * 300);
      const r = Math.floor(rand() * 4);
      const kind = rand();
      const ref = bases[r]!;
      const alt = kind < 0.05 ? `${bases[(r + 1) % 4]},${bases[(r + 2) % 4]}` : kind < 0.1 ? `${ref}T` : bases[(r + 1 + Math.floor(rand() * 3)) % 4]!;
      piece += `20\t${pos}\trs${pos}\t${ref}\t${alt}\t.\tPASS\tAF=0.1\tGT${pool[Math.floor(rand() * pool.length)]}\n`;
      variants++;
    }
    const bytes = encoder.encode(piece);
    const gz = bgzip(bytes, { eof: false });
    parts.push(gz);
    gzBytes += gz.length;
    textBytes += bytes.length;
    piece = '';
  }
  parts.push(BGZF_EOF);
  const gz = new Uint8Array(gzBytes + BGZF_EOF.length);
  let o = 0;
  for (const p of parts) {
    gz.set(p, o);
    o += p.length;
  }
  return { gz, textBytes, variants };
}

const t0 = performance.now();
const { gz, textBytes, variants } = generate();
Bun.gc(true); // generation garbage otherwise slows the first measurements ~3×
console.log(
  `generated ${(gz.length / 1e6).toFixed(1)} MB bgzipped (${(textBytes / 1e6).toFixed(0)} MB text, ratio ${(textBytes / gz.length).toFixed(1)}, ${variants} variants × ${samples} samples) in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
);

// ---- measure --------------------------------------------------------------------------------
const CHUNK = 64 * 1024;
function median(fn: () => void): number {
  fn(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    fn();
    times.push((performance.now() - t) / 1000);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

function eachBlock(fn: (deflated: Uint8Array, isize: number) => Uint8Array): number {
  let total = 0;
  for (let o = 0; o < gz.length; ) {
    const size = (gz[o + 16]! | (gz[o + 17]! << 8)) + 1;
    const isize = new DataView(gz.buffer, gz.byteOffset + o + size - 4, 4).getUint32(0, true);
    if (isize > 0) total += fn(gz.subarray(o + 18, o + size - 8), isize).length;
    o += size;
  }
  return total;
}

const rows: Array<[string, number]> = [];
let report = createVcfValidator().finish();
rows.push([
  'validator (64 KiB chunks)',
  median(() => {
    const v = createVcfValidator({ declaredBuild: 'hg19' });
    for (let o = 0; o < gz.length; o += CHUNK) v.push(gz.subarray(o, o + CHUNK));
    report = v.finish();
  }),
]);
rows.push([
  'inflate only: zlib.inflateRawSync 64 KiB + crc32 (used)',
  median(() =>
    eachBlock((d) => {
      const out = inflateRawSync(d, { chunkSize: 65536 });
      Bun.hash.crc32(out);
      return out;
    }),
  ),
]);
rows.push(['inflate only: zlib.inflateRawSync default', median(() => eachBlock((d) => inflateRawSync(d)))]);
rows.push(['inflate only: Bun.inflateSync', median(() => eachBlock((d) => Bun.inflateSync(d as Uint8Array<ArrayBuffer>)))]);
// Line scanning alone: the validator on decompressed text (text mode adds one not_compressed error).
const text = new Uint8Array(textBytes);
{
  let o = 0;
  eachBlock((d) => {
    const out = inflateRawSync(d);
    text.set(out, o);
    o += out.length;
    return out;
  });
}
rows.push([
  'line scan only (text, 64 KiB chunks)',
  median(() => {
    const v = createVcfValidator();
    for (let o = 0; o < text.length; o += CHUNK) v.push(text.subarray(o, o + CHUNK));
    v.finish();
  }),
]);

console.log(`report: ok=${report.ok} errors=${report.errors.map((e) => e.code).join(',') || '-'} variants=${report.stats.variants} samples=${report.stats.samples} multiallelic=${report.stats.multiallelic} indels=${report.stats.indels}`);
console.log(`\nmedian of ${runs} runs, single process (${navigator.hardwareConcurrency} cores visible)\n`);
console.log('| step | seconds | compressed MB/s | text MB/s |');
console.log('|---|---:|---:|---:|');
for (const [name, s] of rows) {
  console.log(`| ${name} | ${s.toFixed(3)} | ${(gz.length / 1e6 / s).toFixed(0)} | ${(textBytes / 1e6 / s).toFixed(0)} |`);
}
