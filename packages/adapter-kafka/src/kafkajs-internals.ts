import { createRequire } from 'node:module';

/**
 * A private module of the kafkajs this adapter depends on (`kafkajs/src/…`),
 * for the fixes applied to it when the adapter loads; undefined when kafkajs
 * has no such file (another version), so a fix is skipped, never an error.
 */
export function kafkajsInternal<T>(path: string): T | undefined {
  try {
    return createRequire(import.meta.url)(`kafkajs/src/${path}`) as T;
  } catch {
    return undefined;
  }
}

/** The version of the kafkajs the adapter loads; undefined when it cannot be read. */
export function kafkajsVersion(): string | undefined {
  try {
    return (createRequire(import.meta.url)('kafkajs/package.json') as { version?: string }).version;
  } catch {
    return undefined;
  }
}

/**
 * The kafkajs module `path` as kafkajs wrote it: the original kept under
 * `mark` when `replaceKafkajsModule` put a replacement in its place (for the
 * tests that compare the two); undefined when kafkajs has no such file.
 */
export function originalKafkajsModule<T extends object>(path: string, mark: symbol): T | undefined {
  const current = kafkajsInternal<T & { [mark]?: T }>(path);
  return current?.[mark] ?? current;
}

/**
 * Puts `make(original)` in place of the kafkajs module `path` in the require
 * cache, unless `capturedBy` (the module that requires it at load) is loaded
 * already: then it kept the original and replacing is too late. `make` gets
 * the original; the replacement keeps it under `mark`, so a second call, and
 * the tests, find it. Returns whether the replacement is in place.
 */
export function replaceKafkajsModule<T extends object>(path: string, capturedBy: string, mark: symbol, make: (original: T) => T): boolean {
  let require: NodeJS.Require;
  let resolved: string;
  try {
    require = createRequire(import.meta.url);
    resolved = require.resolve(`kafkajs/src/${path}`);
    require(resolved);
  } catch {
    return false;
  }
  const cached = require.cache[resolved];
  if (cached === undefined) return false;
  const original = cached.exports as T & { [mark]?: unknown };
  if (original[mark] !== undefined) return true;
  if (require.cache[require.resolve(`kafkajs/src/${capturedBy}`)] !== undefined) return false;
  const replacement = make(original);
  Object.defineProperty(replacement, mark, { value: original });
  cached.exports = replacement;
  return true;
}

/**
 * Patches the prototype of the kafkajs class exported by module `path`, once
 * per process: `patch` gets the prototype, which is then marked with `mark`.
 * False, with nothing changed, when kafkajs has no such module or the
 * prototype lacks one of `methods` (another version): the fix is skipped.
 */
export function patchKafkajsPrototype<P extends object>(path: string, mark: symbol, methods: readonly (keyof P)[], patch: (proto: P) => void): boolean {
  const proto = kafkajsInternal<{ prototype: P }>(path)?.prototype;
  if (proto === undefined) return false;
  const marks = proto as Record<symbol, unknown>;
  if (marks[mark] === true) return true;
  if (methods.some((name) => typeof proto[name] !== 'function')) return false;
  patch(proto);
  marks[mark] = true;
  return true;
}
