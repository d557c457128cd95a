/**
 * After start-up, publishing makes no JetStream API calls at all: topics are
 * ensured once (at start for configured topics, on first use otherwise, with
 * concurrent first uses collapsed into one check), and a publish is a plain
 * message with a reply subject. Proven by watching `$JS.API.>` from a second
 * connection while publishing.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Msg, Subscription } from '@nats-io/transport-node';
import { waitFor } from '@busline/conformance';
import { admin, Buses, SHARED_URL, SKIP, streamOf, topicName, type Admin } from './helpers.js';

/** Whether API subject `subject` (`$JS.API.<GROUP>.<VERB>[.<VERB>].<stream>...`) is about `stream`. */
function namesStream(subject: string, stream: string): boolean {
  const tokens = subject.split('.');
  const at = tokens[2] === 'CONSUMER' && (tokens[3] === 'MSG' || tokens[3] === 'DURABLE') ? 5 : 4;
  return tokens[at] === stream;
}

describe.skipIf(SKIP)('nats: JetStream API calls while publishing', () => {
  const buses = new Buses();
  let a: Admin;
  let watch: Subscription;
  const seen: string[] = [];

  beforeAll(async () => {
    a = await admin(SHARED_URL);
    watch = a.nc.subscribe('$JS.API.>', { callback: (_e: Error | null, m: Msg) => void seen.push(m.subject) });
    await a.nc.flush();
  });
  afterEach(() => buses.closeAll());
  afterAll(async () => {
    watch?.unsubscribe();
    await a?.deleteMadeStreams();
    await a?.close();
  });

  /**
   * API requests about `stream` or its consumers from the moment of the call on. The stream is
   * the token after the API verb (`STREAM.INFO.<stream>`, `CONSUMER.MSG.NEXT.<stream>.<consumer>`,
   * `DIRECT.GET.<stream>`): a group's partition claims live in the KV bucket's own stream, with
   * keys that carry this stream's name, and renewing them is the subscription's work, not the
   * publisher's.
   */
  async function requestsDuring(stream: string, run: () => Promise<void>): Promise<string[]> {
    await a.nc.flush();
    const from = seen.length;
    await run();
    // Everything the bus sent is in the server before its last publish ack came back; one more
    // round trip on the watching connection makes sure the copies reached us.
    await a.nc.flush();
    return seen.slice(from).filter((s) => namesStream(s, stream));
  }

  it('a configured topic: zero STREAM.INFO (and zero API requests) while publishing 3,000 messages', async () => {
    const topic = topicName('api-configured');
    const stream = streamOf(topic);
    const bus = await buses.make(SHARED_URL, { topics: { [topic]: { retentionMs: 3_600_000 } } });
    const got = new Set<string>();
    await bus.subscribe(topic, async (_p, ctx) => void got.add(ctx.envelope.id));
    const ids: string[] = [];
    const requests = await requestsDuring(stream, async () => {
      for (let i = 0; i < 10; i++) ids.push((await bus.publish(topic, { i }, { aggregateId: `k${i}` })).id);
      const results = await Promise.all(Array.from({ length: 1_000 }, (_, i) => bus.publish(topic, { i }, { aggregateId: `k${i % 37}` })));
      ids.push(...results.map((r) => r.id));
      for (let b = 0; b < 4; b++) {
        const r = await bus.publishBatch(topic, Array.from({ length: 500 }, (_, i) => ({ payload: { b, i } })));
        expect(r.failed).toEqual([]);
        ids.push(...r.ids);
      }
    });
    expect(requests.filter((s) => s.startsWith('$JS.API.STREAM.INFO')), 'STREAM.INFO requests while publishing').toEqual([]);
    // The subscription's pull requests (CONSUMER.MSG.NEXT) are the consumer working, not admin calls.
    expect(requests.filter((s) => !s.startsWith('$JS.API.CONSUMER.MSG.NEXT.')), 'admin API requests about the stream while publishing').toEqual([]);
    expect(await a.count(stream)).toBe(ids.length);
    await waitFor(() => got.size === ids.length, { timeoutMs: 20_000, message: () => `handled ${got.size} of ${ids.length}` });
  });

  it('an unconfigured topic: one STREAM.INFO on first use, even with 200 concurrent first publishes; none after', async () => {
    const topic = topicName('api-first-use');
    const stream = streamOf(topic);
    const bus = await buses.make(SHARED_URL);
    const first = await requestsDuring(stream, async () => {
      await Promise.all(Array.from({ length: 200 }, (_, i) => bus.publish(topic, { i })));
    });
    expect(first.filter((s) => s.startsWith('$JS.API.STREAM.INFO')), 'first use').toHaveLength(1);
    expect(first.filter((s) => s.startsWith('$JS.API.STREAM.CREATE')), 'created once').toHaveLength(1);
    const later = await requestsDuring(stream, async () => {
      await Promise.all(Array.from({ length: 2_000 }, (_, i) => bus.publish(topic, { i })));
    });
    expect(later, 'API requests after first use').toEqual([]);
    expect(await a.count(stream)).toBe(2_200);
  });

  it('topicStrategy skip: no API call ever, and a missing stream is reported clearly', async () => {
    const topic = topicName('api-skip');
    const stream = streamOf(topic);
    const bus = await buses.make(SHARED_URL, { topicStrategy: 'skip' });
    const requests = await requestsDuring(stream, async () => {
      const error = await bus.publish(topic, { x: 1 }).then(
        () => undefined,
        (e: unknown) => e as Error & { code: string },
      );
      expect(error?.code).toBe('PUBLISH_REJECTED');
      expect(error?.message).toMatch(/no stream stores the subject/);
    });
    expect(requests).toEqual([]);
  });
});
