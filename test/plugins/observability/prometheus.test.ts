import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { getPriority } from 'node:os';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';

import prometheus from '../../../src/plugins/builtin/prometheus';
import { startMetricsExporter } from '../../../src/plugins/lib/metrics-exporter';
import {
  DEFAULT_METRICS_PATH,
  MetricsAggregator,
  MetricsRecorder,
  readDelta,
  renderMetrics,
  SERIES_PER_SHIPMENT,
  startMetricsServer,
  startMetricsShipping,
  workerMetrics,
  type MetricsDelta,
} from '../../../src/plugins/lib/metrics';
import type { Route, Service } from '../../../src/schema/types';
import { SCHED_IDLE, processPolicies } from '../../helpers/sched';
import { emptySnapshot } from '../runtime/support';
import { checkPluginConf, compilePluginConf, testConsumer, testContext } from '../support/test-context';

/** A config version holding these routes and services (what the worker hands the recorder). */
function config(version: number, routes: Array<Partial<Route>>, services: Array<Partial<Service>> = []) {
  return { ...emptySnapshot(version), routes: routes as Route[], services: services as Service[] };
}

/** GET (or HEAD) with headers; the raw body bytes, not decoded. */
function fetchRaw(
  url: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { method, headers, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }),
      );
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end();
  });
}

const sample = {
  status: 200,
  route: '1',
  matchedUri: '/hello',
  matchedHost: '',
  service: '',
  consumer: '',
  node: '127.0.0.1',
  requestMs: 12,
  upstreamMs: 10,
  ingressBytes: 100,
  egressBytes: 300,
};

/** An aggregator holding what one worker recorded of `samples`, served on a free port. */
async function serveSamples(samples: ReadonlyArray<typeof sample>, maxAgeMs?: number) {
  const aggregator = new MetricsAggregator();
  const worker = new MetricsRecorder();
  for (const one of samples) worker.record(one);
  aggregator.apply(worker.takeDelta());
  const server = await startMetricsServer(aggregator, { port: 0, maxAgeMs });
  return { aggregator, worker, server, url: `http://127.0.0.1:${server.port}${DEFAULT_METRICS_PATH}` };
}

/** `count` samples, each on a route of its own ("0", "1", ...). */
function routeSamples(count: number): Array<typeof sample> {
  return Array.from({ length: count }, (_, route) => ({ ...sample, route: String(route) }));
}

describe('prometheus metrics', () => {
  it('records a request from the log phase with APISIX labels', () => {
    const conf = compilePluginConf(prometheus, {});
    workerMetrics().takeDelta();
    const ctx = testContext({
      routeId: 'r1',
      serviceId: 's1',
      status: 503,
      startTime: Date.now() - 20,
      vars: { upstream_addr: '10.0.0.5:8080', upstream_response_time: '0.015', request_length: 80, bytes_sent: 200 },
    });
    ctx.upstreamTimeMs = 15;
    ctx.attachConsumer(testConsumer('jack', {}));
    prometheus.log!(conf, ctx);
    const delta = workerMetrics().takeDelta();
    assert.ok(delta !== undefined);
    const decoded = readDelta(delta);
    assert.equal(decoded.length, 1);
    const [series] = decoded;
    assert.deepEqual(delta.named, [[series.id, ['r1', '', '', 's1', 'jack', '10.0.0.5']]]);
    assert.deepEqual(series.status, [503, 1]);
    assert.equal(series.ingress, 80);
    assert.equal(series.egress, 200);
    const stride = delta.buckets.length + 2;
    const latency = new Array<number>(3 * stride).fill(0);
    for (let i = 0; i < series.latency.length; i += 2) latency[series.latency[i]] = series.latency[i + 1];
    // request, upstream and apisix latency: the sum of ms is the last number of each.
    assert.equal(latency[2 * stride - 1], 15);
    assert.ok(latency[stride - 1] >= 20);
    assert.equal(
      latency.slice(0, stride - 1).reduce((sum, count) => sum + count),
      1,
    );
    assert.equal(workerMetrics().takeDelta(), undefined, 'nothing new to ship');
    assert.equal(checkPluginConf(prometheus, { prefer_name: 'yes' }).ok, false);
  });

  it('merges deltas of several workers and renders APISIX metric names and buckets', async () => {
    const workers = [new MetricsRecorder(), new MetricsRecorder()];
    workers[0].record(sample);
    workers[0].record({ ...sample, requestMs: 700, upstreamMs: undefined, status: 502, node: '' });
    workers[1].record(sample);
    const aggregator = new MetricsAggregator();
    for (const worker of workers) aggregator.apply(worker.takeDelta());
    aggregator.setEtcdReachable(true);
    aggregator.setUpstreamStatus('/apisix/upstreams/1', '127.0.0.1', 1980, true);
    const text = await renderMetrics(aggregator);

    assert.match(text, /^# TYPE apisix_http_status counter$/m);
    assert.match(
      text,
      /^apisix_http_status\{code="200",route="1",matched_uri="\/hello",matched_host="",service="",consumer="",node="127.0.0.1"\} 2$/m,
    );
    assert.match(text, /^apisix_http_status\{code="502",.*\} 1$/m);
    assert.match(text, /^# TYPE apisix_http_latency histogram$/m);
    assert.match(
      text,
      /^apisix_http_latency_bucket\{type="request",route="1",service="",consumer="",node="127.0.0.1",le="20"\} 2$/m,
    );
    assert.match(
      text,
      /^apisix_http_latency_bucket\{type="request",route="1",service="",consumer="",node="127.0.0.1",le="10"\} 0$/m,
    );
    assert.match(text, /^apisix_http_latency_bucket\{type="request",.*node="",le="1000"\} 1$/m);
    assert.match(text, /^apisix_http_latency_bucket\{type="request",.*node="",le="500"\} 0$/m);
    assert.match(text, /^apisix_http_latency_bucket\{.*le="60000"\} \d+$/m);
    assert.match(text, /^apisix_http_latency_bucket\{.*le="\+Inf"\} \d+$/m);
    assert.match(text, /^apisix_http_latency_sum\{type="upstream",route="1",.*node="127.0.0.1"\} 20$/m);
    assert.match(text, /^apisix_http_latency_count\{type="upstream",route="1",.*node="127.0.0.1"\} 2$/m);
    assert.match(text, /^apisix_bandwidth\{type="egress",route="1",service="",consumer="",node="127.0.0.1"\} 600$/m);
    assert.match(text, /^apisix_bandwidth\{type="ingress",route="1",.*node="127.0.0.1"\} 200$/m);
    assert.match(text, /^apisix_etcd_reachable 1$/m);
    assert.match(text, /^apisix_upstream_status\{name="\/apisix\/upstreams\/1",ip="127.0.0.1",port="1980"\} 1$/m);
    assert.match(text, /^apisix_http_requests_total 3$/m);
    assert.match(text, /^apisix_node_info\{hostname=".+"\} 1$/m);
  });

  it('serves the text over HTTP on its own port, rendering once per change', async () => {
    const { aggregator, worker, server, url } = await serveSamples([sample], 0);
    try {
      const first = await fetch(url);
      assert.equal(first.status, 200);
      assert.match(first.headers.get('content-type') ?? '', /^text\/plain; version=0.0.4/);
      assert.match(await first.text(), /apisix_http_status\{code="200"/);
      await (await fetch(url)).text();
      assert.equal(server.renders, 1, 'an unchanged aggregate is served from the cache');

      worker.record({ ...sample, status: 404 });
      aggregator.apply(worker.takeDelta());
      const scrapes = await Promise.all([fetch(url), fetch(url), fetch(url)]);
      for (const scrape of scrapes) assert.match(await scrape.text(), /apisix_http_status\{code="404"/);
      assert.equal(server.renders, 2, 'concurrent scrapes share one rendering');

      const missing = await fetch(`http://127.0.0.1:${server.port}/other`);
      assert.equal(missing.status, 404);
      await missing.text();
    } finally {
      await server.close();
    }
  });

  it('serves one rendering for refresh_interval, with its Age and ETag, then renders the new counts', async () => {
    const { aggregator, worker, server, url } = await serveSamples([sample], 1500);
    try {
      const status200 = /^apisix_http_status\{code="200",route="1",.*\} (\d+)$/m;
      const first = await fetchRaw(url);
      assert.equal(first.body.toString().match(status200)?.[1], '1');
      assert.equal(first.headers.age, '0');
      assert.match(String(first.headers.etag), /^W\/"[0-9a-z]+-1"$/);

      // Counted after the rendering: the next scrapes within refresh_interval still get the first counts.
      worker.record(sample);
      aggregator.apply(worker.takeDelta());
      const cached = await fetchRaw(url, { 'Accept-Encoding': 'gzip' });
      assert.equal(gunzipSync(cached.body).toString().match(status200)?.[1], '1');
      assert.equal(cached.headers.etag, first.headers.etag, 'the gzipped body of the same rendering');
      await new Promise((resolve) => setTimeout(resolve, 1100));
      const older = await fetchRaw(url);
      assert.equal(older.headers.age, '1');
      assert.equal(older.body.toString().match(status200)?.[1], '1');
      assert.equal(server.renders, 1);

      await new Promise((resolve) => setTimeout(resolve, 500));
      const fresh = await fetchRaw(url);
      assert.equal(fresh.body.toString().match(status200)?.[1], '2');
      assert.equal(fresh.headers.age, '0');
      assert.match(String(fresh.headers.etag), /^W\/"[0-9a-z]+-2"$/);
      assert.equal(server.renders, 2);
    } finally {
      await server.close();
    }
  });

  it('ships only what changed, periodically and once more when stopped', async () => {
    workerMetrics().takeDelta();
    const shipped: number[] = [];
    const stop = startMetricsShipping((delta) => shipped.push(readDelta(delta).length), 20);
    workerMetrics().record(sample);
    await new Promise((resolve) => setTimeout(resolve, 80));
    assert.deepEqual(shipped, [1], 'one shipment; idle intervals send nothing');
    workerMetrics().record({ ...sample, route: '2' });
    workerMetrics().record({ ...sample, route: '3' });
    stop();
    assert.deepEqual(shipped, [1, 2]);
  });

  it('labels an IPv6 upstream node without brackets and port, and uses names with prefer_name', () => {
    workerMetrics().takeDelta();
    const conf = compilePluginConf(prometheus, { prefer_name: true });
    const ctx = testContext({ routeId: 'r9', vars: { upstream_addr: '[::1]:8080', route_name: 'orders' } });
    prometheus.log!(conf, ctx);
    prometheus.log!(conf, testContext({ routeId: 'r10', vars: { upstream_addr: '10.1.1.1:80' } }));
    const delta = workerMetrics().takeDelta()!;
    assert.deepEqual(
      delta.named.map(([, labels]) => [labels[0], labels[5]]),
      [
        ['orders', '::1'],
        ['r10', '10.1.1.1'],
      ],
    );
  });

  it('renders 10,000 routes', async () => {
    const aggregator = new MetricsAggregator();
    const worker = new MetricsRecorder();
    for (const one of routeSamples(10_000)) worker.record(one);
    aggregator.apply(worker.takeDelta());
    assert.equal(aggregator.seriesCount, 10_000);
    const text = await renderMetrics(aggregator);
    assert.match(text, /apisix_http_status\{code="200",route="9999"/);
  });

  it('copies unchanged routes from the last rendering into text equal to a fresh rendering', async () => {
    const worker = new MetricsRecorder();
    for (const one of routeSamples(200)) worker.record(one);
    const deltas = [worker.takeDelta()!];
    const incremental = new MetricsAggregator();
    incremental.apply(deltas[0]);
    await renderMetrics(incremental);
    for (const round of [1, 2, 3]) {
      // Some routes change (a new status code, other latencies), the rest are copied.
      for (let route = round; route < 200; route += 7) {
        worker.record({ ...sample, route: String(route), status: 500 + round, requestMs: 100 * round });
      }
      const delta = worker.takeDelta()!;
      deltas.push(delta);
      incremental.apply(delta);
      const fresh = new MetricsAggregator();
      for (const each of deltas) fresh.apply(each);
      const text = await renderMetrics(incremental);
      assert.match(text, new RegExp(`^apisix_http_status\\{code="50${round}",route="${round}",`, 'm'));
      assert.equal(text, await renderMetrics(fresh), `round ${round}`);
    }
  });

  it('keeps the text a slow scraper reads while newer renderings are made', async () => {
    // About 18 MB of text: more than the loopback socket buffers hold, so the server is still reading it.
    const { aggregator, worker, server, url } = await serveSamples(routeSamples(3000), 0);
    try {
      const expected = (await fetchRaw(url)).body;
      const slow = await new Promise<IncomingMessage>((resolve, reject) => {
        httpRequest(url, { agent: false }, resolve).on('error', reject).end();
      });
      slow.pause();
      for (const status of [501, 502]) {
        worker.record({ ...sample, route: '0', status });
        aggregator.apply(worker.takeDelta());
        assert.match((await fetchRaw(url)).body.toString(), new RegExp(`code="${status}"`));
      }
      const chunks: Buffer[] = [];
      slow.on('data', (chunk: Buffer) => chunks.push(chunk));
      slow.resume();
      await once(slow, 'end');
      assert.equal(server.renders, 3);
      assert.ok(Buffer.concat(chunks).equals(expected), 'the slow scraper got the text as it was rendered');
    } finally {
      await server.close();
    }
  });

  it('labels matched_uri and matched_host with the route pattern that matched, from the configuration', () => {
    const recorder = workerMetrics();
    recorder.takeDelta();
    recorder.useConfig(
      config(
        7,
        [
          { id: 'one', uri: '/orders/*', host: 'api.example.com' },
          { id: 'many', uris: ['/a', '/b/*'], hosts: ['x.example.com', '*.example.org'], service_id: 'svc' },
          { id: 'named', name: 'checkout', uri: '/pay', service_id: 'svc' },
        ],
        [{ id: 'svc', name: 'payments' }],
      ),
    );
    const conf = compilePluginConf(prometheus, {});
    prometheus.log!(conf, testContext({ routeId: 'one', uri: '/orders/42' }));
    prometheus.log!(
      conf,
      testContext({ routeId: 'many', serviceId: 'svc', uri: '/b/c?x=1', vars: { host: 'shop.example.org' } }),
    );
    prometheus.log!(
      conf,
      testContext({ routeId: 'many', serviceId: 'svc', uri: '/a', vars: { host: 'x.example.com' } }),
    );
    const named = compilePluginConf(prometheus, { prefer_name: true });
    prometheus.log!(named, testContext({ routeId: 'named', serviceId: 'svc', uri: '/pay' }));
    const labels = recorder.takeDelta()!.named.map(([, set]) => set.slice(0, 4));
    assert.deepEqual(labels, [
      ['one', '/orders/*', 'api.example.com', ''],
      ['many', '/b/*', '*.example.org', 'svc'],
      ['many', '/a', 'x.example.com', 'svc'],
      ['checkout', '/pay', '', 'payments'],
    ]);

    // A new config version: labels are resolved again (a renamed route is counted under its new name).
    recorder.useConfig(config(8, [{ id: 'named', name: 'checkout-v2', uri: '/pay', service_id: 'svc' }]));
    prometheus.log!(named, testContext({ routeId: 'named', serviceId: 'svc', uri: '/pay' }));
    assert.deepEqual(recorder.takeDelta()!.named[0][1].slice(0, 4), ['checkout-v2', '/pay', '', 'svc']);
    recorder.useConfig(config(9, []));
  });

  it('names a series once; counts of an id the aggregator never saw are dropped until the worker names it again', async () => {
    const worker = new MetricsRecorder();
    worker.record(sample);
    const first = worker.takeDelta()!;
    assert.equal(first.named.length, 1);
    worker.record(sample);
    const second = worker.takeDelta()!;
    assert.equal(second.named.length, 0, 'the label set went out with the first shipment');

    // A restarted agent: it missed the first shipment, so it cannot place the second.
    const restarted = new MetricsAggregator();
    restarted.apply(second);
    assert.equal(restarted.seriesCount, 0);
    assert.equal(restarted.unnamedShipments, 1);
    worker.renameAll();
    worker.record(sample);
    restarted.apply(worker.takeDelta());
    assert.match(await renderMetrics(restarted), /^apisix_http_status\{code="200",route="1",.*\} 1$/m);

    // Ids are per source: another worker's id 1 is another series.
    const other = new MetricsRecorder();
    other.record({ ...sample, route: '2' });
    const fromOther: MetricsDelta = { ...other.takeDelta()!, source: first.source + 1 };
    restarted.apply(fromOther);
    assert.equal(restarted.seriesCount, 2);
  });

  it('ships a busy worker in slices of at most SERIES_PER_SHIPMENT series, on separate turns', async () => {
    const recorder = workerMetrics();
    recorder.takeDelta();
    const shipped: number[] = [];
    const aggregator = new MetricsAggregator();
    const stop = startMetricsShipping((delta) => {
      shipped.push(readDelta(delta).length);
      aggregator.apply(delta);
    }, 20);
    const routes = 2 * SERIES_PER_SHIPMENT + 500;
    for (let route = 0; route < routes; route++) recorder.record({ ...sample, route: `slice-${route}` });
    await new Promise((resolve) => setTimeout(resolve, 100));
    stop();
    assert.deepEqual(shipped, [SERIES_PER_SHIPMENT, SERIES_PER_SHIPMENT, 500]);
    assert.equal(aggregator.seriesCount, routes);
    assert.match(await renderMetrics(aggregator), /^apisix_http_requests_total 2500$/m);
  });

  it('shows etcd_reachable only once set, and drops upstream_status nodes that are gone', async () => {
    const aggregator = new MetricsAggregator();
    assert.doesNotMatch(await renderMetrics(aggregator), /etcd_reachable/);
    aggregator.setEtcdReachable(false);
    assert.match(await renderMetrics(aggregator), /^apisix_etcd_reachable 0$/m);

    aggregator.replaceUpstreamStatus([
      { name: '/apisix/upstreams/1', ip: '10.0.0.1', port: 80, healthy: true },
      { name: '/apisix/upstreams/2', ip: '10.0.0.2', port: 80, healthy: false },
    ]);
    let text = await renderMetrics(aggregator);
    assert.match(text, /^apisix_upstream_status\{name="\/apisix\/upstreams\/2",ip="10.0.0.2",port="80"\} 0$/m);
    aggregator.replaceUpstreamStatus([{ name: '/apisix/upstreams/1', ip: '10.0.0.1', port: 80, healthy: true }]);
    text = await renderMetrics(aggregator);
    assert.match(text, /^apisix_upstream_status\{name="\/apisix\/upstreams\/1",ip="10.0.0.1",port="80"\} 1$/m);
    assert.doesNotMatch(text, /upstreams\/2/);
  });

  it('gzips the exposition only when the scraper asks, and answers HEAD without a body', async () => {
    const { server, url } = await serveSamples(routeSamples(300));
    try {
      const plain = await fetchRaw(url);
      assert.equal(plain.status, 200);
      assert.equal(plain.headers['content-encoding'], undefined);
      assert.equal(Number(plain.headers['content-length']), plain.body.length);
      assert.ok(plain.body.length > 256 * 1024, 'more than one chunk streamed');
      assert.match(plain.body.toString(), /apisix_http_status\{code="200",route="299"/);

      const zipped = await fetchRaw(url, { 'Accept-Encoding': 'gzip, deflate' });
      assert.equal(zipped.headers['content-encoding'], 'gzip');
      assert.ok(zipped.body.length * 10 < plain.body.length);
      assert.deepEqual(gunzipSync(zipped.body), plain.body);

      const head = await fetchRaw(url, {}, 'HEAD');
      assert.equal(head.status, 200);
      assert.equal(head.body.length, 0);
      assert.equal(server.renders, 1, 'one rendering served all three');
    } finally {
      await server.close();
    }
  });

  it('the exporter process serves the merged deltas under SCHED_IDLE at nice 19 and exits when closed', async () => {
    const exporter = startMetricsExporter({
      host: '127.0.0.1',
      port: 0,
      path: '/metrics',
      prefix: 'palisade_',
      refreshIntervalMs: 1,
    });
    try {
      const port = await exporter.listening;
      assert.equal(getPriority(exporter.pid!), 19);
      if (process.platform === 'linux') {
        assert.deepEqual(new Set(processPolicies(exporter.pid!).values()), new Set([SCHED_IDLE]), 'every thread');
      }
      const worker = new MetricsRecorder();
      worker.record(sample);
      exporter.apply(worker.takeDelta()!);
      exporter.setGauges({ upstreams: [{ name: '/apisix/routes/1', ip: '127.0.0.1', port: 1980, healthy: true }] });
      let text = '';
      for (let attempt = 0; attempt < 50 && !/palisade_http_status\{/.test(text); attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        text = (await fetchRaw(`http://127.0.0.1:${port}/metrics`)).body.toString();
      }
      assert.match(text, /^palisade_http_status\{code="200",route="1",.*\} 1$/m);
      assert.match(text, /^palisade_upstream_status\{name="\/apisix\/routes\/1",ip="127.0.0.1",port="1980"\} 1$/m);
      assert.doesNotMatch(text, /etcd_reachable/);
    } finally {
      await exporter.close();
    }
    assert.throws(() => process.kill(exporter.pid!, 0), 'the exporter process is gone');
  });
});
