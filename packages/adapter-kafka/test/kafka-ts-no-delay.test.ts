/** TCP_NODELAY on kafka-ts's connections (kafka-ts-no-delay.ts), against a local TCP server. */
import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { applyKafkaTsNoDelay } from '../src/kafka-ts-no-delay.js';
import { silentServer } from './silent-server.js';

interface KafkaTsConnection {
  socket?: Socket;
  connect(): Promise<void>;
  disconnect(): Promise<void>;
}
const { Connection } = createRequire(import.meta.url)('kafka-ts/dist/connection.js') as {
  Connection: new (options: { clientId: string | null; connection: { host: string; port: number }; requestTimeout: number; connectTimeout: number }) => KafkaTsConnection;
};

describe("kafka-ts's connections without Nagle", () => {
  const server = silentServer();
  afterEach(() => vi.restoreAllMocks());

  it("kafka-ts's connections set TCP_NODELAY before their first request", async () => {
    expect(applyKafkaTsNoDelay()).toBe(true);
    const noDelay = vi.spyOn(Socket.prototype, 'setNoDelay');
    const connection = new Connection({ clientId: 'test', connection: { host: '127.0.0.1', port: server.port }, requestTimeout: 1_000, connectTimeout: 1_000 });
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
});
