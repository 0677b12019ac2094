// What the upstream side can get wrong or limit: broken responses, resets
// mid-body, HTTP/1.0 clients, keepalive_pool limits and the send timeout.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type * as net from 'node:net';

import { availableBackends } from '../helpers/backends';
import { localUpstream, startDataPlane, type RunningDataPlane } from '../helpers/dataplane';
import { RawClient, rawRequest } from '../helpers/http-client';
import { startRawUpstream, startUpstream, type RawUpstream, type TestUpstream } from '../helpers/upstream';

/** The request line of the last complete head received on a connection. */
function lastRequestLine(received: Buffer): string | undefined {
  const text = received.toString('latin1');
  if (!text.endsWith('\r\n\r\n')) return undefined;
  const previousEnd = text.lastIndexOf('\r\n\r\n', text.length - 5);
  const head = previousEnd < 0 ? text : text.slice(previousEnd + 4);
  return head.slice(0, head.indexOf('\r\n'));
}

const answers: Record<string, (socket: net.Socket) => void> = {
  '/bad-status': (socket) => socket.write('HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n'),
  '/bad-chunk': (socket) => socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n'),
  '/reset-mid-body': (socket) => {
    socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial');
    setTimeout(() => socket.destroy(), 20);
  },
  '/close-before-answer': (socket) => socket.destroy(),
  '/stall-mid-body': (socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial'),
  '/chunked': (socket) => socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'),
};

for (const backend of availableBackends()) {
  describe(`upstream edge cases (${backend.name})`, () => {
    let raw: RawUpstream;
    let echo: TestUpstream;
    let sink: RawUpstream;
    let gateway: RunningDataPlane;

    before(async () => {
      raw = await startRawUpstream((socket, received) => {
        const line = lastRequestLine(received);
        if (line === undefined) return;
        answers[line.split(' ')[1]]?.(socket);
      });
      echo = await startUpstream({ name: 'echo' });
      // Accepts and never reads: the gateway's writes back up.
      sink = await startRawUpstream((socket) => socket.pause());
      const timeout = { connect: 1, send: 0.3, read: 0.3 };
      gateway = await startDataPlane(backend, {
        routes: [
          { id: 'raw', uris: Object.keys(answers), upstream: localUpstream([raw.port], { timeout }) },
          {
            id: 'pool',
            uri: '/pool/*',
            upstream: localUpstream([echo.port], { keepalive_pool: { size: 1, idle_timeout: 0.2, requests: 2 } }),
          },
          { id: 'echo', uri: '/echo', upstream: localUpstream([echo.port]) },
          { id: 'sink', uri: '/sink', upstream: localUpstream([sink.port], { timeout }) },
        ],
      });
    });
    after(async () => {
      await gateway.close();
      await raw.close();
      await echo.close();
      await sink.close();
    });

    it('answers 502 for an unparsable status line', async () => {
      const res = await rawRequest(gateway.port, 'GET /bad-status HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal(res.status, 502);
    });

    it('answers 502 when the upstream closes before answering', async () => {
      const res = await rawRequest(gateway.port, 'GET /close-before-answer HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal(res.status, 502);
    });

    it('closes the client when the upstream resets after the response started', async () => {
      const client = await RawClient.connect(gateway.port);
      client.write('GET /reset-mid-body HTTP/1.1\r\nHost: a\r\n\r\n');
      await client.waitClosed();
      assert.match(client.unread.toString(), /^HTTP\/1\.1 200 OK[\s\S]*partial$/);
    });

    it('closes the client on a bad chunk from the upstream', async () => {
      const client = await RawClient.connect(gateway.port);
      client.write('GET /bad-chunk HTTP/1.1\r\nHost: a\r\n\r\n');
      await client.waitClosed();
      assert.ok(!client.unread.toString().includes('zz'), 'the bad chunk line is not forwarded');
    });

    it('closes the client when the upstream stalls mid-body past the read timeout', async () => {
      const client = await RawClient.connect(gateway.port);
      client.write('GET /stall-mid-body HTTP/1.1\r\nHost: a\r\n\r\n');
      await client.waitClosed(3000);
      assert.match(client.unread.toString(), /partial$/);
    });

    it('answers 504 when the upstream stops reading the body past the send timeout', async () => {
      const client = await RawClient.connect(gateway.port);
      const size = 64 * 1024 * 1024;
      client.write(`POST /sink HTTP/1.1\r\nHost: a\r\nContent-Length: ${size}\r\n\r\n`);
      const piece = Buffer.alloc(256 * 1024);
      let sent = 0;
      const pump = async () => {
        while (sent < size && !client.isEnded) {
          sent += piece.length;
          if (!client.write(piece)) {
            await new Promise((resolve) => {
              client.socket.once('drain', resolve);
              client.socket.once('close', resolve);
            });
          }
        }
      };
      void pump();
      const res = await client.read({ timeoutMs: 5000 });
      assert.equal(res.status, 504);
      client.close();
    });

    it('speaks HTTP/1.0 upstream for an HTTP/1.0 client and closes after the answer', async () => {
      const client = await RawClient.connect(gateway.port);
      client.write('GET /echo HTTP/1.0\r\n\r\n');
      const res = await client.read();
      assert.equal(res.status, 200);
      assert.equal(res.headers.connection, 'close');
      const seen = echo.requests.at(-1)!;
      assert.equal(seen.httpVersion, '1.0');
      assert.equal(seen.headers.connection, 'keep-alive');
      assert.equal(seen.headers.host, `127.0.0.1:${echo.port}`);
      await client.waitClosed();
    });

    it('keeps an HTTP/1.0 client that asks for keep-alive', async () => {
      const client = await RawClient.connect(gateway.port);
      for (let i = 0; i < 2; i++) {
        client.write('GET /echo HTTP/1.0\r\nConnection: keep-alive\r\nHost: a\r\n\r\n');
        const res = await client.read();
        assert.equal(res.status, 200);
        assert.equal(res.headers.connection, 'keep-alive');
      }
      client.close();
    });

    it('closes an upstream connection after keepalive_pool.requests and after its idle timeout', async () => {
      const client = await RawClient.connect(gateway.port);
      const start = echo.connections;
      for (let i = 0; i < 4; i++) {
        client.write(`GET /pool/${i} HTTP/1.1\r\nHost: a\r\n\r\n`);
        assert.equal((await client.read()).status, 200);
      }
      assert.equal(echo.connections - start, 2, 'two requests per upstream connection');
      await new Promise((resolve) => setTimeout(resolve, 900));
      client.write('GET /pool/late HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal((await client.read()).status, 200);
      assert.equal(echo.connections - start, 3, 'the idle connection was closed by its idle timeout');
      client.close();
    });

    it('forwards a chunked response and keeps using the upstream connection', async () => {
      const client = await RawClient.connect(gateway.port);
      for (let i = 0; i < 3; i++) {
        client.write('GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n');
        assert.equal((await client.read()).body.toString(), 'hello');
      }
      client.close();
    });
  });
}
