/** KafkajsSockets against a local TCP server: what close relies on to end kafkajs's connections, and TCP_NODELAY. */
import { once } from 'node:events';
import { Socket } from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import { KafkajsSockets } from '../src/kafkajs-sockets.js';
import { silentServer } from './silent-server.js';

describe('KafkajsSockets', () => {
  const server = silentServer();

  const connect = (sockets: KafkajsSockets) => {
    let connected!: () => void;
    const onConnect = new Promise<void>((resolve) => (connected = resolve));
    const socket = sockets.factory({ host: '127.0.0.1', port: server.port, ssl: undefined as never, onConnect: connected });
    return { socket, onConnect };
  };

  it('records the sockets it opens until they close', async () => {
    const sockets = new KafkajsSockets();
    const a = connect(sockets);
    const b = connect(sockets);
    await Promise.all([a.onConnect, b.onConnect]);
    expect(sockets.size).toBe(2);
    a.socket.destroy();
    await once(a.socket, 'close');
    expect(sockets.size).toBe(1);
    b.socket.destroy();
  });

  it('endAll destroys the open sockets with an error, and sockets asked for later fail as they open', async () => {
    const sockets = new KafkajsSockets();
    const open = connect(sockets);
    await open.onConnect;
    const failed = once(open.socket, 'error');
    sockets.endAll();
    const [error] = (await failed) as [Error];
    expect(error.message).toMatch(/Kafka driver is closed/);
    expect(open.socket.destroyed).toBe(true);
    await once(open.socket, 'close');
    expect(sockets.size).toBe(0);

    const later = connect(sockets);
    const [laterError] = (await once(later.socket, 'error')) as [Error];
    expect(laterError.message).toMatch(/Kafka driver is closed/);
    expect(later.socket.destroyed).toBe(true);
  });

  it('sets TCP_NODELAY on every socket (Node leaves Nagle on)', async () => {
    const noDelay = vi.spyOn(Socket.prototype, 'setNoDelay');
    try {
      const { socket, onConnect } = connect(new KafkajsSockets());
      await onConnect;
      expect(noDelay.mock.contexts).toContain(socket);
      expect(noDelay.mock.calls[noDelay.mock.contexts.indexOf(socket)]).toEqual([true]);
      socket.destroy();
    } finally {
      noDelay.mockRestore();
    }
  });
});
