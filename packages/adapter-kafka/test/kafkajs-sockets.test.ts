/** KafkajsSockets against a local TCP server: what close relies on to end kafkajs's connections. */
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KafkajsSockets } from '../src/kafkajs-sockets.js';

describe('KafkajsSockets', () => {
  let server: Server;
  let port: number;
  const accepted: Socket[] = [];
  beforeAll(async () => {
    // Accepts and never answers, as a hung broker does.
    server = createServer((socket) => void accepted.push(socket));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => {
    for (const socket of accepted) socket.destroy();
    server.close();
  });

  const connect = (sockets: KafkajsSockets) => {
    let connected!: () => void;
    const onConnect = new Promise<void>((resolve) => (connected = resolve));
    const socket = sockets.factory({ host: '127.0.0.1', port, ssl: undefined as never, onConnect: connected });
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
});
