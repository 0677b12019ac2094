// DirectWrites over real loopback sockets: bytes leave in order whether they
// go to the handle or through the stream, a write the kernel cannot take at
// once is reported and its completion drains, and a failed write destroys
// the socket as the stream would.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { once } from 'node:events';

import { DirectWrites, directWritesAvailable } from '../../src/dataplane/direct-write';

interface SocketPair {
  client: net.Socket;
  /** Paused until the test reads. */
  server: net.Socket;
}

/** Run `test` over a connected pair of sockets on loopback, closed afterwards however the test ends. */
async function withSocketPair(test: (pair: SocketPair) => Promise<void>): Promise<void> {
  const listener = net.createServer({ pauseOnConnect: true });
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const { port } = listener.address() as net.AddressInfo;
  const accepted = once(listener, 'connection');
  const client = net.connect(port, '127.0.0.1');
  await once(client, 'connect');
  const [server] = (await accepted) as [net.Socket];
  try {
    await test({ client, server });
  } finally {
    client.destroy();
    server.destroy();
    listener.close();
  }
}

/** Everything `socket` receives until the peer ends. */
async function readAll(socket: net.Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => parts.push(chunk));
  socket.resume();
  await once(socket, 'end');
  return Buffer.concat(parts);
}

function pattern(length: number, seed: number): Buffer {
  const bytes = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + seed) & 0xff;
  return bytes;
}

describe('direct writes', () => {
  it('are available on this Node (the hot path depends on it)', () => {
    assert.equal(directWritesAvailable, true);
  });

  it('write small buffers at once and keep their order with stream writes', () =>
    withSocketPair(async ({ client, server }) => {
      let drains = 0;
      const writes = new DirectWrites(client, () => drains++);
      assert.equal(writes.send(Buffer.from('one ')), true);
      assert.equal(writes.queued, false);
      client.write('two ');
      assert.equal(writes.send(Buffer.from('three')), true);
      client.end();
      assert.equal((await readAll(server)).toString(), 'one two three');
      assert.equal(drains, 0);
    }));

  it('report a write the kernel cannot take yet, hold it, and drain when it completes', () =>
    withSocketPair(async ({ client, server }) => {
      let drained = 0;
      const writes = new DirectWrites(client, () => drained++);
      // More than loopback's socket buffers hold while the peer does not read.
      const big = pattern(32 * 1024 * 1024, 7);
      assert.equal(writes.send(big), false, 'the kernel took part of it');
      assert.equal(writes.queued, true);
      // A direct write while one is queued queues behind it.
      const after = Buffer.from('after');
      assert.equal(writes.send(after), false);
      // The stream sees nothing of its own queued, so its write goes to the handle, behind both.
      client.write('tail');
      // Now the stream has bytes in flight: the next write goes through it.
      assert.equal(writes.send(Buffer.from('last')), true);
      client.end();
      const received = await readAll(server);
      assert.equal(received.length, big.length + 'aftertaillast'.length);
      assert.ok(received.subarray(0, big.length).equals(big), 'the large write arrived whole and first');
      assert.equal(received.subarray(big.length).toString(), 'aftertaillast');
      assert.equal(drained, 1, 'one drain once both queued writes completed');
      assert.equal(writes.queued, false);
    }));

  it('go through the stream while it has bytes queued', () =>
    withSocketPair(async ({ client, server }) => {
      const writes = new DirectWrites(client, () => {});
      client.cork();
      client.write('corked ');
      assert.equal(writes.send(Buffer.from('next')), true, 'through the stream, under its high-water mark');
      client.uncork();
      client.end();
      // A write after end() is the caller's mistake: it never throws, and what came before arrives first.
      client.on('error', () => {});
      writes.send(Buffer.from(' late'));
      assert.match((await readAll(server)).toString(), /^corked next( late)?$/);
    }));

  it('leave a reset connection destroyed with its error, never throwing', () =>
    withSocketPair(async ({ client, server }) => {
      const writes = new DirectWrites(client, () => {});
      const closed = new Promise((resolve) => client.once('close', resolve));
      const errored = new Promise<NodeJS.ErrnoException>((resolve) => client.once('error', resolve));
      server.resetAndDestroy();
      await new Promise((resolve) => setTimeout(resolve, 20));
      for (let i = 0; i < 50 && !client.destroyed; i++) {
        writes.send(pattern(64 * 1024, i));
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const err = await errored;
      // The read side may see the reset first; a failed direct write reports it the same way.
      assert.ok(['ECONNRESET', 'EPIPE'].includes(err.code ?? ''), `got ${err.code}`);
      await closed;
      assert.equal(client.destroyed, true);
    }));
});
