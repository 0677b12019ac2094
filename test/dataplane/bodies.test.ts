// Request and response bodies through the proxy: Content-Length, chunked both
// ways, Expect: 100-continue, body limits, and responses without a body or
// delimited by the upstream closing.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { availableBackends } from '../helpers/backends';
import { localUpstream, startDataPlane, type RunningDataPlane } from '../helpers/dataplane';
import { RawClient, rawRequest } from '../helpers/http-client';
import { startRawUpstream, startUpstream, type RawUpstream, type TestUpstream } from '../helpers/upstream';

for (const backend of availableBackends()) {
  describe(`bodies (${backend.name})`, () => {
    let upstream: TestUpstream;
    let raw: RawUpstream;
    let gateway: RunningDataPlane;

    before(async () => {
      upstream = await startUpstream({
        handler: (req, res, body) => {
          if (req.url === '/chunked-out') {
            res.writeHead(200, { 'content-type': 'text/plain' });
            res.write('hello ');
            setTimeout(() => res.end('world'), 20);
            return;
          }
          if (req.url === '/no-content') {
            res.writeHead(204);
            res.end();
            return;
          }
          if (req.url === '/not-modified') {
            res.writeHead(304, { etag: '"x"' });
            res.end();
            return;
          }
          const text = JSON.stringify({
            length: body.length,
            te: req.headers['transfer-encoding'] ?? null,
            body: body.toString(),
          });
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
          res.end(req.method === 'HEAD' ? undefined : text);
        },
      });
      // Hand-written answers for framings node:http would not produce.
      raw = await startRawUpstream((socket, received) => {
        const all = received.toString('latin1');
        if (!all.endsWith('\r\n\r\n')) return;
        // The last request on this (possibly reused) connection.
        const previousEnd = all.lastIndexOf('\r\n\r\n', all.length - 5);
        const text = previousEnd < 0 ? all : all.slice(previousEnd + 4);
        if (text.startsWith('GET /close-delimited')) {
          socket.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end');
        } else if (text.startsWith('HEAD /head-length')) {
          socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n');
        } else if (text.startsWith('GET /early-hints')) {
          socket.write(
            'HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
          );
        }
      });
      gateway = await startDataPlane(
        backend,
        {
          routes: [
            { id: 'main', uri: '/*', upstream: localUpstream([upstream.port]) },
            {
              id: 'raw',
              uris: ['/close-delimited', '/head-length', '/early-hints'],
              upstream: localUpstream([raw.port]),
            },
          ],
        },
        { maxBodyBytes: 1000 },
      );
    });
    after(async () => {
      await gateway.close();
      await upstream.close();
      await raw.close();
    });

    it('forwards a Content-Length body exactly', async () => {
      const res = await rawRequest(
        gateway.port,
        'POST /post HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world',
      );
      assert.equal(res.status, 200);
      assert.deepEqual(JSON.parse(res.body.toString()), { length: 11, te: null, body: 'hello world' });
    });

    it('forwards a chunked request body raw and keeps the connection', async () => {
      const client = await RawClient.connect(gateway.port);
      client.write('POST /chunked-in HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
      await new Promise((resolve) => setTimeout(resolve, 20));
      client.write('6;ext=1\r\n world\r\n0\r\n\r\n');
      const res = await client.read();
      assert.deepEqual(JSON.parse(res.body.toString()), { length: 11, te: 'chunked', body: 'hello world' });
      client.write('GET /after HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal((await client.read()).status, 200);
      client.close();
    });

    it('streams a chunked response', async () => {
      const client = await RawClient.connect(gateway.port);
      client.write('GET /chunked-out HTTP/1.1\r\nHost: a\r\n\r\n');
      const res = await client.read();
      assert.equal(res.headers['transfer-encoding'], 'chunked');
      assert.equal(res.body.toString(), 'hello world');
      client.write('GET /chunked-out HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal((await client.read()).body.toString(), 'hello world');
      client.close();
    });

    it('answers Expect: 100-continue itself and does not forward Expect', async () => {
      const client = await RawClient.connect(gateway.port);
      client.write('POST /expect HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n');
      const deadline = Date.now() + 2000;
      while (!client.unread.toString().includes('100 Continue') && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      client.write('ping');
      const res = await client.read();
      assert.deepEqual(res.interim, [100]);
      assert.equal(JSON.parse(res.body.toString()).body, 'ping');
      assert.equal(upstream.requests.at(-1)?.headers.expect, undefined);
      client.close();
    });

    it('rejects a body over the limit by Content-Length with 413 before proxying', async () => {
      const seen = upstream.requests.length;
      const res = await rawRequest(
        gateway.port,
        'POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n',
      );
      assert.equal(res.status, 413);
      assert.deepEqual(res.interim, []);
      assert.equal(res.headers.connection, 'close');
      assert.equal(upstream.requests.length, seen);
    });

    it('rejects a chunked body once it passes the limit with 413 and closes', async () => {
      const client = await RawClient.connect(gateway.port);
      client.write('POST /big HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n');
      const chunk = `400\r\n${'x'.repeat(0x400)}\r\n`;
      client.write(chunk + chunk);
      const res = await client.read();
      assert.equal(res.status, 413);
      await client.waitClosed();
      client.close();
    });

    it('frames HEAD, 204 and 304 responses without a body', async () => {
      const client = await RawClient.connect(gateway.port);
      client.write('HEAD /head HTTP/1.1\r\nHost: a\r\n\r\n');
      const head = await client.read({ head: true });
      assert.equal(head.status, 200);
      assert.ok(Number(head.headers['content-length']) > 0);
      client.write('GET /no-content HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal((await client.read()).status, 204);
      client.write('GET /not-modified HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal((await client.read()).status, 304);
      client.write('GET /after HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal((await client.read()).status, 200);
      assert.equal(client.unread.length, 0);
      client.close();
    });

    it('passes a read-to-close response and closes the client with Connection: close', async () => {
      const client = await RawClient.connect(gateway.port);
      client.write('GET /close-delimited HTTP/1.1\r\nHost: a\r\n\r\n');
      const res = await client.read();
      assert.equal(res.status, 200);
      assert.equal(res.headers.connection, 'close');
      assert.equal(res.body.toString(), 'until the end');
      await client.waitClosed();
    });

    it('frames a HEAD answer by the request method, not its Content-Length', async () => {
      const client = await RawClient.connect(gateway.port);
      client.write('HEAD /head-length HTTP/1.1\r\nHost: a\r\n\r\n');
      const res = await client.read({ head: true });
      assert.equal(res.headers['content-length'], '100');
      client.write('GET /echo HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal((await client.read()).status, 200);
      client.close();
    });

    it('forwards 1xx interim responses before the final one', async () => {
      const res = await rawRequest(gateway.port, 'GET /early-hints HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.deepEqual(res.interim, [103]);
      assert.equal(res.body.toString(), 'ok');
    });
  });
}
