/**
 * Bad input fails early, with a stable code and a message that says why:
 * topic names no adapter can carry, invalid config (every bad field listed),
 * invalid envelope fields.
 */
import { expect } from '../expect.js';
import { ErrorCode, type BuslineError } from '@busline/core';
import type { BusConfigLike, Harness } from '../harness.js';
import { rejection } from '../helpers.js';

const INVALID_TOPICS: { name: string; label: string; why: RegExp }[] = [
  { name: '', label: 'empty', why: /empty/i },
  { name: '   ', label: 'only whitespace', why: /whitespace/i },
  { name: 'orders created', label: 'with a space', why: /whitespace/i },
  { name: 'orders\tcreated', label: 'with a tab', why: /whitespace/i },
  { name: 'orders.*', label: 'with wildcard *', why: /wildcard|\*/i },
  { name: 'orders.>', label: 'with wildcard >', why: /wildcard|>/i },
  { name: 't'.repeat(201), label: '201 characters', why: /200/ },
  { name: 'orders/created', label: 'with a slash', why: /letters|contain|character/i },
];

export function registerValidationTests(h: Harness): void {
  h.test('invalid topic names reject TOPIC_INVALID, saying why, at publish, subscribe and configureTopic', {}, async () => {
    const bus = await h.bus();
    for (const { name, label, why } of INVALID_TOPICS) {
      const calls: [string, () => Promise<unknown>][] = [
        ['publish', () => bus.publish(name, { x: 1 })],
        ['subscribe', () => bus.subscribe(name, async () => {})],
        ['subscribeWire', () => bus.subscribeWire(name, async () => {})],
        ['configureTopic', () => bus.configureTopic(name, { retentionMs: 60_000 })],
      ];
      for (const [call, run] of calls) {
        const error = await rejection(run());
        expect(error.code, `${call} with a topic ${label}`).toBe(ErrorCode.TopicInvalid);
        expect(error.message, `${call} with a topic ${label} says why`).toMatch(why);
      }
    }
  });

  h.test('invalid config rejects CONFIG_INVALID listing every bad field', {}, async () => {
    const bad = {
      topicStrategy: 'sometimes',
      onMismatch: 'explode',
      group: 'has spaces and *',
      topics: { 'orders-ok': { retentionMs: -5 } },
    } as unknown as Partial<BusConfigLike>;
    // createEventBus validates the whole config before connecting; allow start() for factories that defer.
    const error = await rejection(h.bus(bad));
    expect(error.code).toBe(ErrorCode.ConfigInvalid);
    for (const field of ['topicStrategy', 'onMismatch', 'group', 'retentionMs']) {
      expect(error.message, `the error names ${field}`).toContain(field);
    }
  });

  h.test('invalid envelope fields reject ENVELOPE_INVALID naming the field', {}, async () => {
    const bus = await h.bus();
    const topic = h.topic('envelope-invalid');
    const cases: [string, () => Promise<unknown>, string][] = [
      ['aggregateId with spaces', () => bus.publish(topic, 1, { aggregateId: 'has spaces' }), 'aggregateId'],
      ['aggregateId over 256 chars', () => bus.publish(topic, 1, { aggregateId: 'a'.repeat(257) }), 'aggregateId'],
      ['version 0', () => bus.publish(topic, 1, { version: 0 }), 'version'],
      ['reserved header', () => bus.publish(topic, 1, { headers: { 'ce-id': 'forged' } }), 'headers'],
      // The Kafka binding's attribute names: a user header must not pose as one on any broker.
      ['reserved ce_ header', () => bus.publish(topic, 1, { headers: { ce_subject: 'forged' } }), 'headers'],
      ['header value with a newline', () => bus.publish(topic, 1, { headers: { 'x-a': 'line\nbreak' } }), 'headers'],
      ['undefined payload', () => bus.publish(topic, undefined as never), 'payload'],
    ];
    for (const [label, run, field] of cases) {
      const error = await rejection(run());
      expect(error.code, label).toBe(ErrorCode.EnvelopeInvalid);
      expect(error.message, `${label}: names ${field}`).toContain(field);
    }
  });
}
