import { describe, expect, test } from 'bun:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import {
  createVcfValidator,
  type ValidationReport,
  type VcfValidatorOptions,
} from '../../services/file-manager/src/vcf-validator.ts';
import { BGZF_BLOCK_INPUT, BGZF_EOF, bgzip, makeVcf, prng, type MakeVcfOptions } from '../support/vcf.ts';

/** Feeds `bytes` in chunks of `chunkSize` (whole file by default). */
function validate(bytes: Uint8Array, options: VcfValidatorOptions = {}, chunkSize = bytes.length || 1): ValidationReport {
  const v = createVcfValidator(options);
  for (let o = 0; o < bytes.length; o += chunkSize) v.push(bytes.subarray(o, o + chunkSize));
  return v.finish();
}
const codes = (r: ValidationReport) => r.errors.map((e) => e.code);
const warningCodes = (r: ValidationReport) => r.warnings.map((e) => e.code);
/** A valid file (25 samples, so no sample-count warning) with `overrides`. */
const vcf = (overrides: MakeVcfOptions = {}) => makeVcf({ samples: 25, ...overrides });
const check = (overrides: MakeVcfOptions, options: VcfValidatorOptions = {}) => validate(bgzip(vcf(overrides)), options);

describe('bgzip test support', () => {
  test('writes BGZF that gunzip reads back, in blocks of ≤ 0xff00 input bytes, with the EOF block', () => {
    const text = makeVcf({ samples: 300, positions: Array.from({ length: 400 }, (_, i) => i + 1) });
    expect(text.length).toBeGreaterThan(3 * BGZF_BLOCK_INPUT);
    const gz = bgzip(text);
    expect(new TextDecoder().decode(gunzipSync(gz))).toBe(text);
    expect(gz.subarray(gz.length - 28)).toEqual(BGZF_EOF);
    // Walk the blocks through their BSIZE fields.
    let o = 0;
    let blocks = 0;
    while (o < gz.length) {
      expect([gz[o], gz[o + 1], gz[o + 3], gz[o + 12], gz[o + 13]]).toEqual([0x1f, 0x8b, 4, 0x42, 0x43]);
      o += (gz[o + 16]! | (gz[o + 17]! << 8)) + 1;
      blocks++;
    }
    expect(o).toBe(gz.length);
    expect(blocks).toBe(Math.ceil(text.length / BGZF_BLOCK_INPUT) + 1);
  });

  const bgzipTool = Bun.which('bgzip');
  test.skipIf(!bgzipTool)('bgzip -t accepts the output', async () => {
    const path = `/tmp/vcf-validator-${Bun.randomUUIDv7()}.vcf.gz`;
    await Bun.write(path, bgzip(vcf()));
    const proc = Bun.spawnSync([bgzipTool!, '-t', path]);
    await Bun.file(path).unlink();
    expect(proc.exitCode).toBe(0);
  });
});

describe('valid file', () => {
  test('passes with correct stats', () => {
    const text = vcf({
      records: [
        { pos: 100 },
        { pos: 150, ref: 'A', alt: 'C,T' }, // multiallelic
        { pos: 150, ref: 'AT', alt: 'A' }, // indel, same position is sorted
        { pos: 900, ref: 'G', alt: 'GTT,T' }, // multiallelic + indel
        { pos: 1000 },
      ],
    });
    const gz = bgzip(text);
    const r = validate(gz, { declaredBuild: 'hg19' });
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.stats).toEqual({
      samples: 25,
      variants: 5,
      chromosome: '20',
      chromosomes: ['20'],
      buildGuess: 'hg19',
      phased: true,
      multiallelic: 2,
      indels: 2,
      firstPosition: 100,
      lastPosition: 1000,
      compressedBytes: gz.length,
      uncompressedBytes: Buffer.byteLength(text),
      container: 'bgzf',
    });
  });

  test('hg38 naming with declared hg38, unphased, chrX and 23 and MT accepted', () => {
    for (const chromosome of ['chr20', 'chrX', 'chr23', 'chrMT']) {
      const r = check({ chromosome, phased: false }, { declaredBuild: 'hg38' });
      expect(codes(r)).toEqual([]);
      expect(r.stats.buildGuess).toBe('hg38');
      expect(r.stats.phased).toBe(false);
    }
    expect(codes(check({ chromosome: 'X' }, { declaredBuild: 'hg19' }))).toEqual([]);
  });

  test('a file without a final newline still counts its last line', () => {
    const r = validate(bgzip(vcf().trimEnd()));
    expect(r.ok).toBe(true);
    expect(r.stats.variants).toBe(3);
  });
});

describe('each rule fails on a file that breaks only that rule', () => {
  test('plain gzip', () => {
    const r = validate(gzipSync(vcf()));
    expect(codes(r)).toEqual(['plain_gzip']);
    expect(r.errors[0]!.hint).toContain('bgzip');
    expect(r.stats.container).toBe('gzip');
  });

  test('uncompressed text (still checked line by line)', () => {
    const r = validate(new TextEncoder().encode(vcf()));
    expect(codes(r)).toEqual(['not_compressed']);
    expect(r.errors[0]!.hint).toContain('bgzip');
    expect(r.stats.container).toBe('text');
    expect(r.stats.variants).toBe(3);
    expect(codes(validate(new TextEncoder().encode(vcf({ positions: [5, 4] }))))).toEqual(['not_compressed', 'unsorted']);
  });

  test('binary junk', () => {
    const rand = prng(7);
    const junk = Uint8Array.from({ length: 5000 }, () => Math.floor(rand() * 256));
    junk[0] = 0x50; // not gzip magic, not '#'
    const r = validate(junk);
    expect(codes(r)).toEqual(['not_vcf']);
    expect(r.stats.container).toBe('unknown');
  });

  test('BGZF around binary junk', () => {
    const rand = prng(9);
    const r = validate(bgzip(Uint8Array.from({ length: 5000 }, () => Math.floor(rand() * 256))));
    expect(r.ok).toBe(false);
    expect(codes(r)).toContain('missing_fileformat');
  });

  test('empty file', () => {
    const r = validate(new Uint8Array(0));
    expect(codes(r)).toEqual(['empty_file']);
    expect(r.stats.container).toBe('empty');
  });

  test('empty BGZF (only the EOF block)', () => {
    expect(codes(validate(BGZF_EOF))).toEqual(['missing_fileformat']);
  });

  test('truncated in the middle of a block', () => {
    const gz = bgzip(vcf({ samples: 100, positions: Array.from({ length: 2000 }, (_, i) => i + 1) }));
    for (const cut of [gz.length - 10, Math.floor(gz.length / 2), 5, 15]) {
      const r = validate(gz.subarray(0, cut));
      expect(codes(r)).toEqual(['truncated']);
    }
  });

  test('truncated at a block boundary: missing EOF marker is a warning', () => {
    const r = validate(bgzip(vcf(), { eof: false }));
    expect(codes(r)).toEqual([]);
    expect(warningCodes(r)).toEqual(['missing_eof']);
  });

  test('corrupt compressed data', () => {
    const gz = bgzip(vcf({ samples: 100 }));
    const bad = gz.slice();
    for (let i = 30; i < 60; i++) bad[i] = bad[i]! ^ 0x5a;
    expect(codes(validate(bad))).toEqual(['corrupt_gzip']);
    const badCrc = gz.slice();
    const crcAt = gz.length - 28 - 8;
    badCrc[crcAt] = badCrc[crcAt]! ^ 1;
    expect(codes(validate(badCrc))).toEqual(['corrupt_gzip']);
  });

  test('missing ##fileformat', () => {
    const r = check({ fileformat: false });
    expect(codes(r)).toEqual(['missing_fileformat']);
    expect(r.errors[0]!.line).toBe(1);
  });

  test('missing #CHROM header', () => {
    expect(codes(check({ header: false }))).toEqual(['missing_header']);
    expect(codes(validate(bgzip('##fileformat=VCFv4.2\n##source=x\n')))).toEqual(['missing_header']);
  });

  test('no sample columns', () => {
    const text = '##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n20\t1\t.\tA\tG\t.\tPASS\t.\n';
    const r = validate(bgzip(text));
    expect(codes(r)).toEqual(['no_samples']);
    expect(r.stats.samples).toBe(0);
  });

  test('space-delimited data line', () => {
    const text = vcf().replace(/\n20\t200\t.*\n/, (l) => l.replaceAll('\t', ' '));
    const r = validate(bgzip(text));
    expect(codes(r)).toEqual(['not_tab_delimited']);
    expect(r.errors[0]!.line).toBe(6);
  });

  test('space-delimited file (header and every line)', () => {
    const r = validate(bgzip(vcf({ separator: ' ', positions: Array.from({ length: 500 }, (_, i) => i + 1) })));
    expect(new Set(codes(r))).toEqual(new Set(['not_tab_delimited']));
    expect(r.errors.length + r.droppedErrors).toBe(501);
  });

  test('CRLF line endings', () => {
    const r = check({ eol: '\r\n' });
    expect(codes(r)).toEqual(['crlf']);
    expect(r.errors[0]!.hint).toMatch(/dos2unix|\\r/);
    expect(r.stats.variants).toBe(3);
    expect(r.stats.samples).toBe(25);
  });

  test('duplicate sample ids', () => {
    const ids = Array.from({ length: 25 }, (_, i) => `S${i + 1}`);
    ids[20] = 'S3';
    const r = check({ samples: ids });
    expect(codes(r)).toEqual(['duplicate_sample']);
    expect(r.errors[0]!.message).toContain('S3');
  });

  test('more than one chromosome', () => {
    const r = check({ records: [{ pos: 1 }, { pos: 2 }, { pos: 1, chrom: '21' }] });
    expect(codes(r)).toEqual(['multiple_chromosomes']);
    expect(r.errors[0]!.hint).toContain('chromosome');
    expect(r.stats.chromosomes).toEqual(['20', '21']);
  });

  test('invalid contig', () => {
    for (const chromosome of ['chrY', 'Y', '24', 'chr1_random', 'GL000192.1', 'M']) {
      expect(codes(check({ chromosome }))).toEqual(['invalid_contig']);
    }
  });

  test('build mismatch both ways', () => {
    expect(codes(check({ chromosome: '20' }, { declaredBuild: 'hg38' }))).toEqual(['build_mismatch']);
    const r = check({ chromosome: 'chr20' }, { declaredBuild: 'hg19' });
    expect(codes(r)).toEqual(['build_mismatch']);
    expect(r.errors[0]!.hint).toContain('"20"');
  });

  test('unsorted positions', () => {
    const r = check({ positions: [100, 300, 200] });
    expect(codes(r)).toEqual(['unsorted']);
    expect(r.errors[0]!.line).toBe(7);
  });

  test('REF == ALT reports the line', () => {
    const r = check({ records: [{ pos: 1 }, { pos: 2, ref: 'C', alt: 'C' }, { pos: 3 }] });
    expect(codes(r)).toEqual(['ref_equals_alt']);
    expect(r.errors[0]!.line).toBe(6);
    expect(r.errors[0]!.message).toContain('2');
  });

  test('phased then unphased is an error; unphased then phased a warning', () => {
    const r = check({ records: [{ pos: 1 }, { pos: 2 }, { pos: 3, phased: false }, { pos: 4 }] });
    expect(codes(r)).toEqual(['mixed_phasing']);
    expect(r.errors[0]!.line).toBe(7);
    expect(r.stats.phased).toBe(false);
    const w = check({ phased: false, records: [{ pos: 1 }, { pos: 2, phased: true }] });
    expect(codes(w)).toEqual([]);
    expect(warningCodes(w)).toEqual(['mixed_phasing']);
    expect(w.stats.phased).toBe(false);
  });

  test('haploid and missing first genotypes say nothing about phasing', () => {
    const gts = (first: string) => [first, ...Array.from({ length: 24 }, () => '0|1')];
    const r = check({ records: [{ pos: 1, genotypes: gts('0') }, { pos: 2, genotypes: gts('.') }, { pos: 3 }] });
    expect(codes(r)).toEqual([]);
    expect(r.stats.phased).toBe(true);
  });

  test('fewer than 20 samples is a warning only', () => {
    const r = check({ samples: 5 });
    expect(r.ok).toBe(true);
    expect(warningCodes(r)).toEqual(['few_samples']);
    expect(r.warnings[0]!.message).toContain('at least 20');
  });

  test('maxErrors caps the list but stats keep counting', () => {
    const positions = Array.from({ length: 100 }, (_, i) => 1000 - i);
    const r = check({ positions }, { maxErrors: 10 });
    expect(r.errors.length).toBe(10);
    expect(r.droppedErrors).toBe(89);
    expect(r.ok).toBe(false);
    expect(r.stats.variants).toBe(100);
    expect(r.stats.lastPosition).toBe(901);
  });
});

describe('scale and streaming', () => {
  test('a 20,000-sample header is fast and its duplicates found', () => {
    const ids = Array.from({ length: 20_000 }, (_, i) => `SAMPLE_${i}`);
    const text = makeVcf({ samples: ids, positions: Array.from({ length: 20 }, (_, i) => i + 1) });
    const gz = bgzip(text);
    const t0 = performance.now();
    for (const size of [1024, 65536, gz.length]) {
      const r = validate(gz, {}, size);
      expect(r.ok).toBe(true);
      expect(r.stats.samples).toBe(20_000);
      expect(r.stats.variants).toBe(20);
    }
    expect(performance.now() - t0).toBeLessThan(2000);
    ids[19_999] = 'SAMPLE_0';
    expect(codes(validate(bgzip(makeVcf({ samples: ids }))))).toEqual(['duplicate_sample']);
  });

  test('same report for 1-byte, 7-byte, 64 KiB and whole-file chunks', () => {
    // Multi-block file with lines crossing block boundaries and a few rule breaks.
    const records = Array.from({ length: 1500 }, (_, i) => ({ pos: 10 * (i + 1), alt: i % 50 === 0 ? 'G,T' : 'G' }));
    records[300] = { pos: 5, alt: 'G' }; // unsorted
    records[400] = { pos: 4005, alt: 'A' }; // REF == ALT
    const text = makeVcf({ samples: 200, records, phased: true });
    const gz = bgzip(text);
    expect(gz.length).toBeGreaterThan(65536);
    const whole = validate(gz);
    expect(codes(whole)).toEqual(['unsorted', 'ref_equals_alt']);
    expect(whole.stats.variants).toBe(1500);
    for (const size of [1, 7, 65536]) expect(validate(gz, {}, size)).toEqual(whole);
    // Uncompressed text and errors at the container level are chunk-independent too.
    const plain = new TextEncoder().encode(text);
    const plainWhole = validate(plain);
    for (const size of [1, 7, 65536]) expect(validate(plain, {}, size)).toEqual(plainWhole);
    for (const size of [1, 7]) expect(validate(gzipSync(text), {}, size)).toEqual(validate(gzipSync(text)));
  });
});
