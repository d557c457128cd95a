import { patchKafkajsPrototype } from './kafkajs-internals.js';

/**
 * Whether a kafkajs consumer that is not busline's runs in this process.
 *
 * The adapter's record decoder replaces kafkajs's for the whole process. For
 * busline's own consumers it gives each record's headers as text only (the
 * Buffers kafkajs makes per header were about a fifth of an ordered
 * consume's CPU); a consumer of someone else's (your own kafkajs code beside
 * a bus) must get the records kafkajs documents, with Buffers. So every
 * consumer kafkajs's `Kafka#consumer` makes outside `ownConsumer` counts as
 * foreign from its creation until its `disconnect()` resolves; while any
 * does, every record is decoded with Buffers (busline reads those as well).
 */
interface ConsumerLike {
  disconnect(): Promise<void>;
}
interface ClientLike {
  consumer(...args: unknown[]): ConsumerLike;
}

const PATCHED = Symbol.for('busline.kafkajs.foreignConsumers');
let foreign = 0;
let creatingOwn = false;
/** Until the count is in place (or if kafkajs moved `consumer`), every consumer may be foreign. */
let counting = false;

/** True while a kafkajs consumer busline did not create exists (created, not yet disconnected), or could. */
export function foreignConsumersRunning(): boolean {
  return !counting || foreign > 0;
}

/** `make()` (which calls `kafka.consumer(…)`), with the consumer it makes counted as busline's own. */
export function ownConsumer<C>(make: () => C): C {
  creatingOwn = true;
  try {
    return make();
  } finally {
    creatingOwn = false;
  }
}

export function applyForeignConsumerCount(): boolean {
  counting = patchKafkajsPrototype<ClientLike>('index.js', PATCHED, ['consumer'], (proto) => {
    const original = proto.consumer;
    proto.consumer = function (this: ClientLike, ...args: unknown[]): ConsumerLike {
      const consumer = original.apply(this, args);
      if (creatingOwn) return consumer;
      foreign++;
      let counted = true;
      const disconnect = consumer.disconnect;
      consumer.disconnect = async () => {
        await disconnect();
        if (counted) foreign--;
        counted = false;
      };
      return consumer;
    };
  });
  return counting;
}
