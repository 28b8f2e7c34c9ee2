import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { MANUALS, ROOT, typescriptBlocks, type CodeBlock } from './markdown-blocks.js';

/**
 * Every ```ts block of the README (and of docs/migrating.md) compiles, strict, with
 * `noUnusedParameters` on (Nest's app template has it), against the package's own entry points: the
 * manual cannot rot. A block may take names for granted only when an HTML comment right above it
 * declares them (`<!-- compile-with: declare const app: INestApplication; -->`), which readers of
 * the rendered page do not see, and which this test prepends.
 */
const OUT = join(ROOT, 'test/readme/app/compiled');

function compile(blocks: CodeBlock[]): Map<CodeBlock, string[]> {
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
  const files = new Map<string, CodeBlock>();
  for (const block of blocks) {
    const name = join(OUT, `${block.file.replace(/\W+/g, '-')}-${block.line}.ts`);
    // `export {}` makes a fragment a module, so top-level await and its own names work.
    writeFileSync(name, `${block.prelude}${block.code}\nexport {};\n`);
    files.set(name, block);
  }
  const config = ts.getParsedCommandLineOfConfigFile(join(ROOT, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined })!;
  const program = ts.createProgram([...files.keys()], {
    ...config.options,
    noEmit: true,
    noUnusedParameters: true,
    paths: {
      'nestjs-duo': [join(ROOT, 'src/index.ts')],
      'nestjs-duo/protocol': [join(ROOT, 'src/protocol/index.ts')],
      'nestjs-duo/testing': [join(ROOT, 'src/testing/index.ts')],
      'nestjs-duo/terminus': [join(ROOT, 'src/terminus/index.ts')],
    },
  });
  const errors = new Map<CodeBlock, string[]>();
  const preludeLines = (block: CodeBlock) => (block.prelude ? block.prelude.split('\n').length - 1 : 0);
  // Only the blocks are checked (src/ and the fixture app are type-checked by `npm run typecheck`):
  // what they use of the rest is resolved on demand, which keeps this test to seconds.
  const diagnostics = [
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
    ...[...files.keys()].flatMap((name) => {
      const source = program.getSourceFile(name)!;
      return [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)];
    }),
  ];
  for (const diagnostic of diagnostics) {
    const block = diagnostic.file ? files.get(diagnostic.file.fileName) : undefined;
    const where = block
      ? (() => {
          const { line } = diagnostic.file!.getLineAndCharacterOfPosition(diagnostic.start ?? 0);
          const inBlock = line - preludeLines(block);
          return inBlock < 0 ? `${block.file}:${block.line} (its compile-with comment)` : `${block.file}:${block.line + 1 + inBlock}`;
        })()
      : diagnostic.file
        ? relative(ROOT, diagnostic.file.fileName)
        : 'tsc';
    const message = `${where}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`;
    const key = block ?? blocks[0]!;
    errors.set(key, [...(errors.get(key) ?? []), message]);
  }
  rmSync(OUT, { recursive: true, force: true });
  return errors;
}

describe('the manuals', () => {
  const blocks = MANUALS.flatMap(typescriptBlocks);
  // A block that cannot compile, compiled with the others: the check must name its line.
  const sentinel: CodeBlock = { file: 'sentinel.md', line: 7, code: "import { DuoModule } from 'nestjs-duo';\nDuoModule.forRoot({ clientId: 1 });", prelude: '', run: false };

  it('has TypeScript blocks to check (the README alone has more than ten)', () => {
    expect(blocks.filter((block) => block.file === 'README.md').length).toBeGreaterThan(10);
  });

  it('compiles every ```ts block of ' + MANUALS.join(' and ') + ', and names the line of one that does not', () => {
    const errors = compile([...blocks, sentinel]);
    expect(errors.get(sentinel)?.join('\n')).toMatch(/^sentinel\.md:9: .*number.*string/m);
    errors.delete(sentinel);
    expect([...errors.values()].flat()).toEqual([]);
  }, 120_000);
});
