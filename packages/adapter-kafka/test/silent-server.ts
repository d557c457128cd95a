/** A local TCP server that accepts connections and never answers, as a hung broker does, for socket-level tests. */
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll } from 'vitest';

/** Starts the server before the block's tests and closes it, and what it accepted, after them. */
export function silentServer(): { readonly port: number } {
  let server: Server;
  let port = 0;
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
  return {
    get port() {
      return port;
    },
  };
}
