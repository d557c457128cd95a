// docs/migrating.md quotes regions of docs/snippets/migrating.ts, which tsc -b
// compiles; this keeps the page from drifting off what compiles.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const read = (path: string) => readFileSync(new URL(path, import.meta.url), 'utf8');

/** `// #region name` … `// #endregion name`, dedented as the page shows it. */
function regions(source: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const [, name, body] of source.matchAll(/\/\/ #region (\S+)\n([\s\S]*?)\n[ \t]*\/\/ #endregion \1/g)) {
    const lines = body!.split('\n');
    const indent = Math.min(...lines.filter((l) => l.trim()).map((l) => l.length - l.trimStart().length));
    found.set(name!, lines.map((l) => l.slice(indent)).join('\n'));
  }
  return found;
}

describe('docs/migrating.md', () => {
  const page = read('../migrating.md');
  const source = regions(read('../snippets/migrating.ts'));
  const quoted = [...page.matchAll(/<!-- snippet:(\S+) -->\n```ts\n([\s\S]*?)\n```/g)];

  it('quotes every compiled region, once', () => {
    expect(quoted.map(([, name]) => name).sort()).toEqual([...source.keys()].sort());
  });

  it.each(quoted.map(([, name, code]) => [name!, code!]))('snippet %s is the compiled code, verbatim', (name, code) => {
    expect(code).toBe(source.get(name));
  });
});
