import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';

import httpLogger from '../../../src/plugins/builtin/http-logger';
import { checkPluginConf, compilePluginConf, testContext, testEnv } from '../support/test-context';

/** A self-signed certificate made with the openssl command, or null when it is not installed. */
function selfSignedCertificate(directory: string): { cert: Buffer; key: Buffer } | null {
  const keyFile = join(directory, 'key.pem');
  const certFile = join(directory, 'cert.pem');
  const made = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost'].concat([
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ]),
    { stdio: 'ignore', timeout: 20000 },
  );
  if (made.status !== 0) return null;
  return { cert: readFileSync(certFile), key: readFileSync(keyFile) };
}

interface Received {
  headers: IncomingMessage['headers'];
  body: string;
}

describe('http-logger', () => {
  let server: Server;
  let port = 0;
  const received: Received[] = [];
  let failNext = 0;

  before(async () => {
    server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        if (failNext > 0) {
          failNext--;
          response.writeHead(500).end();
          return;
        }
        received.push({ headers: request.headers, body: Buffer.concat(chunks).toString() });
        response.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('posts a batch as a JSON array with the auth header', async () => {
    received.length = 0;
    const conf = compilePluginConf(httpLogger, {
      uri: `http://127.0.0.1:${port}/logs`,
      auth_header: 'Bearer secret',
      batch_max_size: 2,
    });
    for (const id of ['1', '2']) {
      const ctx = testContext({
        uri: `/orders?id=${id}`,
        routeId: 'r1',
        headers: { host: 'shop', 'user-agent': 'ua' },
      });
      ctx.setStatus(201);
      httpLogger.log!(conf, ctx);
    }
    await conf.batches.flush();
    assert.equal(received.length, 1);
    assert.equal(received[0].headers.authorization, 'Bearer secret');
    assert.equal(received[0].headers['content-type'], 'application/json');
    const entries = JSON.parse(received[0].body) as Record<string, Record<string, unknown>>[];
    assert.equal(entries.length, 2);
    assert.equal(entries[0].request.uri, '/orders?id=1');
    assert.deepEqual(entries[0].request.querystring, { id: '1' });
    assert.equal(entries[0].request.method, 'GET');
    assert.equal((entries[0].request.headers as Record<string, string>)['user-agent'], 'ua');
    assert.equal(entries[0].response.status, 201);
    assert.equal(entries[0].route_id as unknown, 'r1');
    assert.equal(typeof entries[0].latency, 'number');
    await conf.batches.close();
  });

  it('sends the single entry as an object when batch_max_size is 1, new_line joins lines', async () => {
    received.length = 0;
    const single = compilePluginConf(httpLogger, { uri: `http://127.0.0.1:${port}/`, batch_max_size: 1 });
    httpLogger.log!(single, testContext({ uri: '/one' }));
    await single.batches.flush();
    assert.equal((JSON.parse(received[0].body) as { request: { uri: string } }).request.uri, '/one');

    received.length = 0;
    const lines = compilePluginConf(httpLogger, {
      uri: `http://127.0.0.1:${port}/`,
      concat_method: 'new_line',
      log_format: { path: '$uri', client: '$remote_addr', team: 'edge' },
    });
    httpLogger.log!(lines, testContext({ uri: '/a', remoteAddr: '10.0.0.1' }));
    httpLogger.log!(lines, testContext({ uri: '/b', remoteAddr: '10.0.0.2' }));
    await lines.batches.flush();
    assert.equal(received[0].headers['content-type'], 'text/plain');
    assert.deepEqual(
      received[0].body.split('\n').map((line) => JSON.parse(line) as unknown),
      [
        { path: '/a', client: '10.0.0.1', team: 'edge' },
        { path: '/b', client: '10.0.0.2', team: 'edge' },
      ],
    );
    await single.batches.close();
    await lines.batches.close();
  });

  it('takes log_format from plugin metadata and includes the request body when asked', async () => {
    received.length = 0;
    const conf = compilePluginConf(
      httpLogger,
      { uri: `http://127.0.0.1:${port}/`, include_req_body: true },
      testEnv({ metadata: { log_format: { host: '$host', method: '$request_method' } } }),
    );
    const ctx = testContext({ method: 'POST', headers: { host: 'api.local' }, body: '{"x":1}' });
    await httpLogger.access!(conf, ctx);
    httpLogger.log!(conf, ctx);
    await conf.batches.flush();
    assert.deepEqual(JSON.parse(received[0].body), [
      { host: 'api.local', method: 'POST', request: { body: '{"x":1}' } },
    ]);
    await conf.batches.close();
  });

  it('retries a batch the server refused, and drops it after max_retry_count', async () => {
    received.length = 0;
    failNext = 1;
    const conf = compilePluginConf(httpLogger, {
      uri: `http://127.0.0.1:${port}/`,
      max_retry_count: 1,
      retry_delay: 0,
    });
    httpLogger.log!(conf, testContext());
    await conf.batches.flush();
    assert.equal(received.length, 1);
    assert.equal(conf.batches.stats().retries, 1);

    failNext = 2;
    httpLogger.log!(conf, testContext());
    await conf.batches.flush();
    assert.equal(conf.batches.stats().dropped, 1);
    assert.equal(received.length, 1);
    await conf.batches.close();
  });

  it('counts a batch to an unreachable server as dropped', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const conf = compilePluginConf(httpLogger, { uri: `http://127.0.0.1:${closedPort}/`, timeout: 1 });
    httpLogger.log!(conf, testContext());
    await conf.batches.flush();
    assert.equal(conf.batches.stats().dropped, 1);
    await conf.batches.close();
  });

  it('posts over https: a self-signed server is accepted unless ssl_verify is set', async (t) => {
    const directory = mkdtempSync(join(tmpdir(), 'palisade-http-logger-tls-'));
    t.after(() => rmSync(directory, { recursive: true, force: true }));
    const credentials = selfSignedCertificate(directory);
    if (credentials === null) {
      t.skip('no openssl');
      return;
    }
    const bodies: string[] = [];
    const secure = createHttpsServer(credentials, (request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        bodies.push(Buffer.concat(chunks).toString());
        response.end('ok');
      });
    });
    await new Promise<void>((resolve) => secure.listen(0, '127.0.0.1', resolve));
    t.after(() => {
      secure.closeAllConnections();
      secure.close();
    });
    const uri = `https://127.0.0.1:${(secure.address() as AddressInfo).port}/logs`;

    const lenient = compilePluginConf(httpLogger, { uri, batch_max_size: 1 });
    httpLogger.log!(lenient, testContext({ uri: '/tls' }));
    await lenient.batches.flush();
    assert.equal(bodies.length, 1);
    assert.equal(lenient.batches.stats().sent, 1);
    await lenient.batches.close();

    const strict = compilePluginConf(httpLogger, { uri, batch_max_size: 1, ssl_verify: true });
    httpLogger.log!(strict, testContext({ uri: '/tls' }));
    await strict.batches.flush();
    assert.equal(strict.batches.stats().dropped, 1, 'an unverifiable certificate fails the batch');
    await strict.batches.close();
  });

  it('rejects misconfigurations', () => {
    const check = (conf: unknown) => {
      const result = checkPluginConf(httpLogger, conf);
      return result.ok ? 'ok' : result.error;
    };
    assert.equal(check({}), 'property "uri" is required');
    assert.match(check({ uri: 'not a uri' }), /property "uri" validation failed: failed to match pattern/);
    assert.match(check({ uri: 'http://x', concat_method: 'csv' }), /property "concat_method" validation failed/);
    assert.match(check({ uri: 'http://x', batch_max_size: 0 }), /property "batch_max_size" validation failed/);
    assert.match(
      check({ uri: 'http://x', include_req_body: true, include_req_body_expr: [['arg_a', 'bad-op', 1]] }),
      /^failed to validate the 'include_req_body_expr' expression: /,
    );
    assert.equal(check({ uri: 'https://log.example.com:8443/path' }), 'ok');
  });
});
