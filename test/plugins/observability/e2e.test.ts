// The observability plugins end to end: a DataPlane with the built-in plugins
// as the loader finds them, a real HTTP log receiver, a real log file, a
// kafka-logger pointed at a closed port, and the prometheus metrics of the
// proxied requests merged as the agent does and scraped over HTTP.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { request as undiciRequest } from 'undici';

import { DataPlane } from '../../../src/dataplane/server';
import { loadBackend } from '../../../src/native';
import { RegistryCatalog } from '../../../src/plugins/catalog';
import { droppedEntriesTotal } from '../../../src/plugins/lib/batch-processor';
import { MetricsAggregator, startMetricsServer, workerMetrics } from '../../../src/plugins/lib/metrics';
import { PluginLoader } from '../../../src/plugins/loader';
import type { Route } from '../../../src/schema/types';
import type { ConfigSnapshot } from '../../../src/store/types';
import { startAdmin, type Harness } from '../../admin/harness';
import { localUpstream } from '../../helpers/dataplane';
import { startUpstream, type TestUpstream } from '../../helpers/upstream';

async function call(
  port: number,
  path: string,
  options: { method?: string; body?: string; headers?: Record<string, string> } = {},
) {
  const response = await undiciRequest(`http://127.0.0.1:${port}${path}`, {
    method: (options.method ?? 'GET') as 'GET',
    body: options.body,
    headers: options.headers,
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });
  return { status: response.statusCode, text: await response.body.text() };
}

async function eventually(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function closedPort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('observability plugins over real sockets', () => {
  let upstream: TestUpstream;
  let receiver: Server;
  let receiverPort = 0;
  const logBatches: { authorization: string | undefined; body: unknown }[] = [];
  const directory = mkdtempSync(join(tmpdir(), 'palisade-observability-'));
  const logFile = join(directory, 'access.log');
  let dataPlane: DataPlane;
  let port = 0;

  before(async () => {
    upstream = await startUpstream();
    receiver = createServer((request, response) => {
      const parts: Buffer[] = [];
      request.on('data', (chunk: Buffer) => parts.push(chunk));
      request.on('end', () => {
        logBatches.push({
          authorization: request.headers.authorization,
          body: JSON.parse(Buffer.concat(parts).toString()) as unknown,
        });
        response.end('ok');
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    receiverPort = (receiver.address() as AddressInfo).port;
    const kafkaPort = await closedPort();

    const route = (id: string, uri: string, plugins: Record<string, unknown>): Route =>
      ({ id, uri, plugins, upstream: localUpstream([upstream.port]) }) as Route;
    const loader = new PluginLoader();
    loader.load();
    dataPlane = new DataPlane(loadBackend('js'), {
      listen: [{ host: '127.0.0.1', port: 0 }],
      plugins: { registry: loader.registry },
    });
    const snapshot: ConfigSnapshot = {
      version: 1,
      routes: [
        route('http-log', '/http-log', {
          'http-logger': {
            uri: `http://127.0.0.1:${receiverPort}/logs`,
            auth_header: 'Bearer t0ken',
            batch_max_size: 2,
            include_req_body: true,
          },
        }),
        route('file-log', '/file-log', { 'file-logger': { path: logFile, batch_max_size: 1 } }),
        route('kafka-log', '/kafka-log', {
          'kafka-logger': {
            brokers: [{ host: '127.0.0.1', port: kafkaPort }],
            kafka_topic: 'access',
            batch_max_size: 1,
            timeout: 1,
          },
        }),
        route('metrics', '/metrics-route', { prometheus: {} }),
      ],
      services: [],
      upstreams: [],
      consumers: [],
      consumer_groups: [],
      global_rules: [],
      plugin_configs: [],
      plugin_metadata: [{ id: 'file-logger', log_format: { uri: '$uri', status: '$status', addr: '$remote_addr' } }],
      ssls: [],
    } as ConfigSnapshot;
    dataPlane.applyConfig(snapshot);
    [{ port }] = await dataPlane.listen();
  });

  after(async () => {
    await dataPlane.close(1000);
    await upstream.close();
    receiver.closeAllConnections();
    await new Promise((resolve) => receiver.close(resolve));
    rmSync(directory, { recursive: true, force: true });
  });

  it('http-logger: a batch of two full log entries reaches the receiver with the auth header', async () => {
    logBatches.length = 0;
    assert.equal((await call(port, '/http-log?n=1', { method: 'POST', body: 'first' })).status, 200);
    assert.equal((await call(port, '/http-log?n=2')).status, 200);
    await eventually(() => logBatches.length === 1);
    assert.equal(logBatches[0].authorization, 'Bearer t0ken');
    const entries = logBatches[0].body as Record<string, Record<string, unknown>>[];
    assert.equal(entries.length, 2);
    assert.equal(entries[0].request.method, 'POST');
    assert.equal(entries[0].request.uri, '/http-log?n=1');
    assert.equal(entries[0].request.body, 'first');
    assert.equal(entries[0].response.status, 200);
    assert.equal(entries[0].route_id as unknown, 'http-log');
    assert.equal(entries[0].upstream as unknown, `127.0.0.1:${upstream.port}`);
    assert.equal(entries[1].request.uri, '/http-log?n=2');
  });

  it('file-logger: one line per request in the metadata log_format', async () => {
    await call(port, '/file-log');
    await call(port, '/file-log?x=1');
    await eventually(() => {
      try {
        return readFileSync(logFile, 'utf8').split('\n').length === 3;
      } catch {
        return false;
      }
    });
    const lines = readFileSync(logFile, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as unknown);
    assert.deepEqual(lines, [
      { uri: '/file-log', status: '200', addr: '127.0.0.1' },
      { uri: '/file-log', status: '200', addr: '127.0.0.1' },
    ]);
  });

  it('kafka-logger: requests are answered while the broker is unreachable; the entries are dropped and counted', async () => {
    const before = droppedEntriesTotal();
    const started = Date.now();
    for (let i = 0; i < 3; i++) assert.equal((await call(port, '/kafka-log')).status, 200);
    assert.ok(Date.now() - started < 1000, 'logging never holds a request');
    await eventually(() => droppedEntriesTotal() - before === 3);
  });

  it('prometheus: the proxied requests, merged as the agent merges them, scraped over HTTP', async () => {
    workerMetrics().takeDelta();
    for (let i = 0; i < 3; i++) await call(port, '/metrics-route');
    await call(port, '/metrics-route?x=1');
    const aggregator = new MetricsAggregator();
    await eventually(() => {
      aggregator.apply(workerMetrics().takeDelta());
      return aggregator.seriesCount > 0;
    });
    const server = await startMetricsServer(aggregator, { port: 0 });
    try {
      const scrape = await call(server.port, '/apisix/prometheus/metrics');
      assert.equal(scrape.status, 200);
      assert.match(
        scrape.text,
        new RegExp(`^apisix_http_status\\{code="200",route="metrics",.*node="127.0.0.1"\\} 4$`, 'm'),
      );
      assert.match(scrape.text, /^apisix_http_latency_count\{type="request",route="metrics",.*\} 4$/m);
      assert.match(scrape.text, /^apisix_bandwidth\{type="egress",route="metrics",.*\} [1-9]\d*$/m);
      assert.match(scrape.text, /^apisix_bandwidth\{type="ingress",route="metrics",.*\} [1-9]\d*$/m);
    } finally {
      await server.close();
    }
  });
});

describe('misconfigured observability plugins through the Admin API', () => {
  let admin: Harness;
  const upstreamConf = { type: 'roundrobin', nodes: { '127.0.0.1:1980': 1 } };
  before(async () => {
    const loader = new PluginLoader();
    loader.load();
    admin = await startAdmin({ plugins: new RegistryCatalog(() => loader.registry) });
  });
  after(() => admin.close());

  it('accepts valid configurations and refuses invalid ones with APISIX error bodies', async () => {
    for (const plugins of [
      { prometheus: { prefer_name: true } },
      { 'http-logger': { uri: 'http://127.0.0.1:1980/log', concat_method: 'new_line' } },
      { 'file-logger': { path: '/tmp/palisade-access.log' } },
      { 'kafka-logger': { brokers: [{ host: '127.0.0.1', port: 9092 }], kafka_topic: 't', required_acks: -1 } },
    ]) {
      const reply = await admin.call('PUT', '/routes/1', { uri: '/x', plugins, upstream: upstreamConf });
      assert.ok(reply.status === 200 || reply.status === 201, `${JSON.stringify(plugins)}: ${reply.text}`);
    }
    const cases: [string, unknown, string][] = [
      [
        'prometheus',
        { prefer_name: 1 },
        'property "prefer_name" validation failed: wrong type: expected boolean, got number',
      ],
      ['http-logger', {}, 'property "uri" is required'],
      [
        'http-logger',
        { uri: 'http://x', timeout: 0 },
        'property "timeout" validation failed: expected 0 to be at least 1',
      ],
      ['file-logger', {}, 'property "path" is required'],
      [
        'kafka-logger',
        { brokers: [{ host: 'h', port: 9092 }], kafka_topic: 't', batch_max_size: 0 },
        'property "batch_max_size" validation failed: expected 0 to be at least 1',
      ],
    ];
    for (const [name, conf, error] of cases) {
      const reply = await admin.call('PUT', '/routes/1', {
        uri: '/x',
        plugins: { [name]: conf },
        upstream: upstreamConf,
      });
      assert.equal(reply.status, 400, `${name}: ${reply.text}`);
      assert.deepEqual(reply.json, { error_msg: `failed to check the configuration of plugin ${name} err: ${error}` });
    }
  });
});
