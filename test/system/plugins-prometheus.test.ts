// The prometheus plugin through the real CLI with 2 workers: each worker ships
// what it counted to the agent (through the primary), and the agent serves the
// merged counts on plugin_attr.prometheus's address. The counts scraped there
// add up to the requests sent, whichever worker served them; the etcd gauge
// reads 1 when etcd is the store, and is not 1 with the embedded store.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { startEtcd, type EtcdServer } from '../helpers/etcd';
import {
  adminHeaders,
  cleanup,
  freePort,
  makeHome,
  readStatus,
  request,
  startGateway,
  startUpstream,
  stopGateway,
  waitFor,
  type GatewayHome,
} from './harness';

const WORKERS = 2;
const ADMIN_KEY = 'prometheus-system-admin-key-1';
const METRICS_PATH = '/apisix/prometheus/metrics';

let etcd: EtcdServer | undefined;

after(async () => {
  await cleanup();
  await etcd?.close();
});

/** The listener on `port`; refresh_interval short, as these tests poll until new counts show (the default is 15 s). */
function prometheusConfig(port: number, extra: string[] = []): string[] {
  return [
    'plugin_attr:',
    '  prometheus:',
    '    export_addr:',
    '      ip: 127.0.0.1',
    `      port: ${port}`,
    '    refresh_interval: 200ms',
    ...extra,
  ];
}

/** The sum of the samples of `metric` whose labels contain every one of `labels` (`name="value"`). */
function sumSamples(text: string, metric: string, labels: string[]): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${metric}{`)) continue;
    const close = line.lastIndexOf('}');
    const labelText = line.slice(metric.length + 1, close);
    if (labels.every((label) => labelText.includes(label))) sum += Number(line.slice(close + 1).trim());
  }
  return sum;
}

/** startGateway returns once one worker listens; wait for all of them and the agent. */
async function allWorkersListening(home: GatewayHome, workers = WORKERS): Promise<void> {
  await waitFor('every worker and the agent to be ready', 30_000, () => {
    const status = readStatus(home);
    return status !== undefined && status.workers.length === workers && status.agent?.ready === true ? true : undefined;
  });
}

/** PUT route `id` on `uri` with the prometheus plugin and wait until every worker serves it; returns the 200s it took. */
async function putMeteredRoute(home: GatewayHome, id: string, uri: string, upstreamPort: number): Promise<number> {
  const put = await request(`${home.adminUrl}/routes/${id}`, {
    method: 'PUT',
    headers: adminHeaders(ADMIN_KEY),
    body: {
      uri,
      plugins: { prometheus: {} },
      upstream: { type: 'roundrobin', nodes: { [`127.0.0.1:${upstreamPort}`]: 1 } },
    },
  });
  assert.ok(put.status === 200 || put.status === 201, put.body);
  let sent = 0;
  await waitFor(`${uri} to be served`, 10_000, async () => {
    const results = await Promise.all(Array.from({ length: 8 }, () => request(`${home.proxyUrl}${uri}`)));
    // Only routed requests are counted: a worker that has not applied the route yet answers 404 itself.
    sent += results.filter((r) => r.status === 200).length;
    return results.every((r) => r.status === 200) ? true : undefined;
  });
  return sent;
}

/** Send `count` requests on fresh connections, a few at a time, so both workers take some. */
async function sendRequests(url: string, count: number, expectStatus: number): Promise<void> {
  for (let done = 0; done < count; done += 10) {
    const batch = Math.min(10, count - done);
    const results = await Promise.all(Array.from({ length: batch }, () => request(url)));
    for (const result of results) assert.equal(result.status, expectStatus, result.body);
  }
}

async function scrape(port: number, path = METRICS_PATH): Promise<string> {
  const response = await request(`http://127.0.0.1:${port}${path}`);
  assert.equal(response.status, 200, response.body);
  assert.match(String(response.headers['content-type']), /^text\/plain/);
  return response.body;
}

describe('prometheus through the agent (system)', { timeout: 120_000 }, () => {
  test('counts from both workers add up on the metrics port; a port in use is logged and traffic goes on', async (t) => {
    const metricsPort = await freePort();
    const home = await makeHome({ workers: WORKERS, adminKey: ADMIN_KEY, extra: prometheusConfig(metricsPort) });
    const upstream = await startUpstream();
    t.after(() => upstream.close());
    const gateway = await startGateway(home);
    try {
      await allWorkersListening(home);
      const sentOk = (await putMeteredRoute(home, '1', '/metered', upstream.port)) + 60;
      await sendRequests(`${home.proxyUrl}/metered`, 60, 200);

      // Shipments go out about once a second: the total shows up within a few.
      let text = '';
      await waitFor('the scraped 200s to match the requests sent', 20_000, async () => {
        text = await scrape(metricsPort);
        return sumSamples(text, 'apisix_http_status', ['code="200"', 'route="1"']) === sentOk ? true : undefined;
      }).catch((err: unknown) => {
        throw new Error(`${(err as Error).message}\n--- scraped\n${text}`);
      });
      assert.match(text, /^# TYPE apisix_http_status counter$/m);
      assert.match(
        text,
        /^apisix_http_status\{code="200",route="1",matched_uri="\/metered",matched_host="",service="",/m,
      );
      assert.equal(sumSamples(text, 'apisix_http_latency_count', ['type="request"', 'route="1"']), sentOk);
      // APISIX's three latency types: the upstream's share comes from $upstream_response_time.
      assert.equal(sumSamples(text, 'apisix_http_latency_count', ['type="upstream"', 'route="1"']), sentOk);
      assert.equal(sumSamples(text, 'apisix_http_latency_count', ['type="apisix"', 'route="1"']), sentOk);
      assert.ok(sumSamples(text, 'apisix_bandwidth', ['type="egress"', 'route="1"']) > 0);
      assert.ok(sumSamples(text, 'apisix_bandwidth', ['type="ingress"', 'route="1"']) > 0);
      // No etcd, no config server to reach: the gauge is not shown (APISIX shows it only with etcd).
      assert.doesNotMatch(text, /etcd_reachable/);
      // An actively checked upstream shows as healthy, named as APISIX names it.
      const checked = await request(`${home.adminUrl}/routes/hc`, {
        method: 'PUT',
        headers: adminHeaders(ADMIN_KEY),
        body: {
          uri: '/checked',
          upstream: {
            type: 'roundrobin',
            nodes: { [`127.0.0.1:${upstream.port}`]: 1 },
            checks: { active: { http_path: '/', healthy: { interval: 1 }, unhealthy: { interval: 1 } } },
          },
        },
      });
      assert.ok(checked.status < 300, checked.body);
      const healthyLine = `apisix_upstream_status{name="/apisix/routes/hc",ip="127.0.0.1",port="${upstream.port}"} 1`;
      await waitFor('the upstream health gauge', 20_000, async () =>
        (await scrape(metricsPort)).split('\n').includes(healthyLine) ? true : undefined,
      );
      // Only the configured path is served.
      assert.equal((await request(`http://127.0.0.1:${metricsPort}/metrics`)).status, 404);

      // A second gateway configured on the same (taken) metrics port logs it and serves traffic anyway.
      const second = await makeHome({ workers: 1, adminKey: ADMIN_KEY, extra: prometheusConfig(metricsPort) });
      const secondGateway = await startGateway(second);
      try {
        await putMeteredRoute(second, '1', '/metered', upstream.port);
        await waitFor('the port-in-use line', 10_000, () =>
          /prometheus metrics listener failed to start/.test(secondGateway.stdout() + secondGateway.stderr())
            ? true
            : undefined,
        );
        // The first gateway still owns the port and its counts are not mixed with the second's.
        const after = await scrape(metricsPort);
        assert.equal(sumSamples(after, 'apisix_http_status', ['code="200"', 'route="1"']), sentOk);
      } finally {
        await stopGateway(secondGateway);
      }
    } finally {
      await stopGateway(gateway);
    }
  });

  test('metric_prefix and export_uri from plugin_attr.prometheus; enable_export_server false frees the port', async (t) => {
    const metricsPort = await freePort();
    const home = await makeHome({
      workers: WORKERS,
      adminKey: ADMIN_KEY,
      extra: prometheusConfig(metricsPort, ['    export_uri: /metrics', '    metric_prefix: palisade_']),
    });
    const upstream = await startUpstream();
    t.after(() => upstream.close());
    const gateway = await startGateway(home);
    try {
      await allWorkersListening(home);
      const sent = (await putMeteredRoute(home, 'r7', '/prefixed', upstream.port)) + 20;
      await sendRequests(`${home.proxyUrl}/prefixed`, 20, 200);
      await waitFor('the prefixed counts', 20_000, async () => {
        const text = await scrape(metricsPort, '/metrics');
        return sumSamples(text, 'palisade_http_status', ['code="200"', 'route="r7"']) === sent ? true : undefined;
      });
      const text = await scrape(metricsPort, '/metrics');
      assert.doesNotMatch(text, /^apisix_/m);
      assert.equal((await request(`http://127.0.0.1:${metricsPort}${METRICS_PATH}`)).status, 404);
    } finally {
      await stopGateway(gateway);
    }

    const off = await makeHome({
      workers: 1,
      adminKey: ADMIN_KEY,
      extra: prometheusConfig(metricsPort, ['    enable_export_server: false']),
    });
    const offGateway = await startGateway(off);
    try {
      await allWorkersListening(off, 1);
      await assert.rejects(
        () => request(`http://127.0.0.1:${metricsPort}${METRICS_PATH}`, { timeoutMs: 1000 }),
        /ECONNREFUSED/,
      );
    } finally {
      await stopGateway(offGateway);
    }
  });

  test('apisix_etcd_reachable is 1 when etcd is the store', async () => {
    etcd = await startEtcd();
    const metricsPort = await freePort();
    const home = await makeHome({ workers: WORKERS, adminKey: ADMIN_KEY, extra: prometheusConfig(metricsPort) });
    const gateway = await startGateway(home, {
      env: { PALISADE_ETCD_HOSTS: etcd.url, PALISADE_ETCD_PREFIX: `/palisade-prometheus-${process.pid}` },
    });
    try {
      await allWorkersListening(home);
      await waitFor('apisix_etcd_reachable 1', 15_000, async () =>
        /^apisix_etcd_reachable 1$/m.test(await scrape(metricsPort)) ? true : undefined,
      );
    } finally {
      await stopGateway(gateway);
    }
  });
});
