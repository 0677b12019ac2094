// Upgrades: a WebSocket handshake goes through on a fresh upstream connection,
// then frames are piped raw both ways; an upgrade the upstream refuses is an
// ordinary response followed by a close.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';

import { availableBackends } from '../helpers/backends';
import { localUpstream, startDataPlane, type RunningDataPlane } from '../helpers/dataplane';
import { rawRequest } from '../helpers/http-client';

for (const backend of availableBackends()) {
  describe(`websocket (${backend.name})`, () => {
    let server: http.Server;
    let wss: WebSocketServer;
    let gateway: RunningDataPlane;
    let upgradeHeaders: http.IncomingHttpHeaders | undefined;

    before(async () => {
      server = http.createServer((_req, res) => res.end('plain'));
      wss = new WebSocketServer({ server });
      wss.on('connection', (socket, req) => {
        upgradeHeaders = req.headers;
        socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const port = (server.address() as AddressInfo).port;
      gateway = await startDataPlane(backend, {
        routes: [
          { id: 'ws', uri: '/ws*', enable_websocket: true, upstream: localUpstream([port]) },
          { id: 'plain', uri: '/plain*', upstream: localUpstream([port]) },
        ],
      });
    });
    after(async () => {
      await gateway.close();
      for (const client of wss.clients) client.terminate();
      wss.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    it('forwards an upgrade as a plain request when the route does not enable websockets', async () => {
      upgradeHeaders = undefined;
      const res = await rawRequest(
        gateway.port,
        'GET /plain HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
          'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      );
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), 'plain');
      assert.equal(upgradeHeaders, undefined); // the upstream never saw an upgrade
    });

    it('echoes text and binary frames through an upgraded connection', async () => {
      const ws = new WebSocket(`ws://127.0.0.1:${gateway.port}/ws`);
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      const replies: string[] = [];
      const done = new Promise<void>((resolve) => {
        ws.on('message', (data) => {
          replies.push(data.toString());
          if (replies.length === 3) resolve();
        });
      });
      ws.send('hello');
      ws.send(Buffer.alloc(200000, 'b'));
      ws.send('bye');
      await done;
      assert.deepEqual([replies[0], replies[1].length, replies[2]], ['hello', 200000, 'bye']);
      assert.equal(upgradeHeaders?.upgrade, 'websocket');
      assert.equal(upgradeHeaders?.connection, 'upgrade');
      assert.equal(upgradeHeaders?.['x-real-ip'], '127.0.0.1');
      const closed = new Promise((resolve) => ws.once('close', resolve));
      ws.close();
      await closed;
    });

    it('passes a refused upgrade on as an ordinary response', async () => {
      const res = await rawRequest(
        gateway.port,
        'GET /ws-plain HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: something-else\r\n\r\n',
      );
      // ws answers an upgrade it does not speak with its own 400: passed on as an ordinary response.
      assert.equal(res.status, 400);
      assert.doesNotMatch(res.body.toString(), /error_msg/);
    });
  });
}
