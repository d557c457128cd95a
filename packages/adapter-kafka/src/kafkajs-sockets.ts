/**
 * The sockets of the driver's kafkajs clients (producer, admin, consumers),
 * so that close can end what it gave up on.
 *
 * kafkajs cannot cancel a request. When close stops waiting for a broker that
 * does not answer (CloseDeadline), the commit, the group leave and the
 * disconnects it gave up on go on in the background until their requests time
 * out, and their sockets and timers kept the process alive for about two
 * request timeouts (56 s measured). Destroying the sockets fails those
 * requests at once; sockets asked for after that fail as they open, so
 * kafkajs's retries of them end within its retry backoff instead.
 *
 * The factory is kafkajs's own (kafkajs/src/network/socketFactory.js: TLS
 * with SNI for host names, keep-alive after 60 s), plus the record and
 * TCP_NODELAY: Node leaves Nagle's algorithm on, which makes a short request
 * (a fetch, a commit, a heartbeat) written while another is unacknowledged
 * wait for the broker's delayed ACK (see kafka-ts-no-delay.ts).
 */
import net from 'node:net';
import tls from 'node:tls';
import type { ISocketFactory } from 'kafkajs';

const KEEP_ALIVE_DELAY_MS = 60_000;
const closed = () => new Error('the Kafka driver is closed');

export class KafkajsSockets {
  private readonly open = new Set<net.Socket>();
  private ended = false;

  readonly factory: ISocketFactory = ({ host, port, ssl, onConnect }) => {
    const socket = ssl
      ? tls.connect({ host, port, ...(net.isIP(host) ? {} : { servername: host }), ...ssl }, onConnect)
      : net.connect({ host, port }, onConnect);
    socket.setKeepAlive(true, KEEP_ALIVE_DELAY_MS);
    socket.setNoDelay(true);
    if (this.ended) {
      process.nextTick(() => socket.destroy(closed()));
      return socket;
    }
    this.open.add(socket);
    socket.once('close', () => this.open.delete(socket));
    return socket;
  };

  /** Sockets not closed yet. */
  get size(): number {
    return this.open.size;
  }

  /** Destroys every open socket (their requests fail with a connection error) and every later one. */
  endAll(): void {
    this.ended = true;
    for (const socket of this.open) socket.destroy(closed());
  }
}
