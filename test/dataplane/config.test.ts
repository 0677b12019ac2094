// Route table behaviour seen from a client: pass_host modes, service
// inheritance, vars, config swaps while requests are in flight, pool reuse
// across versions, and graceful close.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { availableBackends } from '../helpers/backends';
import { localUpstream, snapshot, startDataPlane, type RunningDataPlane } from '../helpers/dataplane';
import { RawClient, rawRequest } from '../helpers/http-client';
import { startUpstream, type TestUpstream } from '../helpers/upstream';

function echoed(body: Buffer): { upstream: string; url: string; headers: Record<string, string> } {
  return JSON.parse(body.toString());
}

for (const backend of availableBackends()) {
  describe(`route table (${backend.name})`, () => {
    let first: TestUpstream;
    let second: TestUpstream;
    let gateway: RunningDataPlane;

    before(async () => {
      first = await startUpstream({ name: 'first' });
      second = await startUpstream({
        name: 'second',
        handler: (req, res) => {
          const delay = req.url === '/slow' ? 300 : 0;
          setTimeout(() => {
            const text = JSON.stringify({ upstream: 'second', url: req.url, headers: req.headers });
            res.writeHead(200, { 'content-length': Buffer.byteLength(text) });
            res.end(text);
          }, delay);
        },
      });
      gateway = await startDataPlane(backend, {});
    });
    after(async () => {
      await gateway.close();
      await first.close();
      await second.close();
    });

    it('sends Host per pass_host: pass, node and rewrite', async () => {
      gateway.dataPlane.applyConfig(
        snapshot({
          routes: [
            { id: 'pass', uri: '/pass', upstream: localUpstream([first.port]) },
            { id: 'node', uri: '/node', upstream: localUpstream([first.port], { pass_host: 'node' }) },
            {
              id: 'rewrite',
              uri: '/rewrite',
              upstream: localUpstream([first.port], { pass_host: 'rewrite', upstream_host: 'inner.test' }),
            },
          ],
        }),
      );
      const request = (path: string) => rawRequest(gateway.port, `GET ${path} HTTP/1.1\r\nHost: Outer.Test\r\n\r\n`);
      assert.equal(echoed((await request('/pass')).body).headers.host, 'Outer.Test');
      assert.equal(echoed((await request('/node')).body).headers.host, `127.0.0.1:${first.port}`);
      const rewritten = echoed((await request('/rewrite')).body).headers;
      assert.equal(rewritten.host, 'inner.test');
      assert.equal(rewritten['x-forwarded-host'], 'Outer.Test');
    });

    it('inherits upstream, hosts and upstream_id from the service', async () => {
      gateway.dataPlane.applyConfig(
        snapshot({
          upstreams: [{ id: 'u2', nodes: { [`127.0.0.1:${second.port}`]: 1 } }],
          services: [
            { id: 's1', hosts: ['svc.test'], upstream: localUpstream([first.port]) },
            { id: 's2', upstream_id: 'u2' },
          ],
          routes: [
            { id: 'r1', uri: '/svc', service_id: 's1' },
            { id: 'r2', uri: '/svc2', service_id: 's2' },
            { id: 'r3', uri: '/own', service_id: 's1', upstream_id: 'u2' },
          ],
        }),
      );
      const r1 = await rawRequest(gateway.port, 'GET /svc HTTP/1.1\r\nHost: svc.test\r\n\r\n');
      assert.equal(echoed(r1.body).upstream, 'first');
      const wrongHost = await rawRequest(gateway.port, 'GET /svc HTTP/1.1\r\nHost: other.test\r\n\r\n');
      assert.equal(wrongHost.status, 404);
      const r2 = await rawRequest(gateway.port, 'GET /svc2 HTTP/1.1\r\nHost: any\r\n\r\n');
      assert.equal(echoed(r2.body).upstream, 'second');
      const r3 = await rawRequest(gateway.port, 'GET /own HTTP/1.1\r\nHost: svc.test\r\n\r\n');
      assert.equal(echoed(r3.body).upstream, 'second');
    });

    it('recompiles a kept route object when its service or upstream object changes', async () => {
      // The same route objects across versions, as stores and the worker mirror hand them over:
      // compiled routes are reused, but not past a change of what they were compiled from.
      const route = { id: 'keep', uri: '/keep', service_id: 'svc' };
      const byId = { id: 'byid', uri: '/byid', upstream_id: 'u' };
      const apply = (serviceHosts: string[], upstreamPort: number): void =>
        gateway.dataPlane.applyConfig(
          snapshot({
            services: [{ id: 'svc', hosts: serviceHosts, upstream: localUpstream([first.port]) }],
            upstreams: [{ id: 'u', nodes: { [`127.0.0.1:${upstreamPort}`]: 1 } }],
            routes: [route, byId],
          }),
        );
      apply(['a.test'], first.port);
      assert.equal((await rawRequest(gateway.port, 'GET /keep HTTP/1.1\r\nHost: a.test\r\n\r\n')).status, 200);
      assert.equal(
        echoed((await rawRequest(gateway.port, 'GET /byid HTTP/1.1\r\nHost: x\r\n\r\n')).body).upstream,
        'first',
      );
      apply(['b.test'], second.port);
      assert.equal((await rawRequest(gateway.port, 'GET /keep HTTP/1.1\r\nHost: a.test\r\n\r\n')).status, 404);
      assert.equal((await rawRequest(gateway.port, 'GET /keep HTTP/1.1\r\nHost: b.test\r\n\r\n')).status, 200);
      assert.equal(
        echoed((await rawRequest(gateway.port, 'GET /byid HTTP/1.1\r\nHost: x\r\n\r\n')).body).upstream,
        'second',
      );
    });

    it('skips disabled routes and takes the first candidate whose vars match', async () => {
      gateway.dataPlane.applyConfig(
        snapshot({
          routes: [
            { id: 'off', uri: '/v', priority: 10, status: 0, upstream: localUpstream([second.port]) },
            {
              id: 'beta',
              uri: '/v',
              priority: 5,
              vars: [['http_x_beta', '==', 'yes']],
              upstream: localUpstream([second.port]),
            },
            {
              id: 'arg',
              uri: '/v',
              priority: 4,
              vars: [['arg_flag', '==', '1']],
              upstream: localUpstream([second.port]),
            },
            { id: 'default', uri: '/v', upstream: localUpstream([first.port]) },
          ],
        }),
      );
      const plain = await rawRequest(gateway.port, 'GET /v HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal(echoed(plain.body).upstream, 'first');
      const beta = await rawRequest(gateway.port, 'GET /v HTTP/1.1\r\nHost: a\r\nX-Beta: yes\r\n\r\n');
      assert.equal(echoed(beta.body).upstream, 'second');
      const arg = await rawRequest(gateway.port, 'GET /v?x=2&flag=1 HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal(echoed(arg.body).upstream, 'second');
    });

    it('keeps the old table when a config fails to compile', async () => {
      const version = gateway.dataPlane.configVersion;
      assert.throws(() =>
        gateway.dataPlane.applyConfig(
          snapshot({
            routes: [{ id: 'bad', uri: '/bad', vars: [['a', 'no-such-op', 1]], upstream: localUpstream([first.port]) }],
          }),
        ),
      );
      assert.equal(gateway.dataPlane.configVersion, version);
      const res = await rawRequest(gateway.port, 'GET /v HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal(res.status, 200);
    });

    it('finishes an in-flight request on the old table while new requests use the new one', async () => {
      const upstream = localUpstream([second.port]);
      gateway.dataPlane.applyConfig(snapshot({ routes: [{ id: 'slow', uri: '/slow', upstream }] }));
      const slow = rawRequest(gateway.port, 'GET /slow HTTP/1.1\r\nHost: a\r\n\r\n');
      await new Promise((resolve) => setTimeout(resolve, 50));
      gateway.dataPlane.applyConfig(
        snapshot({ routes: [{ id: 'new', uri: '/new', upstream: localUpstream([first.port]) }] }),
      );
      const fresh = await rawRequest(gateway.port, 'GET /new HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal(echoed(fresh.body).upstream, 'first');
      const gone = await rawRequest(gateway.port, 'GET /slow HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal(gone.status, 404);
      const old = await slow;
      assert.equal(old.status, 200);
      assert.equal(echoed(old.body).upstream, 'second');
    });

    it('keeps pooled upstream connections across versions when the upstream is unchanged', async () => {
      const upstream = localUpstream([first.port]);
      gateway.dataPlane.applyConfig(snapshot({ routes: [{ id: 'a', uri: '/a', upstream }] }));
      await rawRequest(gateway.port, 'GET /a HTTP/1.1\r\nHost: a\r\n\r\n');
      const connections = first.connections;
      gateway.dataPlane.applyConfig(
        snapshot({
          routes: [
            { id: 'a', uri: '/a', upstream },
            { id: 'b', uri: '/b', upstream },
          ],
        }),
      );
      await rawRequest(gateway.port, 'GET /b HTTP/1.1\r\nHost: a\r\n\r\n');
      assert.equal(first.connections, connections, 'the pooled connection was reused');
    });

    it('compiles 10,000 routes quickly', () => {
      const routes = Array.from({ length: 10000 }, (_, i) => ({
        id: String(i),
        uri: `/r/${i}/*`,
        hosts: [`h${i % 50}.test`],
        methods: ['GET'],
        upstream_id: 'u',
      }));
      const started = process.hrtime.bigint();
      gateway.dataPlane.applyConfig(snapshot({ upstreams: [{ id: 'u', nodes: { '127.0.0.1:1': 1 } }], routes }));
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      // Not a performance assertion: a generous bound that only catches an accidental quadratic.
      assert.ok(ms < 5000, `took ${ms} ms`);
    });
  });

  describe(`graceful close (${backend.name})`, () => {
    it('lets the in-flight request finish, closes idle connections and stops accepting', async () => {
      const upstream = await startUpstream({
        handler: (_req, res) => setTimeout(() => res.end('done'), 200),
      });
      const gateway = await startDataPlane(backend, {
        routes: [{ id: 'x', uri: '/*', upstream: localUpstream([upstream.port]) }],
      });
      try {
        const idle = await RawClient.connect(gateway.port);
        const busy = await RawClient.connect(gateway.port);
        busy.write('GET /x HTTP/1.1\r\nHost: a\r\n\r\n');
        await new Promise((resolve) => setTimeout(resolve, 50));
        const closing = gateway.close(3000);
        // Idle connections get a short grace (a request may be on its way), then close.
        await idle.waitClosed(2500);
        const res = await busy.read();
        assert.equal(res.status, 200);
        assert.equal(res.body.toString(), 'done');
        assert.equal(res.headers.connection, 'close');
        await busy.waitClosed(1000);
        await closing;
        await assert.rejects(RawClient.connect(gateway.port));
      } finally {
        await upstream.close();
      }
    });

    it('answers a request that arrives on an idle connection during the drain, then closes it', async () => {
      const upstream = await startUpstream();
      const gateway = await startDataPlane(backend, {
        routes: [{ id: 'x', uri: '/*', upstream: localUpstream([upstream.port]) }],
      });
      try {
        const fresh = await RawClient.connect(gateway.port); // accepted, no request yet
        const kept = await RawClient.connect(gateway.port); // keep-alive, between requests
        kept.write('GET /first HTTP/1.1\r\nHost: a\r\n\r\n');
        assert.equal((await kept.read()).status, 200);
        const closing = gateway.close(3000);
        await new Promise((resolve) => setTimeout(resolve, 100));
        fresh.write('GET /late-1 HTTP/1.1\r\nHost: a\r\n\r\n');
        kept.write('GET /late-2 HTTP/1.1\r\nHost: a\r\n\r\n');
        for (const client of [fresh, kept]) {
          const res = await client.read();
          assert.equal(res.status, 200);
          assert.equal(res.headers.connection, 'close');
          await client.waitClosed(1000);
        }
        await closing;
      } finally {
        await upstream.close();
      }
    });
  });
}
