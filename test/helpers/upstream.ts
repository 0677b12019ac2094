// Upstream servers for tests: an HTTP echo server that records what reached it
// and counts its connections, and a raw TCP server for hand-written answers.
import * as http from 'node:http';
import * as net from 'node:net';

export interface SeenRequest {
  method: string;
  url: string;
  /** Header names lower-cased (node's IncomingMessage.headers). */
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  httpVersion: string;
  bodyLength: number;
  body: Buffer;
}

export type UpstreamHandler = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void;

export interface TestUpstream {
  readonly port: number;
  readonly requests: SeenRequest[];
  /** TCP connections accepted so far. */
  connections: number;
  close(): Promise<void>;
}

export interface UpstreamOptions {
  /** Answer here instead of echoing; the body has been read already (unless `stream` is set). */
  handler?: UpstreamHandler;
  /** Keep only body sizes, not bytes (large uploads). */
  countOnly?: boolean;
  name?: string;
}

/** Default answer: 200 with a JSON echo of what arrived. */
function echo(name: string): UpstreamHandler {
  return (req, res, body) => {
    const text = JSON.stringify({
      upstream: name,
      method: req.method,
      url: req.url,
      headers: req.headers,
      body: body.toString(),
    });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
}

export async function startUpstream(options: UpstreamOptions = {}): Promise<TestUpstream> {
  const handler = options.handler ?? echo(options.name ?? 'upstream');
  const requests: SeenRequest[] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer({ keepAliveTimeout: 30000 }, (req, res) => {
    const parts: Buffer[] = [];
    let length = 0;
    req.on('data', (chunk: Buffer) => {
      length += chunk.length;
      if (!options.countOnly) parts.push(chunk);
    });
    req.on('end', () => {
      const body = Buffer.concat(parts);
      requests.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        httpVersion: req.httpVersion,
        bodyLength: length,
        body,
      });
      handler(req, res, body);
    });
  });
  const upstream: TestUpstream = {
    port: 0,
    requests,
    connections: 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  server.on('connection', (socket: net.Socket) => {
    upstream.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  (upstream as { port: number }).port = (server.address() as net.AddressInfo).port;
  return upstream;
}

export interface RawUpstream {
  readonly port: number;
  /** Bytes received per connection, in accept order. */
  readonly received: Buffer[];
  connections: number;
  close(): Promise<void>;
}

/**
 * A TCP server whose `onData` is called with the connection's socket and all
 * bytes received so far on it; it writes whatever answer the test needs.
 */
export async function startRawUpstream(
  onData: (socket: net.Socket, received: Buffer, index: number) => void,
): Promise<RawUpstream> {
  const received: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    const index = received.length;
    received.push(Buffer.alloc(0));
    upstream.connections++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    socket.on('data', (chunk: Buffer) => {
      received[index] = Buffer.concat([received[index], chunk]);
      onData(socket, received[index], index);
    });
  });
  const upstream: RawUpstream = {
    port: 0,
    received,
    connections: 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  (upstream as { port: number }).port = (server.address() as net.AddressInfo).port;
  return upstream;
}

/** A port on 127.0.0.1 with nothing listening (bound once, then released). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
