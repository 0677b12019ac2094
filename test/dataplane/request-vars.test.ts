// Unit tests without sockets: the request state keeps one hidden class, request
// variables decode lazily from the parsed head, and the upstream head is built
// from the original bytes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as v8 from 'node:v8';

import { buildUpstreamHead, rewriteResponseHead, responsePassesThrough } from '../../src/dataplane/head';
import { RequestState, type ClientEndpoint } from '../../src/dataplane/request';
import { compileRouteTable } from '../../src/dataplane/route-table';
import { requestVar } from '../../src/dataplane/vars';
import { OUT_SIZE } from '../../src/native/layout';
import { availableBackends } from '../helpers/backends';
import { localUpstream, snapshot } from '../helpers/dataplane';

v8.setFlagsFromString('--allow-natives-syntax');
const haveSameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;

const client: ClientEndpoint = {
  remoteAddress: '10.1.2.3',
  remotePort: 5555,
  localAddress: '127.0.0.1',
  localPort: 9080,
};
const NO_IP = Buffer.from([10, 1, 2, 3]);

for (const backend of availableBackends()) {
  function parse(text: string): RequestState {
    const out = new Int32Array(OUT_SIZE);
    const buf = Buffer.from(text, 'latin1');
    const n = backend.parseRequest(buf, 0, buf.length, -1, NO_IP, out);
    assert.ok(n > 0, `parse failed: ${n}`);
    return new RequestState(buf, 0, n, out, client, out[1], out[6], out[7], Date.now());
  }

  describe(`request state and vars (${backend.name})`, () => {
    it('keeps one hidden class however a request is used', () => {
      const plain = parse('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
      const used = parse('POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n');
      used.bodyRemaining = 3;
      used.responseHead = Buffer.alloc(1);
      used.tried = new Set();
      requestVar(used, 'uri');
      assert.ok(haveSameMap(plain, used));
    });

    it('decodes variables from the head on demand', () => {
      const req = parse(
        'GET /a%20b/c?x=1&flag&y=%41 HTTP/1.1\r\nHost: Example.TEST:8080\r\nX-Custom-Id: 42\r\n' +
          'Cookie: session=abc; theme=dark\r\nX-Multi: 1\r\nX-Multi: 2\r\n\r\n',
      );
      assert.equal(req.varCache, null, 'nothing decoded before the first lookup');
      assert.equal(requestVar(req, 'uri'), '/a b/c');
      assert.equal(requestVar(req, 'request_uri'), '/a b/c?x=1&flag&y=%41'); // APISIX: uri + args
      assert.equal(requestVar(req, 'real_request_uri'), '/a%20b/c?x=1&flag&y=%41');
      assert.equal(requestVar(req, 'args'), 'x=1&flag&y=%41');
      assert.equal(requestVar(req, 'arg_x'), '1');
      assert.equal(requestVar(req, 'arg_flag'), '');
      assert.equal(requestVar(req, 'arg_y'), '%41');
      assert.equal(requestVar(req, 'arg_missing'), undefined);
      assert.equal(requestVar(req, 'http_x_custom_id'), '42');
      assert.equal(requestVar(req, 'http_x_multi'), '1, 2');
      assert.equal(requestVar(req, 'http_absent'), undefined);
      assert.equal(requestVar(req, 'cookie_theme'), 'dark');
      assert.equal(requestVar(req, 'cookie_none'), undefined);
      assert.equal(requestVar(req, 'host'), 'example.test');
      assert.equal(requestVar(req, 'remote_addr'), '10.1.2.3');
      assert.equal(requestVar(req, 'remote_port'), '5555');
      assert.equal(requestVar(req, 'server_addr'), '127.0.0.1');
      assert.equal(requestVar(req, 'server_port'), '9080');
      assert.equal(requestVar(req, 'scheme'), 'http');
      assert.equal(requestVar(req, 'request_method'), 'GET');
      assert.equal(requestVar(req, 'server_protocol'), 'HTTP/1.1');
      assert.equal(requestVar(req, 'route_id'), undefined);
      assert.ok(req.varCache!.size > 0);
    });

    it('has no args without a query string and names unknown methods', () => {
      const req = parse('MKCOL /dav HTTP/1.0\r\n\r\n');
      assert.equal(requestVar(req, 'args'), undefined);
      assert.equal(requestVar(req, 'request_method'), 'MKCOL');
      assert.equal(requestVar(req, 'server_protocol'), 'HTTP/1.0');
    });

    it('builds the upstream head from the original lines', () => {
      const table = compileRouteTable(
        backend,
        snapshot({ routes: [{ id: 'r', uri: '/*', upstream: localUpstream([8081], { pass_host: 'node' }) }] }),
        undefined,
      );
      const upstream = table.routes[0].upstream!;
      const req = parse(
        'GET /p?q HTTP/1.0\r\nHost: front\r\nX-A:  spaced  \r\nConnection: keep-alive\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n',
      );
      const head = buildUpstreamHead(req, upstream, upstream.balancer.nodes[0], false).toString('latin1');
      assert.equal(
        head,
        // An HTTP/1.0 request goes upstream as HTTP/1.0, asking for keep-alive explicitly.
        'GET /p?q HTTP/1.0\r\nHost: 127.0.0.1:8081\r\nX-A:  spaced  \r\n' +
          'X-Real-IP: 10.1.2.3\r\nX-Forwarded-For: 1.1.1.1, 10.1.2.3\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: front\r\n' +
          'Connection: keep-alive\r\n\r\n',
      );
      backend.routerFree(table.router);
    });

    it('builds forwarding lines for each client address, also when addresses alternate', () => {
      const table = compileRouteTable(
        backend,
        snapshot({ routes: [{ id: 'r', uri: '/*', upstream: localUpstream([8081]) }] }),
        undefined,
      );
      const upstream = table.routes[0].upstream!;
      const text = 'GET / HTTP/1.1\r\nHost: front\r\n\r\n';
      for (const ip of ['10.0.0.1', '10.0.0.2', '10.0.0.1', '2001:db8::7']) {
        const req = parse(text);
        const head = buildUpstreamHead(
          new RequestState(req.head, 0, req.headEnd, req.out, { ...client, remoteAddress: ip }, 1, 1, req.flags, 0),
          upstream,
          upstream.balancer.nodes[0],
          false,
        ).toString('latin1');
        assert.equal(
          head,
          `GET / HTTP/1.1\r\nHost: front\r\nX-Real-IP: ${ip}\r\nX-Forwarded-For: ${ip}\r\n` +
            'X-Forwarded-Proto: http\r\nX-Forwarded-Host: front\r\n\r\n',
        );
      }
      backend.routerFree(table.router);
    });

    it('passes response heads through unless hop-by-hop headers need removing', () => {
      const out = new Int32Array(OUT_SIZE);
      const check = (text: string) => {
        const buf = Buffer.from(text, 'latin1');
        const n = backend.parseResponse(buf, 0, buf.length, 1, out);
        assert.ok(n > 0);
        return { buf, n, passes: responsePassesThrough(buf, out) };
      };
      assert.equal(check('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n').passes, true);
      assert.equal(check('HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n').passes, true);
      const closing = check(
        'HTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n',
      );
      assert.equal(closing.passes, false);
      assert.equal(
        rewriteResponseHead(closing.buf, 0, closing.n, out, true).toString('latin1'),
        'HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n',
      );
    });
  });
}
