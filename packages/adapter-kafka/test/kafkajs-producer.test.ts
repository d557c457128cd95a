/**
 * KafkajsProducer's session reset (no broker: what is checked is which
 * kafkajs producers are left connected, so a stand-in Kafka records them).
 */
import { describe, expect, it } from 'vitest';
import { NO_DRIVER_HOOKS } from '@busline/core';
import type { Kafka } from 'kafkajs';
import { kafkaConfigSchema } from '../src/config.js';
import { KafkajsProducer } from '../src/kafkajs-producer.js';

/** A kafkajs Kafka whose producers connect when the test says so, remembering which were disconnected. */
function standIn() {
  const made: { connected: boolean; disconnected: boolean; finishConnect: (error?: Error) => void }[] = [];
  const kafka = {
    producer: () => {
      let settle!: (error?: Error) => void;
      const connecting = new Promise<void>((resolve, reject) => (settle = (error) => (error ? reject(error) : resolve())));
      const p = { connected: false, disconnected: false, finishConnect: settle };
      made.push(p);
      return {
        events: { DISCONNECT: 'producer.disconnect' },
        on: () => undefined,
        connect: async () => {
          await connecting;
          p.connected = true;
        },
        disconnect: async () => {
          p.disconnected = true;
        },
      };
    },
  } as unknown as Kafka;
  return { kafka, made };
}

const config = kafkaConfigSchema.parse({ brokers: ['127.0.0.1:9'], producer: { client: 'kafkajs' } });

/** A connected KafkajsProducer in the middle of a reset: its new kafkajs producer waits for `made[1].finishConnect`. */
async function resetting() {
  const { kafka, made } = standIn();
  const producer = new KafkajsProducer(kafka, config, NO_DRIVER_HOOKS);
  made[0]!.finishConnect();
  await producer.connect();
  return { producer, made, reset: producer.reset() };
}

describe('KafkajsProducer.reset', () => {
  it('a new producer that cannot connect is disconnected, and the old one stays in use', async () => {
    const { made, reset } = await resetting();
    made[1]!.finishConnect(new Error('Connection error: connect ECONNREFUSED'));
    await expect(reset).rejects.toThrow(/ECONNREFUSED/);
    expect(made[1]!.disconnected, 'the failed new producer').toBe(true);
    expect(made[0]!.disconnected, 'the old producer, still the one in use').toBe(false);
  });

  it('closed while the new producer connects: both are disconnected, none is left open', async () => {
    const { producer, made, reset } = await resetting();
    await producer.close();
    made[1]!.finishConnect();
    await reset;
    expect(made.map((p) => p.disconnected)).toEqual([true, true]);
  });
});
