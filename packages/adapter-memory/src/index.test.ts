import { describe, expect, it } from 'vitest';
import { adapter, memoryConfigSchema, MemoryDriver, getMemoryBroker, dropMemoryBroker } from './index.js';

describe('adapter module', () => {
  it('is the memory adapter', () => {
    expect(adapter.type).toBe('memory');
  });

  it('turns memory:// URLs into a config section', () => {
    expect(adapter.sectionFromUrl('memory://')).toEqual({});
    expect(adapter.sectionFromUrl('memory://orders-test')).toEqual({ broker: 'orders-test' });
  });

  it('config: defaults, strictness, described fields', () => {
    expect(memoryConfigSchema.parse({})).toEqual({ broker: 'default', dedupeWindowMs: 120_000, deliveryBatchSize: 256, maxMessageBytes: 1_048_576 });
    const bad = memoryConfigSchema.safeParse({ broker: '', dedupeWindowMs: -1, deliveryBatchSize: 0, maxMessageBytes: 0, nope: 1 });
    expect(bad.success).toBe(false);
    const paths = bad.error!.issues.map((i) => (i.path.length ? i.path.join('.') : i.code));
    expect(paths).toEqual(expect.arrayContaining(['broker', 'dedupeWindowMs', 'deliveryBatchSize', 'maxMessageBytes', 'unrecognized_keys']));
    for (const field of ['broker', 'dedupeWindowMs', 'deliveryBatchSize', 'maxMessageBytes'] as const) {
      expect(memoryConfigSchema.shape[field].description).toBeTruthy();
    }
  });

  it('createDriver gives a driver on the named process-wide broker', () => {
    const section = adapter.configSchema.parse(adapter.sectionFromUrl('memory://factory-test'));
    const driver = adapter.createDriver(section);
    expect(driver).toBeInstanceOf(MemoryDriver);
    expect((driver as MemoryDriver).broker).toBe(getMemoryBroker('factory-test'));
    expect(dropMemoryBroker('factory-test')).toBe(true);
    expect(getMemoryBroker('factory-test')).not.toBe((driver as MemoryDriver).broker);
  });
});
