// End-to-end proxying over real sockets: keep-alive on both sides, pipelining,
// forwarding headers, Host modes, hop-by-hop removal and response framing.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { availableBackends } from '../helpers/backends';
import { localUpstream, startDataPlane, type RunningDataPlane } from '../helpers/dataplane';
import { RawClient, rawRequest } from '../helpers/http-client';
import { startUpstream, type TestUpstream } from '../helpers/upstream';

for (const backend of availableBackends()) {
  describe(`proxy basics (${backend.name})`, () => {
    let upstream: TestUpstream;
    let gateway: RunningDataPlane;

    before(async () => {
      upstream = await startUpstream();
      gateway = await startDataPlane(backend, {
        routes: [{ id: 'echo', uri: '/echo*', upstream: localUpstream([upstream.port]) }],
      });
    });
    after(async () => {
      await gateway.close();
      await upstream.close();
    });

    it('forwards a GET and keeps both sides alive', async () => {
      const before = upstream.connections;
      const client = await RawClient.connect(gateway.port);
      for (let i = 0; i < 5; i++) {
        client.write(`GET /echo/${i}?a=1 HTTP/1.1\r\nHost: example.test\r\n\r\n`);
        const res = await client.read();
        assert.equal(res.status, 200);
        const echoed = JSON.parse(res.body.toString());
        assert.equal(echoed.url, `/echo/${i}?a=1`);
        assert.equal(echoed.headers.host, 'example.test');
      }
      assert.equal(client.isEnded, false);
      client.close();
      assert.equal(upstream.connections - before, 1, 'one upstream connection for five requests');
    });

    it('sends an HTTP/1.0 request upstream as HTTP/1.0, so a streamed answer is never chunked', async () => {
      const streaming = await startUpstream({
        handler: (req, res) => {
          res.write(`version=${req.httpVersion};`);
          res.end('end'); // no Content-Length: chunked for 1.1, close-delimited for 1.0
        },
      });
      const proxy = await startDataPlane(backend, {
        routes: [{ id: 's', uri: '/s', upstream: localUpstream([streaming.port]) }],
      });
      try {
        const res = await rawRequest(proxy.port, 'GET /s HTTP/1.0\r\nHost: a\r\n\r\n');
        assert.equal(res.status, 200);
        assert.equal(res.headers['transfer-encoding'], undefined);
        assert.equal(res.body.toString(), 'version=1.0;end');
      } finally {
        await proxy.close();
        await streaming.close();
      }
    });

    it('answers 404 for an unknown path and keeps the connection', async () => {
      const client = await RawClient.connect(gateway.port);
      client.write('GET /nope HTTP/1.1\r\nHost: a\r\n\r\n');
      const res = await client.read();
      assert.equal(res.status, 404);
      assert.equal(res.headers['content-type'], 'application/json');
      assert.deepEqual(JSON.parse(res.body.toString()), { error_msg: '404 Route Not Found' });
      client.write('GET /echo HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal((await client.read()).status, 200);
      client.close();
    });

    it('answers pipelined requests in order', async () => {
      const client = await RawClient.connect(gateway.port);
      let batch = '';
      for (let i = 0; i < 6; i++) {
        batch += i === 3 ? 'GET /missing HTTP/1.1\r\nHost: a\r\n\r\n' : `GET /echo/${i} HTTP/1.1\r\nHost: a\r\n\r\n`;
      }
      client.write(batch);
      for (let i = 0; i < 6; i++) {
        const res = await client.read();
        if (i === 3) {
          assert.equal(res.status, 404);
        } else {
          assert.equal(res.status, 200);
          assert.equal(JSON.parse(res.body.toString()).url, `/echo/${i}`);
        }
      }
      client.close();
    });

    it('sets X-Real-IP and X-Forwarded-* and drops hop-by-hop headers', async () => {
      const res = await rawRequest(
        gateway.port,
        'GET /echo HTTP/1.1\r\nHost: front.test:8080\r\nX-Forwarded-For: 10.0.0.1\r\nX-Real-IP: 6.6.6.6\r\n' +
          'X-Forwarded-Proto: https\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\n' +
          'Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-T\r\nProxy-Authorization: Basic x\r\n\r\n',
      );
      const headers = JSON.parse(res.body.toString()).headers;
      assert.equal(headers['x-real-ip'], '127.0.0.1');
      assert.equal(headers['x-forwarded-for'], '10.0.0.1, 127.0.0.1');
      assert.equal(headers['x-forwarded-proto'], 'http');
      assert.equal(headers['x-forwarded-host'], 'front.test:8080');
      assert.equal(headers.host, 'front.test:8080');
      for (const name of ['x-secret', 'keep-alive', 'proxy-connection', 'te', 'trailer']) {
        assert.equal(headers[name], undefined, `${name} must not reach the upstream`);
      }
      assert.equal(headers['proxy-authorization'], 'Basic x');
    });
  });
}
