/**
 * Topic strategies (createOnly, createOrUpdate, validateOnly, skip) and the
 * mismatch actions (warn, fail, ignore), checked against what the broker
 * really has. retentionMs is the field used for mismatches: every broker
 * stores it and can change it.
 */
import { expect } from '../expect.js';
import { ErrorCode, type BuslineError, type EventBus, type TopicMismatchEvent } from '@busline/core';
import type { Harness } from '../harness.js';
import { rejection, waitFor } from '../helpers.js';

const HOUR = 3_600_000;
const TWO_HOURS = 7_200_000;

/** Asserts the broker has `retentionMs` for `topic` (validateOnly: verified with no differences). */
async function expectRetention(bus: EventBus, topic: string, retentionMs: number): Promise<void> {
  const check = await bus.configureTopic(topic, { retentionMs }, { strategy: 'validateOnly', onMismatch: 'ignore' });
  expect(check.differences, `broker differences for ${topic}`).toEqual([]);
  expect(check.action).toBe('verified');
}

async function expectMissing(bus: EventBus, topic: string): Promise<void> {
  const error = await rejection(bus.configureTopic(topic, { retentionMs: HOUR }, { strategy: 'validateOnly' }));
  expect(error.code, `${topic} should not exist`).toBe(ErrorCode.TopicNotFound);
}

function mismatchCollector(bus: EventBus, topic: string): TopicMismatchEvent[] {
  const events: TopicMismatchEvent[] = [];
  bus.on('topicMismatch', (e: TopicMismatchEvent) => {
    if (e.topic === topic) events.push(e);
  });
  return events;
}

export function registerTopicTests(h: Harness): void {
  h.test('createOnly creates a missing topic with its options; repeating it verifies', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('create');
    const created = await bus.configureTopic(topic, { retentionMs: HOUR }, { strategy: 'createOnly' });
    expect(created.action).toBe('created');
    await expectRetention(bus, topic, HOUR);
    const again = await bus.configureTopic(topic, { retentionMs: HOUR }, { strategy: 'createOnly' });
    expect(again.action).toBe('verified');
    expect(again.differences).toEqual([]);
  });

  h.test('createOnly on an existing topic with other options never modifies it; onMismatch warn emits topicMismatch and resolves', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('warn');
    await bus.configureTopic(topic, { retentionMs: HOUR }, { strategy: 'createOnly' });
    const events = mismatchCollector(bus, topic);
    const result = await bus.configureTopic(topic, { retentionMs: TWO_HOURS }, { strategy: 'createOnly', onMismatch: 'warn' });
    expect(result.action).toBe('mismatch');
    expect(result.differences).toContainEqual({ field: 'retentionMs', wanted: TWO_HOURS, actual: HOUR });
    await waitFor(() => events.length > 0, { timeoutMs: h.ms(5_000), message: "a 'topicMismatch' event" });
    expect(events[0]!.differences).toContainEqual({ field: 'retentionMs', wanted: TWO_HOURS, actual: HOUR });
    await expectRetention(bus, topic, HOUR);
  });

  h.test('createOnly with onMismatch fail rejects with TopicMismatchError naming the field, wanted and actual', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('fail');
    await bus.configureTopic(topic, { retentionMs: HOUR }, { strategy: 'createOnly' });
    const error = await rejection(bus.configureTopic(topic, { retentionMs: TWO_HOURS }, { strategy: 'createOnly', onMismatch: 'fail' }));
    // By name and code rather than instanceof, so a duplicated @busline/core install still passes.
    expect(error.name).toBe('TopicMismatchError');
    expect(error.code).toBe(ErrorCode.TopicMismatch);
    expect(error.message).toContain('retentionMs');
    expect(error.message).toContain(String(TWO_HOURS));
    expect(error.message).toContain(String(HOUR));
    expect(error.message).toContain(topic);
    await expectRetention(bus, topic, HOUR);
  });

  h.test('createOnly with onMismatch ignore resolves silently and leaves the topic alone', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('ignore');
    await bus.configureTopic(topic, { retentionMs: HOUR }, { strategy: 'createOnly' });
    const events = mismatchCollector(bus, topic);
    const result = await bus.configureTopic(topic, { retentionMs: TWO_HOURS }, { strategy: 'createOnly', onMismatch: 'ignore' });
    expect(['mismatch', 'verified']).toContain(result.action);
    await expectRetention(bus, topic, HOUR);
    expect(events, 'no topicMismatch event with ignore').toEqual([]);
  });

  h.test('createOrUpdate changes an existing topic to the wanted options', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('update');
    await bus.configureTopic(topic, { retentionMs: HOUR }, { strategy: 'createOnly' });
    const result = await bus.configureTopic(topic, { retentionMs: TWO_HOURS }, { strategy: 'createOrUpdate' });
    expect(result.action).toBe('updated');
    expect(result.differences).toContainEqual({ field: 'retentionMs', wanted: TWO_HOURS, actual: HOUR });
    await expectRetention(bus, topic, TWO_HOURS);
    const missing = h.topic('update-new');
    expect((await bus.configureTopic(missing, { retentionMs: HOUR }, { strategy: 'createOrUpdate' })).action).toBe('created');
  });

  h.test('validateOnly on a missing topic rejects TOPIC_NOT_FOUND and never creates it', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('validate');
    const error = await rejection(bus.configureTopic(topic, { retentionMs: HOUR }, { strategy: 'validateOnly' }));
    expect(error.code).toBe(ErrorCode.TopicNotFound);
    expect(error.message).toContain(topic);
    await expectMissing(bus, topic);
    expect((await bus.configureTopic(topic, { retentionMs: HOUR }, { strategy: 'createOnly' })).action).toBe('created');
  });

  h.test('validateOnly reports a mismatch on an existing topic and does not change it', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('validate-mismatch');
    await bus.configureTopic(topic, { retentionMs: HOUR }, { strategy: 'createOnly' });
    const error = await rejection(bus.configureTopic(topic, { retentionMs: TWO_HOURS }, { strategy: 'validateOnly', onMismatch: 'fail' }));
    expect(error.code).toBe(ErrorCode.TopicMismatch);
    await expectRetention(bus, topic, HOUR);
  });

  h.test('skip makes no broker call: nothing is created, nothing compared', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('skip');
    const result = await bus.configureTopic(topic, { retentionMs: HOUR }, { strategy: 'skip' });
    expect(result.action).toBe('skipped');
    expect(result.differences).toEqual([]);
    await expectMissing(bus, topic);

    const existing = h.topic('skip-existing');
    await bus.configureTopic(existing, { retentionMs: HOUR }, { strategy: 'createOnly' });
    const events = mismatchCollector(bus, existing);
    const skipped = await bus.configureTopic(existing, { retentionMs: TWO_HOURS }, { strategy: 'skip', onMismatch: 'fail' });
    expect(skipped.action).toBe('skipped');
    expect(events).toEqual([]);
    await expectRetention(bus, existing, HOUR);
  });

  h.test("the bus's topicStrategy applies on first use: validateOnly refuses to publish to a missing topic", {}, async () => {
    const strict = await h.bus({ topicStrategy: 'validateOnly' });
    const topic = h.topic('strict');
    const error = await rejection(strict.publish(topic, { x: 1 }));
    expect(error.code).toBe(ErrorCode.TopicNotFound);
    await expectMissing(await h.bus(), topic);
  });

  h.test('topics listed in the config are ensured at start()', {}, async () => {
    const topic = h.topic('configured');
    await h.bus({ topics: { [topic]: { retentionMs: TWO_HOURS } }, topicStrategy: 'createOnly' });
    await expectRetention(await h.bus(), topic, TWO_HOURS);
  });

  h.test('a mismatch on a configured topic with onMismatch fail makes start() reject', {}, async () => {
    const setup = await h.bus();
    const topic = h.topic('start-fail');
    await setup.configureTopic(topic, { retentionMs: HOUR }, { strategy: 'createOnly' });
    const error = await rejection(h.bus({ topics: { [topic]: { retentionMs: TWO_HOURS } }, topicStrategy: 'createOnly', onMismatch: 'fail' }));
    expect(error.code).toBe(ErrorCode.TopicMismatch);
    expect(error.message).toContain('retentionMs');
    await expectRetention(setup, topic, HOUR);
  });
}
