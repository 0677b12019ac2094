// `npm run bench:propagation`: how long a configuration change takes from the
// Admin API PUT until every worker routes by it, with 10,000 routes loaded,
// for the embedded store and for etcd.
//
// For each store: start `palisade start` (3 workers + the agent), load the
// routes through the Admin API, then BENCH_CHANGES times (50) PUT one route
// with a new uri and wait until every worker has applied that version (the
// control API's GET /v1/processes?version=N answers the moment the last
// worker reports it). The time is PUT start -> that answer; it includes one
// Admin GET to learn the version (the PUT answer carries none), so it is an
// upper bound by about a millisecond. Each change is then checked through the
// proxy. Prints p50/p99/max and the workers' own compile time, and writes
// bench/results/propagation-<timestamp>.json.

import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { startEtcd, type EtcdServer } from '../test/helpers/etcd';
import { killAllChildrenNow, startChild, stopAllChildren, type Child } from './lib/children';
import { freePort, waitForHttp } from './lib/net';
import { writeReport } from './lib/report';
import { positiveInt } from './lib/settings';

const ROOT = path.resolve(__dirname, '..', '..');
const ADMIN_KEY = 'bench-propagation-000000000000';

const ROUTES = positiveInt(process.env.BENCH_ROUTES, 10_000);
const CHANGES = positiveInt(process.env.BENCH_CHANGES, 50);
const WORKERS = positiveInt(process.env.BENCH_WORKERS, 3);
const LOAD_CONCURRENCY = 32;

// One keep-alive agent for the Admin and control APIs, so the timing is not connection set-up.
const agent = new http.Agent({ keepAlive: true, maxSockets: LOAD_CONCURRENCY });

/** One request; sent again once when the server had closed the reused keep-alive connection. */
async function call(url: string, method = 'GET', body?: unknown): Promise<{ status: number; body: string }> {
  try {
    return await send(url, method, body);
  } catch (err) {
    if ((err as { reused?: boolean }).reused !== true) throw err;
    return send(url, method, body);
  }
}

function send(url: string, method: string, body: unknown): Promise<{ status: number; body: string }> {
  const text = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method,
        agent,
        headers: { 'X-API-KEY': ADMIN_KEY, ...(text ? { 'content-type': 'application/json' } : {}) },
        timeout: 30_000,
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (data += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout: ${method} ${url}`)));
    req.on('error', (err) => reject(Object.assign(err, { reused: req.reusedSocket })));
    req.end(text);
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

interface StoreResult {
  store: string;
  routes: number;
  workers: number;
  loadSeconds: number;
  changes: number;
  propagationMs: { p50: number; p99: number; max: number; mean: number };
  /** The workers' compile-and-swap time for the last change, per worker. */
  workerApplyMs: number[];
  samples: number[];
}

async function startGateway(
  dir: string,
  env: Record<string, string>,
): Promise<{ child: Child; admin: string; control: string; proxy: string }> {
  fs.mkdirSync(path.join(dir, 'conf'), { recursive: true });
  const [proxyPort, adminPort, controlPort] = [await freePort(), await freePort(), await freePort()];
  const configFile = path.join(dir, 'conf', 'config.yaml');
  fs.writeFileSync(
    configFile,
    [
      'proxy:',
      `  listen: ["127.0.0.1:${proxyPort}"]`,
      `workers: ${WORKERS}`,
      'admin:',
      `  listen: 127.0.0.1:${adminPort}`,
      `  keys: [{ key: ${ADMIN_KEY}, role: admin }]`,
      'control:',
      `  listen: 127.0.0.1:${controlPort}`,
      'store:',
      '  data_dir: ./data',
      'log:',
      '  level: warn',
      '',
    ].join('\n'),
  );
  const childEnv: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('PALISADE_')) childEnv[name] = value;
  const child = startChild(
    'palisade',
    process.execPath,
    [path.join(ROOT, 'bin', 'palisade'), 'start', '-c', configFile],
    {
      env: { ...childEnv, ...env },
      cwd: dir,
    },
  );
  const admin = `http://127.0.0.1:${adminPort}/apisix/admin`;
  try {
    await waitForHttp(`${admin}/routes`, 30_000);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${child.output()}`);
  }
  return { child, admin, control: `http://127.0.0.1:${controlPort}`, proxy: `http://127.0.0.1:${proxyPort}` };
}

async function loadRoutes(admin: string, upstreamNode: string): Promise<void> {
  const up = await call(`${admin}/upstreams/bench`, 'PUT', { type: 'roundrobin', nodes: { [upstreamNode]: 1 } });
  if (up.status !== 200 && up.status !== 201) throw new Error(`PUT upstream: ${up.status} ${up.body}`);
  let next = 0;
  const writer = async (): Promise<void> => {
    while (next < ROUTES) {
      const i = next++;
      const route = { uri: `/r/${i}/*`, methods: ['GET'], upstream_id: 'bench' };
      const put = await call(`${admin}/routes/r${i}`, 'PUT', route);
      if (put.status !== 200 && put.status !== 201) throw new Error(`PUT route r${i}: ${put.status} ${put.body}`);
    }
  };
  await Promise.all(Array.from({ length: LOAD_CONCURRENCY }, () => writer()));
}

async function waitAllApplied(control: string, version: number): Promise<{ lastApplyMs: number }[]> {
  const answer = await call(`${control}/v1/processes?version=${version}&wait_ms=10000`);
  if (answer.status !== 200) throw new Error(`workers did not apply version ${version}: ${answer.body}`);
  return (JSON.parse(answer.body) as { workers: Array<{ lastApplyMs: number }> }).workers;
}

async function measure(
  store: string,
  dir: string,
  env: Record<string, string>,
  upstreamNode: string,
): Promise<StoreResult> {
  const gateway = await startGateway(dir, env);
  try {
    const loadStarted = Date.now();
    await loadRoutes(gateway.admin, upstreamNode);
    const loadSeconds = (Date.now() - loadStarted) / 1000;
    const last = await call(`${gateway.admin}/routes/r${ROUTES - 1}`);
    await waitAllApplied(gateway.control, (JSON.parse(last.body) as { modifiedIndex: number }).modifiedIndex);
    process.stdout.write(
      `${store}: ${ROUTES} routes loaded in ${loadSeconds.toFixed(1)} s; measuring ${CHANGES} changes\n`,
    );

    const samples: number[] = [];
    let workerApplyMs: number[] = [];
    for (let change = 0; change < CHANGES; change++) {
      const uri = `/changed/${change}`;
      const started = performance.now();
      const put = await call(`${gateway.admin}/routes/r0`, 'PUT', { uri, methods: ['GET'], upstream_id: 'bench' });
      if (put.status !== 200) throw new Error(`PUT change ${change}: ${put.status} ${put.body}`);
      const stored = await call(`${gateway.admin}/routes/r0`);
      const version = (JSON.parse(stored.body) as { modifiedIndex: number }).modifiedIndex;
      const workers = await waitAllApplied(gateway.control, version);
      samples.push(performance.now() - started);
      workerApplyMs = workers.map((w) => w.lastApplyMs);
      // Not timed: the proxy serves the change (any worker the kernel picks).
      const served = await call(`${gateway.proxy}${uri}`);
      if (served.status === 404) throw new Error(`change ${change} applied but ${uri} is not routed`);
    }
    const sorted = [...samples].sort((a, b) => a - b);
    const round = (ms: number): number => Math.round(ms * 10) / 10;
    return {
      store,
      routes: ROUTES,
      workers: WORKERS,
      loadSeconds,
      changes: CHANGES,
      propagationMs: {
        p50: round(percentile(sorted, 50)),
        p99: round(percentile(sorted, 99)),
        max: round(sorted[sorted.length - 1]),
        mean: round(samples.reduce((a, b) => a + b, 0) / samples.length),
      },
      workerApplyMs,
      samples: samples.map(round),
    };
  } finally {
    await stopAllChildren();
  }
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-propagation-'));
  // An upstream that exists, so the checks through the proxy are answered (the answer itself does not matter).
  const upstream = http.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const upstreamNode = `127.0.0.1:${(upstream.address() as { port: number }).port}`;
  let etcd: EtcdServer | undefined;
  const results: StoreResult[] = [];
  try {
    results.push(await measure('embedded', path.join(dir, 'embedded'), {}, upstreamNode));
    etcd = await startEtcd();
    results.push(await measure('etcd', path.join(dir, 'etcd'), { PALISADE_ETCD_HOSTS: etcd.url }, upstreamNode));
  } finally {
    killAllChildrenNow();
    await etcd?.close();
    upstream.close();
    agent.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }

  process.stdout.write(
    `\nconfig propagation, PUT -> applied by all ${WORKERS} workers, ${ROUTES} routes, ${CHANGES} changes\n`,
  );
  process.stdout.write('store      p50 ms   p99 ms   max ms   worker compile ms (last change)\n');
  for (const r of results) {
    const { p50, p99, max } = r.propagationMs;
    process.stdout.write(
      `${r.store.padEnd(10)} ${p50.toFixed(1).padStart(6)}   ${p99.toFixed(1).padStart(6)}   ${max
        .toFixed(1)
        .padStart(6)}   ${r.workerApplyMs.map((ms) => ms.toFixed(1)).join(', ')}\n`,
    );
  }
  const file = writeReport('propagation', { date: new Date().toISOString(), cpus: os.cpus().length, results });
  process.stdout.write(`\nfull report: ${file}\n`);
}

main().catch((err: unknown) => {
  killAllChildrenNow();
  process.stderr.write(`bench:propagation failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
