// The data plane reads client sockets into one shared buffer and upstream
// sockets into per-connection buffers (net onread). These tests pin the cases
// where bytes outlive the read that delivered them: they must be copied (or
// the connection must switch buffers) before the next read overwrites them.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as net from 'node:net';
import { adoptsAcceptedSockets } from '../../src/dataplane/server';
import { availableBackends } from '../helpers/backends';
import { localUpstream, startDataPlane, type RunningDataPlane } from '../helpers/dataplane';
import { RawClient } from '../helpers/http-client';
import { startUpstream, type TestUpstream } from '../helpers/upstream';

const BIG = Buffer.alloc(8 * 1024 * 1024);
for (let i = 0; i < BIG.length; i++) BIG[i] = (i * 7 + (i >>> 13)) & 0xff;
const BIG_SHA = createHash('sha256').update(BIG).digest('hex');

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

for (const backend of availableBackends()) {
  describe(`read buffers (${backend.name})`, () => {
    let upstream: TestUpstream;
    let proxy: RunningDataPlane;

    before(async () => {
      upstream = await startUpstream({
        handler: (req, res, body) => {
          if (req.url === '/big') {
            res.writeHead(200, { 'content-length': BIG.length });
            res.end(BIG);
            return;
          }
          if (req.url === '/drip') {
            // Many small writes: each reaches the proxy as its own small read, so a
            // queued client write (under the high-water mark) is followed by more reads.
            res.writeHead(200, { 'content-length': BIG.length });
            let offset = 0;
            const next = (): void => {
              while (offset < BIG.length) {
                const end = Math.min(offset + 1000, BIG.length);
                const more = res.write(BIG.subarray(offset, end));
                offset = end;
                if (!more) {
                  res.once('drain', next);
                  return;
                }
                if (offset % 50000 < 1000) {
                  setImmediate(next);
                  return;
                }
              }
              res.end();
            };
            next();
            return;
          }
          const text = `${req.method} ${req.url} ${req.headers['x-tag'] ?? ''} ${body.length}`;
          res.writeHead(200, { 'content-length': Buffer.byteLength(text) });
          res.end(text);
        },
      });
      proxy = await startDataPlane(backend, {
        routes: [{ id: '1', uri: '/*', upstream: localUpstream([upstream.port]) }],
      });
    });

    after(async () => {
      await proxy.close();
      await upstream.close();
    });

    it('adopts accepted sockets into the shared read buffer', async () => {
      const client = await RawClient.connect(proxy.port);
      client.write('GET /a HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.equal((await client.read()).status, 200);
      client.close();
      assert.equal(adoptsAcceptedSockets, true);
    });

    it('keeps a partial head intact while other clients read into the shared buffer', async () => {
      const a = await RawClient.connect(proxy.port);
      const b = await RawClient.connect(proxy.port);
      a.write('GET /from-a HTTP/1.1\r\nHost: x\r\nX-Ta');
      await sleep(30);
      b.write(
        'GET /from-b-with-a-longer-path-to-overwrite-more HTTP/1.1\r\nHost: y\r\nX-Tag: bbbbbbbbbbbbbbbb\r\n\r\n',
      );
      assert.equal(
        (await b.read()).body.toString(),
        'GET /from-b-with-a-longer-path-to-overwrite-more bbbbbbbbbbbbbbbb 0',
      );
      a.write('g: aaa\r\n\r\n');
      assert.equal((await a.read()).body.toString(), 'GET /from-a aaa 0');
      a.close();
      b.close();
    });

    it('keeps pipelined requests and body bytes intact across interleaved clients', async () => {
      const a = await RawClient.connect(proxy.port);
      const b = await RawClient.connect(proxy.port);
      // a: a whole request plus the start of a POST body; the rest arrives after b's traffic.
      a.write('GET /one HTTP/1.1\r\nHost: x\r\n\r\nPOST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234');
      b.write('GET /zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz HTTP/1.1\r\nHost: y\r\n\r\n');
      assert.equal((await a.read()).body.toString(), 'GET /one  0');
      assert.equal((await b.read()).status, 200);
      a.write('56789');
      assert.equal((await a.read()).body.toString(), 'POST /two  10');
      assert.equal(upstream.requests.at(-1)?.body.toString(), '0123456789');
      a.close();
      b.close();
    });

    for (const path of ['/big', '/drip'])
      it(`delivers a large response intact to a client that reads slowly (${path})`, async () => {
        // The client's socket buffer fills, writes queue up in the proxy, and the
        // upstream connection must move on to new read buffers instead of
        // overwriting queued bytes.
        const socket = net.connect(proxy.port, '127.0.0.1');
        await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
        socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
        socket.pause();
        await sleep(300);
        const chunks: Buffer[] = [];
        socket.on('data', (chunk: Buffer) => chunks.push(chunk));
        socket.resume();
        const whole = await new Promise<Buffer>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('timed out')), 10000);
          const check = (): void => {
            const data = Buffer.concat(chunks);
            const headEnd = data.indexOf('\r\n\r\n');
            if (headEnd >= 0 && data.length - headEnd - 4 >= BIG.length) {
              clearTimeout(timer);
              resolve(data.subarray(headEnd + 4, headEnd + 4 + BIG.length));
            }
          };
          socket.on('data', check);
        });
        socket.destroy();
        assert.equal(createHash('sha256').update(whole).digest('hex'), BIG_SHA);
      });
  });
}
