/** Plain-text tables and summary lines for the operations commands' output. */
import type { Difference } from './verify.ts';

/** Columns padded to their widest cell; long cells but the last are cut so the columns stay readable. */
export function formatTable(header: string[], rows: string[][], maxCell = 72): string {
  // The last column is not padded, so it is never cut (it holds the messages worth reading whole).
  const cut = (s: string, i: number) => (i < header.length - 1 && s.length > maxCell ? `${s.slice(0, maxCell - 1)}…` : s);
  const all = [header, ...rows].map((r) => r.map(cut));
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(all[0]!), line(widths.map((w) => '-'.repeat(w))), ...all.slice(1).map(line)].join('\n');
}

export function formatDifferences(differences: Difference[]): string {
  return formatTable(
    ['check', 'subject', 'expected (manifest)', 'found'],
    differences.map((d) => [d.check, d.subject, d.expected, d.actual]),
  );
}
