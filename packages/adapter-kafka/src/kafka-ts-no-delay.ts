/**
 * kafka-ts's broker connections without Nagle's algorithm (TCP_NODELAY), as
 * kafkajs's are through KafkajsSockets, and as Kafka's Java client and the
 * broker set theirs (librdkafka made it its default in 2025, after latency
 * spikes traced to Nagle).
 *
 * Node opens sockets with Nagle's algorithm on. busline batches publishes
 * itself, so holding back a short write until the previous one is
 * acknowledged only adds latency: a small request written while another is
 * unacknowledged waits for the broker's delayed ACK, up to 40 ms on Linux.
 *
 * kafka-ts creates its sockets inside `Connection.connect`, so the option is
 * set when that resolves, before the connection's first request (the
 * handshake). Without the Connection class (another kafka-ts version) nothing
 * is changed: connections work as before, with Nagle's algorithm.
 */
import type { Socket } from 'node:net';
import { KAFKA_TS_ORIGINAL as ORIGINAL, kafkaTsModule } from './kafka-ts-internals.js';

type Connect = ((this: ConnectionLike) => Promise<void>) & { [ORIGINAL]?: Connect };
interface ConnectionLike {
  socket?: Socket;
}

/** True once every kafka-ts connection opens with TCP_NODELAY. */
export function applyKafkaTsNoDelay(): boolean {
  const prototype = kafkaTsModule<{ Connection?: { prototype: { connect?: Connect } } }>('connection.js')?.Connection?.prototype;
  const original = prototype?.connect;
  if (prototype === undefined || typeof original !== 'function') return false;
  if (original[ORIGINAL] !== undefined) return true;
  const connect: Connect = async function (this: ConnectionLike) {
    await original.call(this);
    this.socket?.setNoDelay(true);
  };
  Object.defineProperty(connect, ORIGINAL, { value: original });
  prototype.connect = connect;
  return true;
}
