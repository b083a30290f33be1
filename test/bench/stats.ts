// Small helpers for the benchmark: percentiles and formatting.

/** Nearest-rank percentile (p in 0..100) of unsorted samples; NaN when empty. */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function fmt(n: number | undefined, digits = 2): string {
  if (n === undefined || !Number.isFinite(n)) return "n/a";
  return n.toFixed(digits);
}

export const MiB = 1024 * 1024;
export const KiB = 1024;

/** A GitHub-flavoured Markdown table. */
export function mdTable(head: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(head), line(head.map(() => "---")), ...rows.map(line)].join("\n");
}

/**
 * `md` with the section between `start` and `end` markers replaced by `section` (which carries
 * both markers itself), or `section` appended when `md` has none: a partial bench run updates only
 * its own section of BENCHMARKS.md.
 */
export function spliceSection(md: string, start: string, end: string, section: string): string {
  const a = md.indexOf(start);
  const z = md.indexOf(end);
  if (a < 0 || z < a) return `${md.trimEnd()}\n\n${section.trimEnd()}\n`;
  return md.slice(0, a) + section.trimEnd() + md.slice(z + end.length);
}
