import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// Core's adapter lookup as an installed app sees it: built core copied into an app's node_modules
// (outside this workspace, whose root node_modules would make every adapter importable), run by Node.
const coreDir = fileURLToPath(new URL('..', import.meta.url));
const run = promisify(execFile);
let app: string;

function install(name: string, files: Record<string, string>): void {
  const dir = join(app, 'node_modules', name);
  mkdirSync(dir, { recursive: true });
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
}

async function createBus(url: string): Promise<{ code?: string; busline: boolean; message: string; ok?: true }> {
  const { stdout } = await run(process.execPath, ['main.mjs', url], { cwd: app });
  return JSON.parse(stdout) as never;
}

beforeAll(() => {
  if (!existsSync(join(coreDir, 'dist/index.js'))) throw new Error('packages/core/dist is missing: build first (tsc -b)');
  app = mkdtempSync(join(tmpdir(), 'busline-lookup-'));
  cpSync(join(coreDir, 'dist'), join(app, 'node_modules/@busline/core/dist'), { recursive: true });
  cpSync(join(coreDir, 'package.json'), join(app, 'node_modules/@busline/core/package.json'));
  // Core's own dependencies, as npm would install them beside it.
  const { dependencies } = JSON.parse(readFileSync(join(coreDir, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  for (const dep of Object.keys(dependencies)) {
    mkdirSync(dirname(join(app, 'node_modules', dep)), { recursive: true });
    symlinkSync(realpathSync(join(coreDir, 'node_modules', dep)), join(app, 'node_modules', dep));
  }
  writeFileSync(
    join(app, 'main.mjs'),
    `import { createEventBus, isBuslineError } from '@busline/core';
try {
  const bus = await createEventBus(process.argv[2]);
  await bus.close();
  console.log(JSON.stringify({ ok: true, busline: false, message: '' }));
} catch (e) {
  console.log(JSON.stringify({ code: e.code, busline: isBuslineError(e), message: e.message }));
}
`,
  );
}, 30_000);

afterAll(() => {
  if (app) rmSync(app, { recursive: true, force: true });
});

describe('adapter lookup in an installed app', () => {
  it('reports ADAPTER_MISSING naming the package to install, and the { adapter } option for bundled apps', async () => {
    const result = await createBus('kafka://127.0.0.1:9092');
    expect(result).toMatchObject({ code: 'ADAPTER_MISSING', busline: true });
    expect(result.message).toContain('npm i @busline/adapter-kafka');
    expect(result.message).toContain('createEventBus(cfg, { adapter })');
  });

  it('passes on the real error of an installed adapter that fails to load, not ADAPTER_MISSING', async () => {
    install('@busline/adapter-kafka', {
      'package.json': JSON.stringify({ name: '@busline/adapter-kafka', type: 'module', exports: { '.': { import: './index.js', default: './index.js' } } }),
      'index.js': "import 'kafkajs-not-installed';\nexport const adapter = {};\n",
    });
    const result = await createBus('kafka://127.0.0.1:9092');
    expect(result.code).toBe('ERR_MODULE_NOT_FOUND');
    expect(result.message).toContain('kafkajs-not-installed');
  });

  it('imports an installed adapter by package name', async () => {
    // The workspace's adapter; it brings its own link to a (second) copy of core, which is fine.
    symlinkSync(realpathSync(join(coreDir, '../adapter-memory')), join(app, 'node_modules/@busline/adapter-memory'));
    expect(await createBus('memory://')).toMatchObject({ ok: true });
  });
});
