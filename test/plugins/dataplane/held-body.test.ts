// A response body held whole for body_filter, known in length: after the
// first bytes, the upstream connection reads straight into the body's buffer
// (UpstreamConnection.readInto). These tests pin that every byte lands once
// and in order however the upstream splits its writes, that a byte past the
// body never lands in it, and that a reused upstream connection reads into its
// own buffer again, and that a large held body is freed off the proxying
// thread only once its response has left.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';

import type { PluginModule } from '../../../src/plugins/types';
import { availableBackends } from '../../helpers/backends';
import { localUpstream } from '../../helpers/dataplane';
import { RawClient } from '../../helpers/http-client';
import { startRawUpstream, startUpstream, type RawUpstream, type TestUpstream } from '../../helpers/upstream';
import { ANY_OBJECT, startPluginDataPlane, type PluginDataPlane } from './support';

const BODY = Buffer.alloc(3 * 1024 * 1024 + 123);
for (let i = 0; i < BODY.length; i++) BODY[i] = (i * 31 + (i >>> 11)) & 0xff;

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** Answers with the SHA-256 of the body and its length, so the test sees exactly what was held. */
const digest: PluginModule<Record<string, never>> = {
  name: 'test-digest',
  version: '0.1',
  priority: 900,
  schema: ANY_OBJECT,
  body_filter(_conf, _ctx, body) {
    return Buffer.from(`${body.length} ${sha256(body)}`);
  },
};

/** The last body test-keep saw, kept past its response to see what became of it. */
let keptBody: Buffer | null = null;

/** Keeps a reference to the body; sends it on unchanged, or only its length with `{ small: true }`. */
const keep: PluginModule<{ small?: boolean }> = {
  name: 'test-keep',
  version: '0.1',
  priority: 900,
  schema: ANY_OBJECT,
  body_filter(conf, _ctx, body) {
    keptBody = body;
    return conf.small === true ? Buffer.from(String(body.length)) : undefined;
  },
};

for (const backend of availableBackends()) {
  describe(`a held response body read into its own buffer (${backend.name})`, () => {
    let upstream: TestUpstream;
    let extra: RawUpstream;
    let gateway: PluginDataPlane;

    before(async () => {
      upstream = await startUpstream({
        handler: (req, res) => {
          res.writeHead(200, { 'content-length': BODY.length });
          if (req.url === '/whole') return void res.end(BODY);
          // Uneven writes, some on later turns: reads of every size, full and partial.
          let offset = 0;
          const next = (): void => {
            while (offset < BODY.length) {
              const end = Math.min(offset + 1 + ((offset * 7) % 70_000), BODY.length);
              res.write(BODY.subarray(offset, end));
              offset = end;
              if (offset % 5 === 0) return void setImmediate(next);
            }
            res.end();
          };
          next();
        },
      });
      // Sends ten bytes more than its Content-Length says, in the same write as the body's end.
      extra = await startRawUpstream((socket, received) => {
        if (!received.includes('\r\n\r\n')) return;
        socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n`);
        socket.write(Buffer.concat([BODY.subarray(0, 100_000), Buffer.from('0123456789')]));
      });
      gateway = await startPluginDataPlane(backend, [digest, keep] as unknown as ReadonlyArray<PluginModule<never>>, {
        routes: [
          { id: 'kept', uri: '/kept', plugins: { 'test-keep': {} }, upstream: localUpstream([upstream.port]) },
          {
            id: 'kept-small',
            uri: '/kept-small',
            plugins: { 'test-keep': { small: true } },
            upstream: localUpstream([upstream.port]),
          },
          { id: 'held', uri: '/*', plugins: { 'test-digest': {} }, upstream: localUpstream([upstream.port]) },
          { id: 'extra', uri: '/extra', plugins: { 'test-digest': {} }, upstream: localUpstream([extra.port]) },
        ],
      });
    });
    after(async () => {
      await gateway.close();
      await upstream.close();
      await extra.close();
    });

    it('holds every byte once and in order, over one reused upstream connection', async () => {
      const client = await RawClient.connect(gateway.port);
      for (const path of ['/uneven', '/whole', '/uneven', '/whole']) {
        client.write(`GET ${path} HTTP/1.1\r\nHost: a\r\n\r\n`);
        const res = await client.read();
        assert.equal(res.status, 200);
        assert.equal(res.body.toString(), `${BODY.length} ${sha256(BODY)}`, path);
      }
      client.close();
      assert.equal(upstream.connections, 1, 'the upstream connection was reused for every request');
    });

    it('frees a held body off this thread once its response is written, never while it is being sent', async () => {
      const client = await RawClient.connect(gateway.port);
      for (let i = 0; i < 3; i++) {
        client.write('GET /kept-small HTTP/1.1\r\nHost: a\r\n\r\n');
        const small = await client.read();
        assert.equal(small.body.toString(), String(BODY.length));
        // The 6-byte answer was written at once: the 3 MiB body went to a pool thread, detached here.
        assert.equal(keptBody?.buffer.byteLength, 0, 'the held body was released');

        // The body itself as the answer: 3 MiB that the socket cannot take at once, so it is not released
        // while queued, and every byte arrives as the upstream sent it.
        client.write('GET /kept HTTP/1.1\r\nHost: a\r\n\r\n');
        const whole = await client.read();
        assert.equal(whole.status, 200);
        assert.equal(sha256(whole.body), sha256(BODY));
      }
      client.close();
    });

    it('keeps bytes past the Content-Length out of the body and does not reuse that connection', async () => {
      const client = await RawClient.connect(gateway.port);
      for (let i = 0; i < 2; i++) {
        client.write('GET /extra HTTP/1.1\r\nHost: a\r\n\r\n');
        const res = await client.read();
        assert.equal(res.status, 200);
        assert.equal(res.body.toString(), `100000 ${sha256(BODY.subarray(0, 100_000))}`);
      }
      client.close();
      assert.equal(extra.connections, 2, 'a connection that sent too much is not reused');
    });
  });
}
