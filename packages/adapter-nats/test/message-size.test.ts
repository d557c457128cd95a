/**
 * Messages too large for the server: over its max_payload (refused before
 * sending, persistent and ephemeral) or over the stream's max_msg_size
 * (refused by JetStream) resolve as MESSAGE_TOO_LARGE, not retryable, on both
 * client paths; the connection stays usable.
 */
import { describe, expect, it } from 'vitest';
import { ErrorCode, type BuslineError } from '@busline/core';
import type { NatsDriver } from '../src/index.js';
import { sharedServerFixture, PATHS, SHARED_URL, SKIP, streamOf, topicName, usePath } from './helpers.js';

function expectTooLarge(error: unknown, what: string): void {
  const e = error as BuslineError;
  expect(e?.code, `${what}: ${String((e as Error)?.message)}`).toBe(ErrorCode.MessageTooLarge);
  expect(e.retryable, `${what}: not retryable`).toBe(false);
}

describe.skipIf(SKIP).each(PATHS)('nats: messages too large ($label)', ({ internals }) => {
  usePath(internals);
  const f = sharedServerFixture();
  const { buses } = f;

  it("over the server's max_payload: publish, publishWire, publishBatch and an ephemeral publish all fail with MESSAGE_TOO_LARGE", async () => {
    const topic = topicName('size-payload');
    const ephemeral = topicName('size-eph');
    const bus = await buses.make(SHARED_URL, { topics: { [ephemeral]: { persistence: 'ephemeral' } } });
    const driver = bus.driver as NatsDriver;
    const maxPayload = driver.connection!.info!.max_payload;
    const big = new Uint8Array(maxPayload + 1);

    expectTooLarge(await bus.publish(topic, big).catch((e: unknown) => e), 'publish');
    expectTooLarge(await bus.publishWire(topic, { headers: {}, body: big }).catch((e: unknown) => e), 'publishWire');
    // Headers count: a body just under the limit plus the envelope headers is over it.
    expectTooLarge(await bus.publish(topic, new Uint8Array(maxPayload - 10)).catch((e: unknown) => e), 'publish, over only with its headers');
    const batch = await bus.publishBatch(topic, [{ payload: { small: true } }, { payload: big }, { payload: { small: true } }]);
    expect(batch.failed.map((x) => x.index)).toEqual([1]);
    expectTooLarge(batch.failed[0]!.error, 'publishBatch');
    expectTooLarge(await bus.publish(ephemeral, big).catch((e: unknown) => e), 'ephemeral publish');

    // Nothing too large reached the server (it would have closed the connection): the bus carries on.
    await bus.publish(topic, { after: true });
    expect(driver.connection!.isClosed()).toBe(false);
    expect(await f.admin.count(streamOf(topic))).toBe(3);
  });

  it("over the stream's max_msg_size: JetStream's refusal is MESSAGE_TOO_LARGE", async () => {
    const topic = topicName('size-stream');
    const bus = await buses.make(SHARED_URL);
    await bus.publish(topic, { first: true });
    const stream = streamOf(topic);
    const info = await f.admin.jsm.streams.info(stream);
    await f.admin.jsm.streams.update(stream, { ...info.config, max_msg_size: 2_000 });

    expectTooLarge(await bus.publish(topic, new Uint8Array(4_000)).catch((e: unknown) => e), 'publish over max_msg_size');
    await bus.publish(topic, new Uint8Array(100));
    expect(await f.admin.count(stream)).toBe(2);
  });
});
