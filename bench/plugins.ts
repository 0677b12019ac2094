// `npm run bench:plugins`: what plugins cost, Palisade started through the
// real CLI with one worker in front of the same nginx upstream as bench:quick.
//   a. throughput: wrk -t1 -c50 on nginx proxy_pass, a bare Palisade route
//      and a risk-control route (key-auth + limit-count local + prometheus),
//      interleaved rounds, medians, ratios vs nginx;
//   b. offload: open-loop latency of the bare route at a fixed rate, alone
//      and while another client fetches a gzip-compressed 1 MiB body at
//      BENCH_GZIP_RATE (compressed on the worker-thread pool; the body from a
//      second nginx, so the bare route's upstream is not the one busy sending
//      it). Each round also measures the bare route alone a second time, the
//      A/A control that shows how far two runs of the same thing differ on
//      this machine, and the same paced load through two controls on the
//      proxying thread (bench/custom-plugins/body-filter.ts): the body held
//      and cut to the size gzip makes of it, what reading it costs with no
//      compression, and gzip there, what the pool spares the other routes.
//      The side clients and that nginx stand in for other hosts: they run
//      under SCHED_IDLE (BENCH_SIDE_IDLE=0: normal priority);
//   c. scrape impact: 10,000 prometheus routes (PUT over keep-alive Admin API
//      connections, timed until served), traffic over all of them, open-loop
//      latency without and with a scrape of the agent's metrics listener every
//      second, the two swapping order each round; merged histograms and the
//      median of per-round ratios. The exporter renders at most once per
//      refresh_interval (BENCH_REFRESH_SECONDS, default 15 as in the gateway),
//      and each round measures that long (BENCH_SCRAPE_SECONDS), so a scraped
//      round holds a rendering as in steady scraping; BENCH_REFRESH_SECONDS=1
//      renders for every scrape.
//      The scraper stands in for a Prometheus on another host: a process of
//      its own under SCHED_IDLE (BENCH_SIDE_IDLE=0: normal priority).
// Latency figures come from bench/lib/openloop (its own process, from the
// intended start time, µs histograms merged across rounds).
//
// BENCH_PARTS=a,c runs only the parts named (default a,b,c); a part not run is
// absent from the printed tables and the JSON report. b and c offer a share of
// the bare route's wrk maximum from a; without a, one wrk calibration run of the
// bare route gives it (BENCH_RATE skips both). Example of a short run of c alone:
//   BENCH_PARTS=c BENCH_ROUTES=300 BENCH_RATE=200 BENCH_LATENCY_ROUNDS=2 BENCH_REFRESH_SECONDS=2 npm run bench:plugins

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { killAllChildrenNow, stopAllChildren } from './lib/children';
import { freePort, getCounted, waitForHttp } from './lib/net';
import { startNginxProxy, startNginxUpstream } from './lib/nginx';
import { mergeHistograms, runOpenLoop, type LatencySummary, type OpenLoopResult } from './lib/openloop';
import { adminPut, adminPutAll, startPalisade, type AdminWrite, type PalisadeTarget } from './lib/palisade';
import { BENCH_API_KEY, BENCH_CONSUMER, RISK_ROUTE, SINGLE_PLUGIN_ROUTES } from './lib/plugin-routes';
import { startScraper } from './lib/scraper';
import { runWrk, type WrkResult } from './lib/wrk';
import { fmt, machineInfo, median, writeReport } from './lib/report';
import { positiveInt } from './lib/settings';

const ROOT = path.resolve(__dirname, '..', '..');
const ROUNDS = positiveInt(process.env.BENCH_ROUNDS, 5);
const ROUND_SECONDS = positiveInt(process.env.BENCH_SECONDS, 4);
const LATENCY_ROUNDS = positiveInt(process.env.BENCH_LATENCY_ROUNDS, 3);
const LATENCY_SECONDS = positiveInt(process.env.BENCH_LATENCY_SECONDS, 6);
const LATENCY_WARMUP_SECONDS = 2;
/** plugin_attr.prometheus.refresh_interval of the gateway under test, in seconds (the gateway's default). */
const REFRESH_SECONDS = positiveInt(process.env.BENCH_REFRESH_SECONDS, 15);
/** Measured seconds of each round of c: one refresh_interval, so a scraped round holds one rendering. */
const SCRAPE_ROUND_SECONDS = positiveInt(process.env.BENCH_SCRAPE_SECONDS, REFRESH_SECONDS);
const ROUTES = positiveInt(process.env.BENCH_ROUTES, 10_000);
const CONNECTIONS = 50;
const OPEN_LOOP_CONNECTIONS = 32;
/** BENCH_SPIN=0: the generator sleeps on 1 ms timers instead of polling (less CPU taken from the gateway, less precise). */
const SPIN = process.env.BENCH_SPIN !== '0';
// The fixed offered rate for b and c, as a share of the bare route's wrk maximum (BENCH_RATE overrides it).
// 10%, not 30%: the JS generator spends more CPU per request than wrk, and on a 2-core machine
// generator + gateway + upstream saturate near 30% (the queue grows and every figure is queueing).
const RATE_SHARE = Number(process.env.BENCH_RATE_SHARE) > 0 ? Number(process.env.BENCH_RATE_SHARE) : 0.1;
const FIXED_RATE = positiveInt(process.env.BENCH_RATE, 0);
/**
 * Side load runs under SCHED_IDLE: b's gzip clients and the nginx sending them 1 MiB, c's scraper. They stand in
 * for clients and servers on other hosts; on this 2-core machine, at normal priority, their own CPU (receiving,
 * sending) would be taken from the gateway and counted as its cost. BENCH_SIDE_IDLE=0: normal priority.
 */
const SIDE_IDLE = process.env.BENCH_SIDE_IDLE !== '0';
/** Requests per second of the paced gzip client in b (each compresses 1 MiB). */
const GZIP_PACED_RATE = positiveInt(process.env.BENCH_GZIP_RATE, 20);
/** BENCH_PLUGIN_BREAKDOWN=1 adds one throughput row per plugin of the risk-control route (about a minute more). */
const PLUGIN_BREAKDOWN = process.env.BENCH_PLUGIN_BREAKDOWN === '1';
// Whole-run guard: every child is killed when it fires.
const RUN_LIMIT_MS = 15 * 60_000;
/** Keep-alive connections that load part c's routes through the Admin API (the store records one write at a time). */
const LOAD_CONNECTIONS = 8;

const ALL_PARTS = ['a', 'b', 'c'] as const;
type BenchPart = (typeof ALL_PARTS)[number];

/** BENCH_PARTS ("a,c"): the parts to run, all when unset; an unknown name is an error, not silently nothing. */
function benchParts(text: string | undefined): Set<BenchPart> {
  const names = (text ?? '')
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter((name) => name !== '');
  if (names.length === 0) return new Set(ALL_PARTS);
  for (const name of names) {
    if (!(ALL_PARTS as readonly string[]).includes(name)) {
      throw new Error(`BENCH_PARTS: unknown part '${name}' (use a comma-separated list of a, b, c)`);
    }
  }
  return new Set(names as BenchPart[]);
}

function ms(us: number): string {
  return `${fmt(us / 1000, 3)} ms`;
}

async function waitForStatus(url: string, headers: Record<string, string>, status: number): Promise<void> {
  const deadline = Date.now() + 15_000;
  let last = 0;
  while (Date.now() < deadline) {
    last = (await getCounted(url, headers).catch(() => ({ status: 0 }))).status;
    if (last === status) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url} answered ${last}, not ${status}, within 15 s`);
}

/**
 * /dev/shm when it is there, for the gateway's data dir: the embedded store fsyncs each Admin API write (file and
 * directory), so part c's 10,000 PUTs would time the disk, not the gateway; nothing measured here touches that dir.
 */
function memoryBackedTempDir(): string {
  try {
    fs.accessSync('/dev/shm', fs.constants.W_OK);
    return '/dev/shm';
  } catch {
    return os.tmpdir();
  }
}

function ensurePackages(): void {
  execFileSync('bash', [path.join(ROOT, 'scripts', 'ensure-packages.sh'), 'nginx-light', 'wrk'], { stdio: 'inherit' });
}

interface ThroughputRow {
  name: string;
  url: string;
  medianRequestsPerSecond: number;
  vsNginx: number;
  errors: number;
  rounds: WrkResult[];
}

/** Part a's routes: the consumer, the risk-control route and, with BENCH_PLUGIN_BREAKDOWN=1, one route per plugin. */
async function addRiskRoutes(gateway: PalisadeTarget, upstream: object): Promise<void> {
  await adminPut(gateway, 'consumers', BENCH_CONSUMER);
  await adminPut(gateway, 'routes/risk', { uri: RISK_ROUTE.uri, plugins: RISK_ROUTE.plugins, upstream });
  if (PLUGIN_BREAKDOWN) {
    for (const route of SINGLE_PLUGIN_ROUTES) {
      await adminPut(gateway, `routes/only-${route.name}`, { uri: route.uri, plugins: route.plugins, upstream });
    }
    await waitForStatus(`http://127.0.0.1:${gateway.proxyPort}/only/prometheus`, {}, 200);
  }
  await waitForStatus(`http://127.0.0.1:${gateway.proxyPort}/risk`, { apikey: BENCH_API_KEY }, 200);
}

/** The custom plugin directory holding bench-body-filter (bench/custom-plugins, compiled). */
const CUSTOM_PLUGIN_DIR = path.join(__dirname, 'custom-plugins');

/**
 * Part b's routes for the 1 MiB body: gzip on the pool (/bytes-1m), and bench-body-filter's two controls on the
 * proxying thread, gzip (/bytes-1m-inline) and only the first bytes (/bytes-1m-held); each is checked.
 */
async function addBodyRoutes(gateway: PalisadeTarget, upstream: object): Promise<void> {
  const routes: [string, object, string][] = [
    ['/bytes-1m', { gzip: { types: '*', comp_level: 1 } }, 'gzip'],
    ['/bytes-1m-inline', { 'bench-body-filter': { mode: 'gzip' } }, 'gzip'],
    ['/bytes-1m-held', { 'bench-body-filter': { mode: 'first-bytes' } }, ''],
  ];
  for (const [uri, plugins] of routes) {
    const rewrite = uri === '/bytes-1m' ? {} : { 'proxy-rewrite': { uri: '/bytes-1m' } };
    await adminPut(gateway, `routes/body${uri.replace(/\//g, '-')}`, {
      uri,
      plugins: { ...plugins, ...rewrite },
      upstream,
    });
  }
  for (const [uri, , encoding] of routes) {
    const url = `http://127.0.0.1:${gateway.proxyPort}${uri}`;
    await waitForStatus(url, {}, 200);
    const check = await getCounted(url, { 'Accept-Encoding': 'gzip' });
    if (check.status !== 200 || check.encoding !== encoding) {
      throw new Error(`${uri}: status ${check.status}, content-encoding '${check.encoding}'`);
    }
    console.log(`${uri}: 1 MiB -> ${fmt(check.bytes / 1024, 1)} KiB${encoding === '' ? '' : ` ${encoding}`}`);
  }
}

/**
 * The fixed offered rate of b and c: BENCH_RATE, or RATE_SHARE of the bare route's median wrk req/s from a; when a
 * is not run, from one wrk run of the bare route after a warm-up.
 */
async function offeredRate(
  bareRequestsPerSecond: number | undefined,
  palisadePort: number,
): Promise<{ rate: number; source: string }> {
  if (FIXED_RATE > 0) return { rate: FIXED_RATE, source: 'BENCH_RATE' };
  let maximum = bareRequestsPerSecond;
  let source = 'part a, bare route';
  if (maximum === undefined) {
    const url = `http://127.0.0.1:${palisadePort}/hello`;
    console.log(`\nrate calibration (part a not run): wrk -t1 -c${CONNECTIONS} on the bare route, ${ROUND_SECONDS} s`);
    await runWrk(url, { threads: 1, connections: CONNECTIONS, seconds: 2 });
    maximum = (await runWrk(url, { threads: 1, connections: CONNECTIONS, seconds: ROUND_SECONDS })).requestsPerSecond;
    source = 'calibration run, bare route';
    console.log(`  bare route ${fmt(maximum)} req/s`);
  }
  return { rate: Math.max(100, Math.round((maximum * RATE_SHARE) / 100) * 100), source };
}

interface ThroughputTarget {
  name: string;
  url: string;
  headers: string[];
  rounds: WrkResult[];
}

async function benchThroughput(nginxPort: number, palisadePort: number): Promise<ThroughputTarget[]> {
  const targets: ThroughputTarget[] = [
    { name: 'nginx proxy_pass', url: `http://127.0.0.1:${nginxPort}/hello`, headers: [], rounds: [] },
    { name: 'palisade bare route', url: `http://127.0.0.1:${palisadePort}/hello`, headers: [], rounds: [] },
    {
      name: 'palisade key-auth + limit-count + prometheus',
      url: `http://127.0.0.1:${palisadePort}/risk`,
      headers: [`apikey: ${BENCH_API_KEY}`],
      rounds: [],
    },
  ];
  if (PLUGIN_BREAKDOWN) {
    for (const route of SINGLE_PLUGIN_ROUTES) {
      targets.push({
        name: `palisade ${route.name} only`,
        url: `http://127.0.0.1:${palisadePort}${route.uri}`,
        headers: [`apikey: ${BENCH_API_KEY}`],
        rounds: [],
      });
    }
  }
  console.log(`\na. throughput: wrk -t1 -c${CONNECTIONS}, ${ROUNDS} interleaved rounds of ${ROUND_SECONDS}s`);
  for (const target of targets) {
    await runWrk(target.url, { threads: 1, connections: CONNECTIONS, seconds: 2, headers: target.headers });
  }
  for (let round = 1; round <= ROUNDS; round++) {
    for (const target of targets) {
      const result = await runWrk(target.url, {
        threads: 1,
        connections: CONNECTIONS,
        seconds: ROUND_SECONDS,
        headers: target.headers,
      });
      target.rounds.push(result);
      const errors = result.non2xx + result.socketErrors;
      console.log(
        `  round ${round} ${target.name.padEnd(46)} ${fmt(result.requestsPerSecond).padStart(8)} req/s` +
          (errors > 0 ? `  (${errors} errors)` : ''),
      );
    }
  }
  return targets;
}

interface LatencyCondition {
  name: string;
  rounds: OpenLoopResult[];
  merged?: LatencySummary;
  mergedUncorrected?: LatencySummary;
  /** Side load figures per round (gzip req/s, scrape ms), when there is one. */
  side: number[];
}

function mergeCondition(condition: LatencyCondition): void {
  condition.merged = mergeHistograms(condition.rounds.map((r) => r.correctedHistogram));
  condition.mergedUncorrected = mergeHistograms(condition.rounds.map((r) => r.uncorrectedHistogram));
}

function printLatency(condition: LatencyCondition): void {
  const m = condition.merged as LatencySummary;
  const u = condition.mergedUncorrected as LatencySummary;
  const errors = condition.rounds.reduce((sum, r) => sum + r.non2xx + r.socketErrors, 0);
  const achieved = median(condition.rounds.map((r) => r.achievedRate));
  const lag = Math.max(...condition.rounds.map((r) => r.schedulerLag.p99Us));
  console.log(
    `| ${condition.name} | ${fmt(achieved)} | ${ms(m.p50Us)} | ${ms(m.p90Us)} | ${ms(m.p99Us)} | ${ms(m.p999Us)} | ` +
      `${ms(m.p9999Us)} | ${ms(m.maxUs)} | ${ms(u.p99Us)} | ${ms(lag)} | ${m.count} | ${errors} |`,
  );
}

const LATENCY_HEADER =
  '| condition | achieved req/s | p50 | p90 | p99 | p99.9 | p99.99 | max | p99 uncorrected | generator lag p99 | samples | errors |\n' +
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |';

function logRound(label: string, result: OpenLoopResult, side: string): void {
  console.log(
    `  ${label.padEnd(34)} p50 ${ms(result.corrected.p50Us)}  p99 ${ms(result.corrected.p99Us)}  ` +
      `p99.9 ${ms(result.corrected.p999Us)}  max ${ms(result.corrected.maxUs)}  ` +
      `${fmt(result.achievedRate)} req/s${side}${result.backlog > 0 ? `  backlog ${result.backlog}` : ''}`,
  );
}

/** Sleeps `ms`; gives a side load time to start before the measured client does. */
function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Part b's conditions, in the order each round runs them: alone twice, around gzip on the pool, so the second is
 * the A/A control (how far two runs of the same thing differ here); then the same paced load held but not
 * compressed (what the body's reading costs), and compressed on the proxying thread (what the pool spares).
 */
interface OffloadConditions {
  direct: LatencyCondition;
  alone: LatencyCondition;
  paced: LatencyCondition;
  aloneAgain: LatencyCondition;
  held: LatencyCondition;
  inline: LatencyCondition;
  closedLoop: LatencyCondition;
}

function latencyCondition(name: string): LatencyCondition {
  return { name, rounds: [], side: [] };
}

async function benchOffload(palisadePort: number, upstreamPort: number, rate: number): Promise<OffloadConditions> {
  const conditions: OffloadConditions = {
    // The floor: the same generator straight to the nginx upstream (generator + machine noise, no gateway).
    direct: latencyCondition('nginx upstream direct (floor)'),
    alone: latencyCondition('bare route alone'),
    paced: latencyCondition(`bare route + gzip 1 MiB at ${GZIP_PACED_RATE} req/s on the pool`),
    aloneAgain: latencyCondition('bare route alone, again (A/A control)'),
    held: latencyCondition(`bare route + 1 MiB held, 6.5 KiB sent, at ${GZIP_PACED_RATE} req/s (no compression)`),
    inline: latencyCondition(`bare route + gzip 1 MiB at ${GZIP_PACED_RATE} req/s on the proxying thread`),
    closedLoop: latencyCondition('bare route + gzip 1 MiB on the pool, 1 closed-loop connection'),
  };
  console.log(`\nb. offload: open loop ${fmt(rate)} req/s on /hello, ${LATENCY_ROUNDS} interleaved rounds`);
  const load = {
    host: '127.0.0.1',
    port: palisadePort,
    path: '/hello',
    rate,
    connections: OPEN_LOOP_CONNECTIONS,
    seconds: LATENCY_SECONDS,
    warmupSeconds: LATENCY_WARMUP_SECONDS,
    spin: SPIN,
  };
  const sideSeconds = LATENCY_WARMUP_SECONDS + LATENCY_SECONDS + 1;
  // A paced client of a 1 MiB route: its own open-loop generator at a low fixed rate, over the whole measurement.
  // It sleeps on timers whatever BENCH_SPIN says: 20 req/s needs no µs precision, and a second polling generator
  // would take the other core of a 2-core machine from the gateway and the upstream.
  const pacedBodies = async (condition: LatencyCondition, path: string, label: string): Promise<void> => {
    const side = runOpenLoop({
      ...load,
      path,
      headers: { 'Accept-Encoding': 'gzip' },
      rate: GZIP_PACED_RATE,
      connections: 4,
      seconds: sideSeconds,
      warmupSeconds: 0,
      spin: false,
      idle: SIDE_IDLE,
    });
    await pause(500);
    const measured = await runOpenLoop(load);
    const sideResult = await side;
    condition.rounds.push(measured);
    condition.side.push(sideResult.corrected.p99Us);
    logRound(
      label,
      measured,
      `  (1 MiB ${fmt(sideResult.achievedRate, 1)} req/s, its p99 ${ms(sideResult.corrected.p99Us)})`,
    );
  };
  const quiet = async (condition: LatencyCondition, label: string): Promise<void> => {
    const result = await runOpenLoop(load);
    condition.rounds.push(result);
    logRound(label, result, '');
  };

  for (let round = 1; round <= LATENCY_ROUNDS; round++) {
    const floor = await runOpenLoop({ ...load, port: upstreamPort });
    conditions.direct.rounds.push(floor);
    logRound(`round ${round} nginx direct`, floor, '');

    await quiet(conditions.alone, `round ${round} alone`);
    await pacedBodies(conditions.paced, '/bytes-1m', `round ${round} gzip on the pool`);
    await quiet(conditions.aloneAgain, `round ${round} alone again`);
    await pacedBodies(conditions.held, '/bytes-1m-held', `round ${round} held, not compressed`);
    await pacedBodies(conditions.inline, '/bytes-1m-inline', `round ${round} gzip inline`);

    // The worst case: one connection fetching the gzip route back to back (wrk, closed loop).
    const gzipFlat = runWrk(`http://127.0.0.1:${palisadePort}/bytes-1m`, {
      threads: 1,
      connections: 1,
      seconds: sideSeconds,
      headers: ['Accept-Encoding: gzip'],
      idle: SIDE_IDLE,
    });
    await pause(500);
    const withFlat = await runOpenLoop(load);
    const flatResult = await gzipFlat;
    conditions.closedLoop.rounds.push(withFlat);
    conditions.closedLoop.side.push(flatResult.requestsPerSecond);
    logRound(`round ${round} gzip closed loop`, withFlat, `  (gzip ${fmt(flatResult.requestsPerSecond, 1)} req/s)`);
  }
  for (const condition of Object.values(conditions)) mergeCondition(condition);
  return conditions;
}

/** One condition of b against the bare route alone: merged histograms and per-round p99 ratios. */
interface OffloadRatio {
  condition: string;
  p50: number;
  p99: number;
  p999: number;
  /** p99 of each round over the same round's bare route alone. */
  roundP99: number[];
  medianRoundP99: number;
}

function offloadRatios(conditions: OffloadConditions): OffloadRatio[] {
  const alone = conditions.alone;
  const base = alone.merged as LatencySummary;
  const compared = [conditions.aloneAgain, conditions.paced, conditions.held, conditions.inline, conditions.closedLoop];
  return compared.map((condition) => {
    const merged = condition.merged as LatencySummary;
    const roundP99 = condition.rounds.map((r, i) => r.corrected.p99Us / alone.rounds[i].corrected.p99Us);
    return {
      condition: condition.name,
      p50: merged.p50Us / base.p50Us,
      p99: merged.p99Us / base.p99Us,
      p999: merged.p999Us / base.p999Us,
      roundP99,
      medianRoundP99: median(roundP99),
    };
  });
}

async function loadPrometheusRoutes(gateway: PalisadeTarget, upstreamPort: number): Promise<number> {
  const started = performance.now();
  await adminPut(gateway, 'upstreams/bench', { type: 'roundrobin', nodes: { [`127.0.0.1:${upstreamPort}`]: 1 } });
  const routes: AdminWrite[] = Array.from({ length: ROUTES }, (_, i) => ({
    what: `routes/p${i}`,
    body: { uri: `/p/${i}`, plugins: { prometheus: {} }, upstream_id: 'bench' },
  }));
  await adminPutAll(gateway, routes, LOAD_CONNECTIONS);
  // adminPutAll writes the last route last: served, it means every route is.
  await waitForStatus(`http://127.0.0.1:${gateway.proxyPort}/p/${ROUTES - 1}`, {}, 200);
  return (performance.now() - started) / 1000;
}

/** Prometheus asks for gzip (BENCH_SCRAPE_GZIP=0: plain text, and the scraper here reads all 40 MB itself). */
const SCRAPE_HEADERS: Record<string, string> =
  process.env.BENCH_SCRAPE_GZIP === '0' ? {} : { 'Accept-Encoding': 'gzip' };

async function benchScrape(
  gateway: PalisadeTarget,
  metricsUrl: string,
  rate: number,
): Promise<{
  conditions: LatencyCondition[];
  scrapeBytes: number;
  scrapeMs: number[];
  renderMs: number[];
  rendersMeasured: number[];
  scrapeFailures: number;
}> {
  const paths = Array.from({ length: ROUTES }, (_, i) => `/p/${i}`);
  const load = {
    host: '127.0.0.1',
    port: gateway.proxyPort,
    path: '/p/0',
    paths,
    rate,
    connections: OPEN_LOOP_CONNECTIONS,
    seconds: SCRAPE_ROUND_SECONDS,
    warmupSeconds: LATENCY_WARMUP_SECONDS,
    spin: SPIN,
  };
  // One pass over every route first, so each has metrics before anything is measured.
  console.log(`  priming metrics on ${fmt(ROUTES)} routes ...`);
  await runOpenLoop({ ...load, seconds: Math.ceil(ROUTES / rate) + 1, warmupSeconds: 0 });
  // Past refresh_interval since the listener's first answer, so the first scrape here renders every route.
  await new Promise((resolve) => setTimeout(resolve, Math.max(2, REFRESH_SECONDS) * 1000));
  const first = await getCounted(metricsUrl, {});
  const firstScraped = await getCounted(metricsUrl, SCRAPE_HEADERS);
  console.log(
    `  metrics endpoint: ${first.status}, ${fmt(first.bytes / 1024)} KiB of text` +
      (firstScraped.encoding === 'gzip'
        ? `, ${fmt(firstScraped.bytes / 1024)} KiB gzipped (what the scraper fetches)`
        : ''),
  );
  if (first.status !== 200) throw new Error(`metrics endpoint ${metricsUrl} answered ${first.status}`);
  let lastEtag = firstScraped.etag;

  // The reference in the same rounds: the bare route alone at the same rate.
  const bare: LatencyCondition = { name: 'bare route alone (same rounds)', rounds: [], side: [] };
  const quiet: LatencyCondition = { name: `${fmt(ROUTES)} prometheus routes, no scrape`, rounds: [], side: [] };
  const scraped: LatencyCondition = {
    name: `${fmt(ROUTES)} prometheus routes, scrape every 1 s, rendered at most every ${REFRESH_SECONDS} s`,
    rounds: [],
    side: [],
  };
  const scrapeMs: number[] = [];
  const renderMs: number[] = [];
  const rendersMeasured: number[] = [];
  let scrapeFailures = 0;
  let scrapeBytes = firstScraped.bytes;
  const runQuiet = async (round: number): Promise<void> => {
    const result = await runOpenLoop(load);
    quiet.rounds.push(result);
    logRound(`round ${round} no scrape`, result, '');
  };
  const runScraped = async (round: number): Promise<void> => {
    const scraper = startScraper({
      url: metricsUrl,
      headers: SCRAPE_HEADERS,
      intervalMs: 1000,
      idle: SIDE_IDLE,
      lastEtag,
      windowSeconds: [LATENCY_WARMUP_SECONDS, LATENCY_WARMUP_SECONDS + SCRAPE_ROUND_SECONDS],
    });
    const result = await runOpenLoop(load);
    const scrapes = await scraper.stop();
    if (scrapes.ms.length === 0) throw new Error(`round ${round}: no scrape answered 200 (${scrapes.failed} failed)`);
    lastEtag = scrapes.lastEtag;
    scraped.rounds.push(result);
    scrapeMs.push(...scrapes.ms);
    renderMs.push(...scrapes.renderMs);
    rendersMeasured.push(scrapes.rendersMeasured);
    scrapeFailures += scrapes.failed;
    scrapeBytes = scrapes.bytes || scrapeBytes;
    scraped.side.push(median(scrapes.ms));
    logRound(
      `round ${round} scrape every 1 s`,
      result,
      `  (${scrapes.ms.length} scrapes, median ${fmt(median(scrapes.ms), 1)} ms; ` +
        `${scrapes.renderMs.length} rendered, ${scrapes.rendersMeasured} of them in the measured window` +
        (scrapes.failed > 0 ? `; ${scrapes.failed} failed)` : ')'),
    );
    // The exporter's last merge and gzip end before the next condition starts.
    await new Promise((resolve) => setTimeout(resolve, 1000));
  };
  console.log(
    `\nc. scrape impact: open loop ${fmt(rate)} req/s over ${fmt(ROUTES)} routes, ${LATENCY_ROUNDS} rounds of ${SCRAPE_ROUND_SECONDS} s`,
  );
  for (let round = 1; round <= LATENCY_ROUNDS; round++) {
    const reference = await runOpenLoop({ ...load, path: '/hello', paths: undefined });
    bare.rounds.push(reference);
    logRound(`round ${round} bare route`, reference, '');
    // No scrape and scrape swap places every round, so neither always runs first (after the bare route) or second.
    if (round % 2 === 1) {
      await runQuiet(round);
      await runScraped(round);
    } else {
      await runScraped(round);
      await runQuiet(round);
    }
  }
  mergeCondition(bare);
  mergeCondition(quiet);
  mergeCondition(scraped);
  return { conditions: [bare, quiet, scraped], scrapeBytes, scrapeMs, renderMs, rendersMeasured, scrapeFailures };
}

function percentChange(before: number, after: number): number {
  return ((after - before) / before) * 100;
}

function signedPercent(value: number): string {
  return `${value >= 0 ? '+' : ''}${fmt(value, 1)}%`;
}

/** Part c's table and its two comparisons: merged histograms, and the median of per-round ratios. */
function printScrape(
  scrape: Awaited<ReturnType<typeof benchScrape>>,
  rate: number,
  report: Record<string, unknown>,
): void {
  console.log(
    `\n## c. scrape impact: open loop ${fmt(rate)} req/s spread over ${fmt(ROUTES)} prometheus routes, rounds of ${SCRAPE_ROUND_SECONDS} s\n`,
  );
  console.log(LATENCY_HEADER);
  for (const condition of scrape.conditions) printLatency(condition);
  const [bareRoute, quiet, scraped] = scrape.conditions.map((c) => c.merged as LatencySummary);
  const change = { p50: percentChange(quiet.p50Us, scraped.p50Us), p99: percentChange(quiet.p99Us, scraped.p99Us) };
  report.scrapeChangePercent = change;
  // Per-round ratios, medians: on a shared 2-core machine one disturbed round dominates merged histograms.
  const [bareRounds, quietRounds, scrapedRounds] = scrape.conditions.map((c) => c.rounds);
  const p99Ratios = scrapedRounds.map((r, i) => r.corrected.p99Us / quietRounds[i].corrected.p99Us);
  const p50Ratios = scrapedRounds.map((r, i) => r.corrected.p50Us / quietRounds[i].corrected.p50Us);
  const scrapeRatio = median(p99Ratios);
  const routesRatio = median(quietRounds.map((r, i) => r.corrected.p99Us / bareRounds[i].corrected.p99Us));
  report.scrapeRoundRatios = {
    scrapedOverQuietP99: scrapeRatio,
    scrapedOverQuietP50: median(p50Ratios),
    quietOverBareP99: routesRatio,
    perRoundScrapedOverQuietP99: p99Ratios,
  };
  console.log(
    `\nmerged histograms, scrape every 1 s vs no scrape: p99 ${signedPercent(change.p99)}, p50 ${signedPercent(change.p50)}; ` +
      `scrape ${fmt(scrape.scrapeBytes / 1024)} KiB (${SCRAPE_HEADERS['Accept-Encoding'] ? 'gzip' : 'text'}), ` +
      `median ${fmt(median(scrape.scrapeMs), 1)} ms, max ${fmt(Math.max(...scrape.scrapeMs), 1)} ms` +
      (scrape.scrapeFailures > 0 ? `, ${scrape.scrapeFailures} failed` : ''),
  );
  console.log(
    `refresh_interval ${REFRESH_SECONDS} s, scraper ${SIDE_IDLE ? 'under SCHED_IDLE' : 'at normal priority'}: ` +
      `${scrape.renderMs.length} of ${scrape.scrapeMs.length} scrapes rendered ` +
      `(median ${fmt(median(scrape.renderMs), 1)} ms); renderings in each scraped round's measured window: ` +
      scrape.rendersMeasured.join(', '),
  );
  console.log(
    `median of per-round ratios, scrape / no scrape: p99 ${fmt(scrapeRatio, 2)}x (target <= 1.10; rounds ` +
      `${p99Ratios.map((ratio) => fmt(ratio, 2)).join(', ')}), p50 ${fmt(median(p50Ratios), 2)}x; ` +
      `${fmt(ROUTES)} prometheus routes / bare route p99 ${fmt(routesRatio, 2)}x; bare route p99 ${ms(bareRoute.p99Us)}`,
  );
}

async function main(): Promise<void> {
  const parts = benchParts(process.env.BENCH_PARTS);
  ensurePackages();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-bench-plugins-'));
  const dataDir = fs.mkdtempSync(path.join(memoryBackedTempDir(), 'palisade-bench-plugins-data-'));
  process.on('exit', () => {
    killAllChildrenNow();
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));
  const guard = setTimeout(() => {
    console.error(`bench:plugins: over ${RUN_LIMIT_MS / 60_000} minutes, giving up`);
    process.exit(1);
  }, RUN_LIMIT_MS);
  guard.unref();

  const report: Record<string, unknown> = {
    kind: 'bench:plugins',
    date: new Date().toISOString(),
    machine: machineInfo(),
    upstream:
      'nginx 1 worker, return 200 "hello world\\n"; /bytes-1m a 1 MiB JSON-like file, served in part b by a second nginx',
    parts: [...parts],
  };
  try {
    const [upstreamPort, bulkPort, nginxPort, palisadePort, metricsPort] = await Promise.all([
      freePort(),
      freePort(),
      freePort(),
      freePort(),
      freePort(),
    ]);
    console.log(
      `bench:plugins (parts ${[...parts].join(',')}): starting nginx upstream, ` +
        `${parts.has('a') ? 'nginx proxy ' : ''}and palisade (workers: 1) ...`,
    );
    await startNginxUpstream(tmp, upstreamPort);
    // b's 1 MiB bodies come from an nginx of their own: one nginx worker sending them would hold up the
    // bare route's upstream answers too, which measures nginx's queue rather than the gateway's.
    if (parts.has('b')) await startNginxUpstream(tmp, bulkPort, 'nginx-bulk', SIDE_IDLE);
    if (parts.has('a')) await startNginxProxy(tmp, nginxPort, upstreamPort);
    const gateway = await startPalisade(tmp, palisadePort, upstreamPort, {
      extraConfig: [
        'plugin_attr:',
        '  prometheus:',
        `    export_addr: { ip: 127.0.0.1, port: ${metricsPort} }`,
        `    refresh_interval: ${REFRESH_SECONDS}`,
        ...(parts.has('b') ? [`plugin_dir: ${JSON.stringify(CUSTOM_PLUGIN_DIR)}`] : []),
      ],
      dataDir,
    });
    console.log(`palisade backend ${gateway.backend}`);
    const upstream = { type: 'roundrobin', nodes: { [`127.0.0.1:${upstreamPort}`]: 1 } };
    if (parts.has('a')) await addRiskRoutes(gateway, upstream);
    if (parts.has('b')) await addBodyRoutes(gateway, { type: 'roundrobin', nodes: { [`127.0.0.1:${bulkPort}`]: 1 } });

    // a. throughput
    let throughput: ThroughputRow[] | undefined;
    if (parts.has('a')) {
      const targets = await benchThroughput(nginxPort, palisadePort);
      const perRound = (a: ThroughputTarget, b: ThroughputTarget): number =>
        median(a.rounds.map((r, i) => r.requestsPerSecond / b.rounds[i].requestsPerSecond));
      throughput = targets.map((target) => ({
        name: target.name,
        url: target.url,
        medianRequestsPerSecond: median(target.rounds.map((r) => r.requestsPerSecond)),
        vsNginx: perRound(target, targets[0]),
        errors: target.rounds.reduce((sum, r) => sum + r.non2xx + r.socketErrors, 0),
        rounds: target.rounds,
      }));
      report.throughput = {
        tool: 'wrk',
        threads: 1,
        connections: CONNECTIONS,
        seconds: ROUND_SECONDS,
        rounds: ROUNDS,
        targets: throughput,
      };
    }

    const { rate, source: rateSource } =
      parts.has('b') || parts.has('c')
        ? await offeredRate(throughput?.[1].medianRequestsPerSecond, palisadePort)
        : { rate: 0, source: '' };
    if (rate > 0) report.openLoopRate = { requestsPerSecond: rate, source: rateSource };
    // b. offload
    const offload = parts.has('b') ? await benchOffload(palisadePort, upstreamPort, rate) : undefined;
    if (offload) {
      report.offload = {
        rate,
        rateShare: FIXED_RATE > 0 ? undefined : RATE_SHARE,
        connections: OPEN_LOOP_CONNECTIONS,
        seconds: LATENCY_SECONDS,
        conditions: Object.values(offload),
      };
    }

    // c. scrape impact
    let scrape: Awaited<ReturnType<typeof benchScrape>> | undefined;
    let scrapeSkipped: string | undefined;
    if (parts.has('c')) {
      try {
        console.log(
          `\nc. loading ${fmt(ROUTES)} routes with the prometheus plugin ` +
            `(Admin API, ${LOAD_CONNECTIONS} keep-alive connections) ...`,
        );
        const loadSeconds = await loadPrometheusRoutes(gateway, upstreamPort);
        console.log(`  loaded and served in ${fmt(loadSeconds, 1)} s`);
        const metricsUrl = `http://127.0.0.1:${metricsPort}/apisix/prometheus/metrics`;
        await waitForHttp(metricsUrl, 10_000, 200);
        scrape = await benchScrape(gateway, metricsUrl, rate);
        report.scrape = {
          rate,
          routes: ROUTES,
          loadSeconds,
          loadConnections: LOAD_CONNECTIONS,
          refreshSeconds: REFRESH_SECONDS,
          roundSeconds: SCRAPE_ROUND_SECONDS,
          scraperIdle: SIDE_IDLE,
          ...scrape,
        };
      } catch (err) {
        scrapeSkipped = (err as Error).message;
        console.log(`  scrape impact not measured: ${scrapeSkipped}`);
        report.scrape = { skipped: scrapeSkipped };
      }
    }

    if (throughput) {
      console.log(
        '\n## a. throughput (wrk -t1 -c50, median of interleaved rounds; ratio = median of per-round ratios)\n',
      );
      console.log('| target | req/s | vs nginx | errors |');
      console.log('| --- | ---: | ---: | ---: |');
      for (const row of throughput) {
        console.log(`| ${row.name} | ${fmt(row.medianRequestsPerSecond)} | ${fmt(row.vsNginx, 2)} | ${row.errors} |`);
      }
    }
    if (offload) {
      console.log(
        `\n## b. offload: open loop ${fmt(rate)} req/s on the bare route, ` +
          `${OPEN_LOOP_CONNECTIONS} connections, histograms merged over ${LATENCY_ROUNDS} rounds of ${LATENCY_SECONDS} s\n`,
      );
      console.log(LATENCY_HEADER);
      for (const condition of Object.values(offload)) printLatency(condition);
      const ratios = offloadRatios(offload);
      report.offloadRatios = ratios;
      console.log(
        '\n| against the bare route alone | p50 (merged) | p99 (merged) | p99.9 (merged) | p99 per round | p99, median of rounds |',
      );
      console.log('| --- | ---: | ---: | ---: | --- | ---: |');
      for (const ratio of ratios) {
        console.log(
          `| ${ratio.condition} | ${fmt(ratio.p50, 2)}x | ${fmt(ratio.p99, 2)}x | ${fmt(ratio.p999, 2)}x | ` +
            `${ratio.roundP99.map((r) => fmt(r, 2)).join(', ')} | ${fmt(ratio.medianRoundP99, 2)}x |`,
        );
      }
      console.log(
        `\ngzip closed-loop client: median ${fmt(median(offload.closedLoop.side), 1)} req/s (1 MiB each); ` +
          `paced gzip p99: ${ms(median(offload.paced.side))} on the pool, ${ms(median(offload.inline.side))} inline`,
      );
    }
    if (scrape) {
      printScrape(scrape, rate, report);
    } else if (parts.has('c')) {
      console.log(`\nc. scrape impact: not measured (${scrapeSkipped})`);
    }

    console.log(`\nreport: ${writeReport('plugins', report)}`);
  } finally {
    await stopAllChildren();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`bench:plugins failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
