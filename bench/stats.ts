/** Small numeric and printing helpers shared by the benchmarks and the load run. */

/** The six orders of three sides, for rounds that turn them (each side first, middle and last alike). */
export function turns<T>(a: T, b: T, c: T): ReadonlyArray<readonly [T, T, T]> {
  return [
    [a, b, c],
    [b, c, a],
    [c, a, b],
    [a, c, b],
    [b, a, c],
    [c, b, a],
  ];
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Nearest-rank percentile, p in [0, 100]. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function formatNumber(value: number, digits = 0): string {
  if (!Number.isFinite(value)) return String(value);
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function formatBytes(bytes: number): string {
  const sign = bytes < 0 ? '-' : '';
  const abs = Math.abs(bytes);
  if (abs < 1024) return `${sign}${abs.toFixed(0)} B`;
  if (abs < 1024 * 1024) return `${sign}${(abs / 1024).toFixed(1)} KiB`;
  return `${sign}${(abs / 1024 / 1024).toFixed(2)} MiB`;
}

/** One line of the final table. */
export interface ResultRow {
  benchmark: string;
  nestjsDuo: string;
  reference: string;
  ratio: string;
  target: string;
  verdict: string;
}

/**
 * A row comparing paired samples taken in the same run (round i of ours next to
 * round i of the reference): the ratio is the median of the per-round ratios,
 * so a slow patch of a shared machine hits both sides of a pair alike.
 */
export function ratioRow(benchmark: string, ours: readonly number[], theirs: readonly number[], unit: string, target: number): ResultRow {
  const ratios = ours.map((value, i) => value / theirs[i]!);
  const ratio = median(ratios);
  const show = (values: readonly number[]): string =>
    `${formatNumber(median(values))} ${unit}${values.length > 1 ? ` [${formatNumber(Math.min(...values))}-${formatNumber(Math.max(...values))}]` : ''}`;
  return {
    benchmark,
    nestjsDuo: show(ours),
    reference: show(theirs),
    ratio: `${ratio.toFixed(2)}x${ratios.length > 1 ? ` [${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}]` : ''}`,
    target: `>= ${target}x`,
    verdict: ratio >= target ? 'met' : `MISSED by ${((1 - ratio / target) * 100).toFixed(1)}%`,
  };
}

/** A row without a reference (a plain figure). */
export function figureRow(benchmark: string, value: string, note = ''): ResultRow {
  return { benchmark, nestjsDuo: value, reference: note, ratio: '', target: '', verdict: '' };
}

export function printTable(rows: readonly ResultRow[]): void {
  const header: ResultRow = { benchmark: 'benchmark', nestjsDuo: 'nestjs-duo', reference: 'reference', ratio: 'ratio', target: 'target', verdict: 'verdict' };
  const keys = Object.keys(header) as Array<keyof ResultRow>;
  const widths = keys.map((key) => Math.max(...[header, ...rows].map((row) => row[key].length)));
  const line = (row: ResultRow): string => `| ${keys.map((key, i) => row[key].padEnd(widths[i]!)).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const row of rows) console.log(line(row));
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `task` for each item with at most `limit` running at once. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

export function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}
