/**
 * @nestjs/terminus and @opentelemetry/api are optional peer dependencies: the
 * main entry (`nestjs-duo`) must load without them. Nothing it reaches imports
 * either at run time (type-only imports are erased); terminus is imported by
 * `nestjs-duo/terminus` alone, and the OpenTelemetry API is only ever
 * `require`d lazily, in src/telemetry.ts, when the module starts.
 */
import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');
const OPTIONAL = /^(@nestjs\/terminus|@opentelemetry\/)/;

/** The module specifiers a file imports or re-exports at run time (`import type` / `export type` left out). */
function runtimeImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const statements = [...text.matchAll(/^\s*(import|export)\s+(type\s+)?([^'";]*?)\s*from\s+'([^']+)'/gm)];
  const bare = [...text.matchAll(/^\s*import\s+'([^']+)'/gm)].map((match) => match[1]!);
  const dynamic = [...text.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g)].map((match) => match[1]!);
  return [
    ...statements
      .filter(([, , typeOnly, clause]) => !typeOnly && !/^\{\s*(type\s+[\w$]+\s*(as\s+[\w$]+\s*)?,?\s*)*\}$/.test(clause!.trim()))
      .map((match) => match[4]!),
    ...bare,
    ...dynamic,
  ];
}

/** Every source file an entry reaches at run time, and the packages each imports. */
function reach(entry: string): Map<string, string[]> {
  const seen = new Map<string, string[]>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    const imports = runtimeImports(file);
    seen.set(file, imports.filter((specifier) => !specifier.startsWith('.')));
    for (const specifier of imports) if (specifier.startsWith('.')) visit(resolve(dirname(file), specifier.replace(/\.js$/, '.ts')));
  };
  visit(resolve(SRC, entry));
  return seen;
}

function optionalImports(entry: string): string[] {
  return [...reach(entry)].flatMap(([file, packages]) => packages.filter((name) => OPTIONAL.test(name)).map((name) => `${relative(SRC, file)} -> ${name}`));
}

describe('optional peer dependencies', () => {
  it('nestjs-duo (and /protocol, /testing) import neither @nestjs/terminus nor @opentelemetry/* at run time', () => {
    for (const entry of ['index.ts', 'protocol/index.ts', 'testing/index.ts']) expect(optionalImports(entry)).toEqual([]);
  });

  it('the check sees a run-time import: nestjs-duo/terminus imports @nestjs/terminus', () => {
    expect(optionalImports('terminus/index.ts')).toEqual(['terminus/duo-health.indicator.ts -> @nestjs/terminus']);
  });

  it('the OpenTelemetry API is loaded lazily, by createRequire in src/telemetry.ts only', () => {
    expect(reach('index.ts').has(resolve(SRC, 'telemetry.ts'))).toBe(true);
    const text = readFileSync(resolve(SRC, 'telemetry.ts'), 'utf8');
    expect(text).toMatch(/requireOptional\('@opentelemetry\/api'\)/);
    expect(text).toMatch(/^import type \* as OTel from '@opentelemetry\/api';$/m);
  });
});
