/**
 * The adapter's faster kafkajs modules are in place only when the adapter
 * loads before kafkajs (kafkajs-replacements.ts). A process that imported
 * kafkajs first must be told, once per bus, not left to run slower in
 * silence. Each case is a fresh Node process: a module loaded once stays
 * loaded for the whole process.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BROKERS, NO_BROKER } from './helpers.js';

/** The built adapter, as an application loads it (`pnpm test` builds first; run alone, build before). */
const DIST = fileURLToPath(new URL('../dist/index.js', import.meta.url));
const PACKAGE = fileURLToPath(new URL('..', import.meta.url));
const MESSAGE = /kafkajs's own .* in use, not the adapter's faster replacement.*loaded or used before @busline\/adapter-kafka: import the adapter first/;

/** Starts and closes a bus in a new process that imports kafkajs first or not; its info log entries. */
function infoEntries(kafkajsFirst: boolean): { fields: Record<string, unknown>; message: string }[] {
  const out = execFileSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `
      ${kafkajsFirst ? "await import('kafkajs');" : ''}
      const { adapter } = await import(${JSON.stringify(DIST)});
      const { createEventBus } = await import('@busline/core');
      const entries = [];
      const logger = { debug() {}, info: (fields, message) => entries.push({ fields, message }), warn() {}, error() {} };
      const bus = await createEventBus({ url: 'kafka://${BROKERS}', logger }, { adapter });
      await bus.start();
      await bus.close();
      console.log(JSON.stringify(entries));
    `,
    ],
    { cwd: PACKAGE },
  ).toString();
  return JSON.parse(out.trim().split('\n').at(-1)!) as { fields: Record<string, unknown>; message: string }[];
}

describe.skipIf(NO_BROKER)('kafkajs replacements and import order', () => {
  it('a bus in a process that loaded the adapter first says nothing about them', () => {
    expect(infoEntries(false).filter((e) => MESSAGE.test(e.message))).toEqual([]);
  }, 60_000);

  it('a bus in a process that imported kafkajs first says, once, that Batch is kafkajs\'s own and what to do', () => {
    const entries = infoEntries(true).filter((e) => MESSAGE.test(e.message));
    expect(entries).toHaveLength(1);
    // Batch is captured when kafkajs loads; the decoders and encoder only on first use, so the adapter still replaced them.
    expect(entries[0]!.fields).toMatchObject({ kafka: 'kafkajs', kafkajsVersion: '2.2.4', missing: ['Batch (consume)'] });
  }, 60_000);
});
