import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import prometheus from '../../../src/plugins/builtin/prometheus';
import {
  DEFAULT_METRICS_PATH,
  MetricsAggregator,
  MetricsRecorder,
  readDelta,
  renderMetrics,
  startMetricsServer,
  startMetricsShipping,
  workerMetrics,
} from '../../../src/plugins/lib/metrics';
import { checkPluginConf, compilePluginConf, testConsumer, testContext } from '../support/test-context';

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
    const aggregator = new MetricsAggregator();
    const worker = new MetricsRecorder();
    worker.record(sample);
    aggregator.apply(worker.takeDelta());
    const server = await startMetricsServer(aggregator, { port: 0, maxAgeMs: 0 });
    try {
      const url = `http://127.0.0.1:${server.port}${DEFAULT_METRICS_PATH}`;
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
    for (let route = 0; route < 10_000; route++) worker.record({ ...sample, route: String(route) });
    aggregator.apply(worker.takeDelta());
    assert.equal(aggregator.seriesCount, 10_000);
    const text = await renderMetrics(aggregator);
    assert.match(text, /apisix_http_status\{code="200",route="9999"/);
  });
});
