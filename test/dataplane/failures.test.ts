// Upstream failures and client limits: 502 when nothing answers, retries on
// the next node, 504 on a read timeout, 503/502 for missing upstreams, a stale
// pooled connection retried once, and the client head/idle timeouts.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { availableBackends } from '../helpers/backends';
import { localUpstream, startDataPlane, type RunningDataPlane } from '../helpers/dataplane';
import { RawClient, rawRequest } from '../helpers/http-client';
import { closedPort, startRawUpstream, startUpstream, type RawUpstream, type TestUpstream } from '../helpers/upstream';

for (const backend of availableBackends()) {
  describe(`upstream failures (${backend.name})`, () => {
    let good: TestUpstream;
    let silent: RawUpstream;
    let stale: RawUpstream;
    let gateway: RunningDataPlane;
    let deadPort: number;

    before(async () => {
      good = await startUpstream({ name: 'good' });
      silent = await startRawUpstream(() => {}); // reads and never answers
      // Answers the first request on each connection, then closes it silently after a moment.
      stale = await startRawUpstream((socket, received) => {
        if (!received.toString('latin1').endsWith('\r\n\r\n')) return;
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
        setTimeout(() => socket.destroy(), 30);
      });
      deadPort = await closedPort();
      gateway = await startDataPlane(
        backend,
        {
          upstreams: [{ id: 'empty', nodes: {} }],
          routes: [
            { id: 'dead', uri: '/dead', upstream: localUpstream([deadPort]) },
            {
              id: 'retry',
              uri: '/retry',
              upstream: {
                nodes: [
                  { host: '127.0.0.1', port: deadPort, weight: 1, priority: 10 },
                  { host: '127.0.0.1', port: good.port, weight: 1, priority: 0 },
                ],
              },
            },
            {
              id: 'no-retry',
              uri: '/no-retry',
              upstream: {
                retries: 0,
                nodes: [
                  { host: '127.0.0.1', port: deadPort, weight: 1, priority: 10 },
                  { host: '127.0.0.1', port: good.port, weight: 1, priority: 0 },
                ],
              },
            },
            {
              id: 'slow',
              uri: '/slow',
              upstream: localUpstream([silent.port], { timeout: { connect: 1, send: 1, read: 0.3 } }),
            },
            { id: 'stale', uri: '/stale', upstream: localUpstream([stale.port]) },
            { id: 'none', uri: '/none', plugins: {} },
            { id: 'empty', uri: '/empty', upstream_id: 'empty' },
          ],
        },
        { headTimeoutMs: 300, idleTimeoutMs: 300 },
      );
    });
    after(async () => {
      await gateway.close();
      await good.close();
      await silent.close();
      await stale.close();
    });

    it('answers 502 when the only node refuses connections', async () => {
      const client = await RawClient.connect(gateway.port);
      client.write('GET /dead HTTP/1.1\r\nHost: a\r\n\r\n');
      const res = await client.read();
      assert.equal(res.status, 502);
      assert.deepEqual(JSON.parse(res.body.toString()), { error_msg: '502 Bad Gateway' });
      client.write('GET /retry HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal((await client.read()).status, 200, 'the connection survives a 502');
      client.close();
    });

    it('retries the next node after a connect failure', async () => {
      const res = await rawRequest(gateway.port, 'POST /retry HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc');
      assert.equal(res.status, 200);
      const echoed = JSON.parse(res.body.toString());
      assert.equal(echoed.upstream, 'good');
      assert.equal(echoed.body, 'abc');
    });

    it('gives up after `retries` attempts', async () => {
      const res = await rawRequest(gateway.port, 'GET /no-retry HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal(res.status, 502);
    });

    it('answers 504 when the upstream does not answer within the read timeout', async () => {
      const started = Date.now();
      const res = await rawRequest(gateway.port, 'GET /slow HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal(res.status, 504);
      assert.deepEqual(JSON.parse(res.body.toString()), { error_msg: '504 Gateway Timeout' });
      assert.ok(Date.now() - started >= 250);
    });

    it('answers 503 for a route without an upstream and 502 for an upstream without nodes', async () => {
      const none = await rawRequest(gateway.port, 'GET /none HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal(none.status, 503);
      assert.deepEqual(JSON.parse(none.body.toString()), {
        error_msg: 'missing upstream configuration in Route or Service',
      });
      const empty = await rawRequest(gateway.port, 'GET /empty HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal(empty.status, 502);
    });

    it('retries once on a fresh connection when a pooled one was closed under it', async () => {
      const client = await RawClient.connect(gateway.port);
      client.write('GET /stale HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal((await client.read()).status, 200);
      // Reuse the pooled socket at about the moment the upstream closes it.
      for (const delay of [25, 30, 35, 60]) {
        await new Promise((resolve) => setTimeout(resolve, delay));
        client.write('GET /stale HTTP/1.1\r\nHost: a\r\n\r\n');
        const res = await client.read();
        assert.equal(res.status, 200);
        assert.equal(res.body.toString(), 'ok');
      }
      client.close();
    });
  });

  describe(`client limits (${backend.name})`, () => {
    let upstream: TestUpstream;
    let gateway: RunningDataPlane;

    before(async () => {
      upstream = await startUpstream();
      gateway = await startDataPlane(
        backend,
        { routes: [{ id: 'all', uri: '/*', upstream: localUpstream([upstream.port]) }] },
        { headTimeoutMs: 300, idleTimeoutMs: 400 },
      );
    });
    after(async () => {
      await gateway.close();
      await upstream.close();
    });

    it('answers 408 and closes when the head does not complete in time', async () => {
      const client = await RawClient.connect(gateway.port);
      client.write('GET / HTTP/1.1\r\nHost: a\r\n');
      const res = await client.read({ timeoutMs: 3000 });
      assert.equal(res.status, 408);
      assert.equal(res.headers.connection, 'close');
      await client.waitClosed();
    });

    it('closes an idle keep-alive connection without a response', async () => {
      const client = await RawClient.connect(gateway.port);
      client.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal((await client.read()).status, 200);
      const idleFrom = Date.now();
      await client.waitClosed(3000);
      assert.ok(Date.now() - idleFrom >= 300);
      assert.equal(client.unread.length, 0, 'closed silently');
    });
  });
}
