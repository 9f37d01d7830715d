/**
 * The demo cohort: one small bgzipped VCF per chromosome (20, 21, 22), the same twenty samples in each,
 * phased genotypes from a seeded generator, so every run of the demo uploads the same bytes.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { bgzip, makeVcf } from '../../tests/support/vcf.ts';

export const DEMO_CHROMOSOMES = ['20', '21', '22'] as const;
/** Twenty samples: the smallest cohort every public server accepts (Michigan's minimum). */
export const DEMO_SAMPLE_COUNT = 20;
const SAMPLES = Array.from({ length: DEMO_SAMPLE_COUNT }, (_, i) => `DEMO${String(i + 1).padStart(3, '0')}`);
const POSITIONS = Array.from({ length: 40 }, (_, i) => 61_000 + i * 2_500);

export interface DemoVcf {
  name: string;
  bytes: Uint8Array;
}

/** The cohort's files in memory. */
export function demoVcfSet(): DemoVcf[] {
  return DEMO_CHROMOSOMES.map((chromosome, i) => ({
    name: `demo-cohort.chr${chromosome}.vcf.gz`,
    bytes: bgzip(makeVcf({ samples: SAMPLES, chromosome, positions: POSITIONS, seed: 42 + i })),
  }));
}

/** Writes the cohort under `dir` and answers the absolute paths, in chromosome order. */
export async function writeDemoVcfs(dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const paths: string[] = [];
  for (const vcf of demoVcfSet()) {
    const path = join(dir, vcf.name);
    await Bun.write(path, vcf.bytes);
    paths.push(path);
  }
  return paths;
}
