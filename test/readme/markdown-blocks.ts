import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const ROOT = new URL('../..', import.meta.url).pathname;

/** The manuals whose ```ts blocks the tests compile. */
export const MANUALS = ['README.md', 'docs/migrating.md'];

export interface CodeBlock {
  /** The manual, relative to the repository. */
  file: string;
  /** The line of the opening fence (1-based). */
  line: number;
  code: string;
  /** Declarations the block takes for granted, from `<!-- compile-with: ... -->` right above it. */
  prelude: string;
  /** `<!-- run: e2e -->` above it: the block is a test file, and the suite runs it. */
  run: boolean;
}

const FENCE = /^```(\w*)\s*$/;
const COMMENT = /<!--\s*(compile-with|run):([\s\S]*?)-->/g;

/** Every ```ts block of a manual, with what the HTML comments right above it say about it. */
export function typescriptBlocks(file: string): CodeBlock[] {
  let text: string;
  try {
    text = readFileSync(join(ROOT, file), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const lines = text.split('\n');
  const blocks: CodeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]!);
    if (!open) continue;
    const end = lines.findIndex((candidate, j) => j > i && /^```\s*$/.test(candidate));
    if (end < 0) throw new Error(`${file}:${i + 1}: a code block that never closes`);
    if (open[1] === 'ts' || open[1] === 'typescript') {
      // The comments between the previous block (or paragraph) and this fence.
      let k = i - 1;
      while (k >= 0 && lines[k]!.trim() === '') k--;
      let above = '';
      if (k >= 0 && lines[k]!.trimEnd().endsWith('-->')) {
        let start = k;
        while (start > 0 && !lines[start]!.includes('<!--')) start--;
        above = lines.slice(start, k + 1).join('\n');
      }
      let prelude = '';
      let run = false;
      for (const [, kind, body] of above.matchAll(COMMENT)) {
        if (kind === 'compile-with') prelude += `${body!.trim()}\n`;
        else if (body!.trim() === 'e2e') run = true;
        else throw new Error(`${file}:${i + 1}: unknown <!-- run: ${body!.trim()} -->`);
      }
      blocks.push({ file, line: i + 1, code: lines.slice(i + 1, end).join('\n'), prelude, run });
    }
    i = end;
  }
  return blocks;
}
