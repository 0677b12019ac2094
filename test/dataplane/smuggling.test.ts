// Every request the parser rejects is answered by the gateway (400, 431 or 505,
// JSON body, Connection: close) and nothing of it reaches the upstream.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { availableBackends } from '../helpers/backends';
import { localUpstream, startDataPlane, type RunningDataPlane } from '../helpers/dataplane';
import { RawClient } from '../helpers/http-client';
import { startRawUpstream, type RawUpstream } from '../helpers/upstream';

const manyHeaders = Array.from({ length: 101 }, (_, i) => `X-H${i}: v\r\n`).join('');

const cases: Array<{ name: string; request: string; status: number }> = [
  {
    name: 'Content-Length with Transfer-Encoding',
    request:
      'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n',
    status: 400,
  },
  {
    name: 'Transfer-Encoding with Content-Length',
    request: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n',
    status: 400,
  },
  {
    name: 'conflicting duplicate Content-Length',
    request: 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!',
    status: 400,
  },
  {
    name: 'bad chunk size',
    request: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
    status: 400,
  },
  { name: 'obs-fold', request: 'GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n  b\r\n\r\n', status: 400 },
  { name: 'NUL in a header value', request: 'GET / HTTP/1.1\r\nHost: a\r\nX-Nul: a\x00b\r\n\r\n', status: 400 },
  { name: 'CTL in a header value', request: 'GET / HTTP/1.1\r\nHost: a\r\nX-Ctl: a\x01b\r\n\r\n', status: 400 },
  { name: 'space before the colon', request: 'GET / HTTP/1.1\r\nHost: a\r\nX-Bad : v\r\n\r\n', status: 400 },
  {
    name: 'Transfer-Encoding not ending in chunked',
    request: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n',
    status: 400,
  },
  { name: 'HTTP/1.1 without Host', request: 'GET / HTTP/1.1\r\nX: y\r\n\r\n', status: 400 },
  { name: 'two Host headers', request: 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', status: 400 },
  {
    name: 'an over-long head',
    request: `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(40000)}\r\n\r\n`,
    status: 431,
  },
  { name: 'more than 100 headers', request: `GET / HTTP/1.1\r\nHost: a\r\n${manyHeaders}\r\n`, status: 431 },
  { name: 'HTTP/2.0 version', request: 'GET / HTTP/2.0\r\nHost: a\r\n\r\n', status: 505 },
  // The path is normalised as nginx does ($uri); what nginx refuses there is refused too.
  { name: 'a path climbing above the root', request: 'GET /a/../../etc HTTP/1.1\r\nHost: a\r\n\r\n', status: 400 },
  { name: 'an encoded one', request: 'GET /%2e%2e/etc HTTP/1.1\r\nHost: a\r\n\r\n', status: 400 },
  { name: 'a bad percent escape', request: 'GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n', status: 400 },
  { name: 'an encoded NUL', request: 'GET /a%00.txt HTTP/1.1\r\nHost: a\r\n\r\n', status: 400 },
];

for (const backend of availableBackends()) {
  describe(`request smuggling and malformed heads (${backend.name})`, () => {
    let upstream: RawUpstream;
    let gateway: RunningDataPlane;

    before(async () => {
      upstream = await startRawUpstream((socket) => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
      gateway = await startDataPlane(backend, {
        routes: [{ id: 'all', uri: '/*', upstream: localUpstream([upstream.port]) }],
      });
    });
    after(async () => {
      await gateway.close();
      await upstream.close();
    });

    for (const { name, request, status } of cases) {
      it(`rejects ${name} with ${status} and forwards nothing`, async () => {
        const client = await RawClient.connect(gateway.port);
        client.write(request);
        const res = await client.read();
        assert.equal(res.status, status);
        assert.equal(res.headers['content-type'], 'application/json');
        assert.equal(res.headers.connection, 'close');
        assert.equal(typeof JSON.parse(res.body.toString()).error_msg, 'string');
        await client.waitClosed();
        client.close();
        await new Promise((resolve) => setTimeout(resolve, 20));
        assert.equal(
          upstream.received.map((bytes) => bytes.length).reduce((a, b) => a + b, 0),
          0,
          'no byte reached the upstream',
        );
      });
    }
  });
}
