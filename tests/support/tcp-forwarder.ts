/**
 * A loopback TCP forwarder for fault tests: put it between a service and its database, then `close()`
 * it to make the database unreachable (the listener stops and every open connection is cut).
 */
import type { Socket } from 'bun';

export interface TcpForwarder {
  /** The loopback port clients connect to. */
  readonly port: number;
  /** Stops listening and cuts every forwarded connection, both sides. */
  close(): void;
}

interface Side {
  peer?: Socket<Side>;
  /** Bytes read before the upstream connection was up. */
  early: Uint8Array[];
  /** Bytes this socket could not take yet (written on `drain`). */
  backlog: Uint8Array[];
}

function send(socket: Socket<Side>, chunk: Uint8Array): void {
  if (socket.data.backlog.length > 0) return void socket.data.backlog.push(chunk.slice());
  const written = Math.max(socket.write(chunk), 0);
  if (written < chunk.byteLength) socket.data.backlog.push(chunk.slice(written));
}

function drain(socket: Socket<Side>): void {
  const backlog = socket.data.backlog;
  while (backlog.length > 0) {
    const chunk = backlog[0]!;
    const written = Math.max(socket.write(chunk), 0);
    if (written < chunk.byteLength) return void (backlog[0] = chunk.slice(written));
    backlog.shift();
  }
}

/**
 * Forwards 127.0.0.1:<port> to `target` until closed. `port` (default: any free one) lets a fault test
 * "restart" the target: close the forwarder, then start a new one on the same port.
 */
export function startTcpForwarder(target: { hostname: string; port: number }, port = 0): TcpForwarder {
  const sockets = new Set<Socket<Side>>();
  const handlers = {
    data(socket: Socket<Side>, chunk: Uint8Array) {
      if (socket.data.peer) send(socket.data.peer, chunk);
      else socket.data.early.push(chunk.slice());
    },
    drain,
    close(socket: Socket<Side>) {
      sockets.delete(socket);
      socket.data.peer?.end();
    },
    error(socket: Socket<Side>) {
      socket.end();
    },
  };
  const listener = Bun.listen<Side>({
    hostname: '127.0.0.1',
    port,
    socket: {
      ...handlers,
      open(client) {
        client.data = { early: [], backlog: [] };
        sockets.add(client);
        Bun.connect<Side>({ ...target, data: { peer: client, early: [], backlog: [] }, socket: handlers }).then(
          (upstream) => {
            sockets.add(upstream);
            client.data.peer = upstream;
            for (const chunk of client.data.early.splice(0)) send(upstream, chunk);
          },
          () => client.end(),
        );
      },
    },
  });
  let closed = false;
  return {
    port: listener.port,
    close() {
      if (closed) return;
      closed = true;
      listener.stop(true);
      for (const socket of sockets) socket.terminate();
      sockets.clear();
    },
  };
}
