/**
 * The design's rule for src/: imports point one way (Nest layer -> protocol;
 * testing -> protocol), with no circle anywhere, type-only imports included.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** Every relative module a file imports or re-exports, resolved to its .ts file. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specifiers = [...text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+'(\.{1,2}\/[^']+)'/gm)].map((match) => match[1]!);
  return specifiers.map((specifier) => resolve(dirname(file), specifier.replace(/\.js$/, '.ts')));
}

const graph = new Map(files(SRC).map((file) => [file, importsOf(file)]));
const name = (file: string): string => relative(SRC, file);

describe('the import graph of src/', () => {
  it('has no cycle', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (file: string, path: string[]): void => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') {
        cycles.push([...path.slice(path.indexOf(file)), file].map(name).join(' -> '));
        return;
      }
      state.set(file, 'open');
      for (const next of graph.get(file) ?? []) visit(next, [...path, file]);
      state.set(file, 'done');
    };
    for (const file of graph.keys()) visit(file, []);
    expect(cycles).toEqual([]);
  });

  it('points down: the protocol layer imports nothing outside itself, the emulator nothing of the Nest layer', () => {
    const wrong: string[] = [];
    for (const [file, imports] of graph) {
      const from = name(file);
      for (const target of imports.map(name)) {
        if (from.startsWith('protocol/') && !target.startsWith('protocol/')) wrong.push(`${from} -> ${target}`);
        if (from.startsWith('testing/') && !target.startsWith('testing/') && !target.startsWith('protocol/')) wrong.push(`${from} -> ${target}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});
