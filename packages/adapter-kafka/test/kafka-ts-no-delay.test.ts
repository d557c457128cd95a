/** TCP_NODELAY on the clients' sockets (kafka-ts-no-delay.ts, kafkajs-sockets.ts), against a local TCP server. */
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { createServer, Socket, type Server } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { applyKafkaTsNoDelay } from '../src/kafka-ts-no-delay.js';
import { KafkajsSockets } from '../src/kafkajs-sockets.js';

interface KafkaTsConnection {
  socket?: Socket;
  connect(): Promise<void>;
  disconnect(): Promise<void>;
}
const { Connection } = createRequire(import.meta.url)('kafka-ts/dist/connection.js') as {
  Connection: new (options: { clientId: string | null; connection: { host: string; port: number }; requestTimeout: number; connectTimeout: number }) => KafkaTsConnection;
};

describe('sockets to the broker without Nagle', () => {
  let server: Server;
  let port: number;
  const accepted: Socket[] = [];
  beforeAll(async () => {
    server = createServer((socket) => void accepted.push(socket));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => {
    for (const socket of accepted) socket.destroy();
    server.close();
  });
  afterEach(() => vi.restoreAllMocks());

  it("kafka-ts's connections set TCP_NODELAY before their first request", async () => {
    expect(applyKafkaTsNoDelay()).toBe(true);
    const noDelay = vi.spyOn(Socket.prototype, 'setNoDelay');
    const connection = new Connection({ clientId: 'test', connection: { host: '127.0.0.1', port }, requestTimeout: 1_000, connectTimeout: 1_000 });
    await connection.connect();
    const socket = connection.socket!;
    expect(noDelay.mock.contexts).toContain(socket);
    expect(noDelay.mock.calls[noDelay.mock.contexts.indexOf(socket)]).toEqual([true]);
    await connection.disconnect();
  });

  it('applying it twice wraps connect once', () => {
    const prototype = Connection.prototype as { connect: unknown };
    applyKafkaTsNoDelay();
    const once = prototype.connect;
    expect(applyKafkaTsNoDelay()).toBe(true);
    expect(prototype.connect).toBe(once);
  });

  it("kafkajs's sockets (KafkajsSockets) set TCP_NODELAY", async () => {
    const noDelay = vi.spyOn(Socket.prototype, 'setNoDelay');
    let connected!: () => void;
    const onConnect = new Promise<void>((resolve) => (connected = resolve));
    const socket = new KafkajsSockets().factory({ host: '127.0.0.1', port, ssl: undefined as never, onConnect: connected });
    await onConnect;
    expect(noDelay.mock.contexts).toContain(socket);
    expect(noDelay.mock.calls[noDelay.mock.contexts.indexOf(socket)]).toEqual([true]);
    socket.destroy();
  });
});
