// `npm run bench:instructions`: instructions per request under valgrind's
// callgrind, for each route of bench:plugins' throughput rows. Counting
// instructions is deterministic, so two builds compare without the ±15 % noise
// that throughput and CPU time show on this shared 2-core machine.
//
// One process runs the data plane (built-in plugins, shared dicts, the backend
// of BENCH_BACKEND, default ffi) and a raw keep-alive client in front of one
// nginx upstream, under `valgrind --tool=callgrind` with `node --single-threaded`
// (V8 compiles and collects garbage on the main thread, where callgrind sees
// it). It warms every route up first (in rounds over all), then per route: zero the counters,
// send BENCH_REQUESTS requests, dump. Each dump gives instructions per request
// (client included, so also shown "minus bare"), TurboFan/baseline compile
// time inside the window left out, GC shown apart.
//
//   npm run bench:instructions                       this checkout
//   npm run bench:instructions -- /path/to/other     A/B: this checkout and another build, side by side
//   BENCH_BUILD=/path/to/other npm run bench:instructions
//
// The other checkout must be built (npm run build:native && npx tsc -p tsconfig.json). Both builds run at the same
// time, one valgrind each (callgrind runs the program on one thread).
// BENCH_ROUTES=bare,risk picks routes (also limit-count-no-headers, ip-restriction); BENCH_WARMUP (20,000 per
// route: fewer leaves TurboFan compiling inside the measured window) and BENCH_REQUESTS (3,000) set the counts;
// BENCH_LIMIT_MINUTES (20) bounds the run. BENCH_FUNCTIONS=15 adds, for an A/B, the 15 functions per route whose
// self cost changed most; BENCH_DUMPS=<dir> keeps the dumps for callgrind_annotate.

import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { killAllChildrenNow, startChild, stopAllChildren } from './lib/children';
import {
  callgrindArgs,
  dumpCounters,
  dumpFiles,
  largestDifferences,
  parsePerfMap,
  readCallgrindFile,
  selfCostsByName,
  v8Costs,
  zeroCounters,
  type CallgrindProfile,
  type FunctionDifference,
  type PerfMapEntry,
} from './lib/callgrind';
import { freePort } from './lib/net';
import {
  BARE_ROUTE,
  BENCH_API_KEY,
  BENCH_CONSUMER,
  EXTRA_ROUTES,
  RISK_ROUTE,
  SINGLE_PLUGIN_ROUTES,
  type PluginRoute,
} from './lib/plugin-routes';
import { startNginxUpstream } from './lib/nginx';
import { fmt, machineInfo, writeReport } from './lib/report';
import { positiveInt } from './lib/settings';
import type { BackendName } from '../src/native';
import type { SharedDict } from '../src/native/shdict';
import type { Route } from '../src/schema/types';
import type { ConfigSnapshot } from '../src/store/types';

const ROOT = path.resolve(__dirname, '..', '..');
const WARMUP_REQUESTS = positiveInt(process.env.BENCH_WARMUP, 20_000);
const MEASURED_REQUESTS = positiveInt(process.env.BENCH_REQUESTS, 3_000);
const RUN_LIMIT_MS = positiveInt(process.env.BENCH_LIMIT_MINUTES, 20) * 60_000;
const BACKENDS: readonly BackendName[] = ['ffi', 'napi', 'js'];
const BACKEND = (process.env.BENCH_BACKEND ?? 'ffi') as BackendName;
/** Warm-up requests per route and round; rounds go over every route until each has had BENCH_WARMUP. */
const WARMUP_ROUND = 2_000;
/** Requests in flight from the in-process client, one per keep-alive connection. */
const CLIENT_CONNECTIONS = 8;
const CONTROL_TIMEOUT_MS = 60_000;
/**
 * BENCH_DUMPS=<dir>: keep each dump there (<build>-<route>.callgrind, for callgrind_annotate or kcachegrind) with
 * V8's map of JIT code addresses to JS function names (<build>-perf.map, from --perf-basic-prof-only-functions;
 * plain --perf-basic-prof makes V8 recompile constantly).
 */
const DUMPS_DIR = process.env.BENCH_DUMPS ? path.resolve(process.env.BENCH_DUMPS) : undefined;
/** BENCH_FUNCTIONS=<n>: with two builds, the n functions per route whose self cost changed most (JIT code named). */
const FUNCTIONS_SHOWN = positiveInt(process.env.BENCH_FUNCTIONS, 0);
const WANTS_PERF_MAP = DUMPS_DIR !== undefined || FUNCTIONS_SHOWN > 0;
/** Lines of the harness's stdout that ask the driver for a callgrind phase (anything else is the gateway's output). */
const PHASE_PREFIX = 'callgrind-phase ';
/** V8's perf maps of this run's valgrind processes, removed at exit however the run ends. */
const perfMapFiles = new Set<string>();

function signed(n: number, digits = 0): string {
  return `${n >= 0 ? '+' : ''}${fmt(n, digits)}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Routes: bench:plugins' throughput rows (its risk-control route and, with BENCH_PLUGIN_BREAKDOWN=1, one route per
// plugin of it), the bare route, and two more that can be asked for by name.

interface BenchRoute extends PluginRoute {
  /** Measured when BENCH_ROUTES is not set. */
  byDefault: boolean;
}

const ROUTES: readonly BenchRoute[] = [
  ...[BARE_ROUTE, ...SINGLE_PLUGIN_ROUTES, RISK_ROUTE].map((route) => ({ ...route, byDefault: true })),
  ...EXTRA_ROUTES.map((route) => ({ ...route, byDefault: false })),
];

/** BENCH_ROUTES ("bare,risk"): the routes measured, in catalog order; bare is always measured (the "minus bare" base). */
function selectRoutes(text: string | undefined): BenchRoute[] {
  const names = (text ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  if (names.length === 0) return ROUTES.filter((route) => route.byDefault);
  for (const name of names) {
    if (!ROUTES.some((route) => route.name === name)) {
      throw new Error(`BENCH_ROUTES: unknown route '${name}' (one of ${ROUTES.map((route) => route.name).join(', ')})`);
    }
  }
  return ROUTES.filter((route) => route.name === 'bare' || names.includes(route.name));
}

function routeSnapshot(routes: readonly BenchRoute[], upstreamPort: number): ConfigSnapshot {
  const upstream = { type: 'roundrobin', nodes: { [`127.0.0.1:${upstreamPort}`]: 1 } };
  return {
    version: 1,
    routes: routes.map((route) => ({ id: route.name, uri: route.uri, plugins: route.plugins, upstream }) as Route),
    services: [],
    upstreams: [],
    consumers: [BENCH_CONSUMER],
    consumer_groups: [],
    global_rules: [],
    plugin_configs: [],
    plugin_metadata: [],
    ssls: [],
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The harness: the process valgrind runs. It loads the gateway from the build it is given, so the client and this
// code are the same for both builds of an A/B and only the gateway differs.

interface HarnessSettings {
  build: string;
  backend: BackendName;
  upstreamPort: number;
  dictDir: string;
  routes: string[];
  warmup: number;
  requests: number;
}

/** The build's modules, by path: the other checkout of an A/B may not be this one. */
function loadGateway(build: string): {
  server: typeof import('../src/dataplane/server');
  native: typeof import('../src/native');
  shdict: typeof import('../src/native/shdict');
  loader: typeof import('../src/plugins/loader');
  defaults: typeof import('../src/config/defaults');
} {
  const dist = path.join(build, 'dist', 'src');
  /* eslint-disable @typescript-eslint/no-require-imports */
  return {
    server: require(path.join(dist, 'dataplane', 'server')),
    native: require(path.join(dist, 'native')),
    shdict: require(path.join(dist, 'native', 'shdict')),
    loader: require(path.join(dist, 'plugins', 'loader')),
    defaults: require(path.join(dist, 'config', 'defaults')),
  };
  /* eslint-enable @typescript-eslint/no-require-imports */
}

/** Ask the driver for a callgrind phase and block until it is done: one read() syscall, nothing counted meanwhile. */
function callgrindPhase(request: string): void {
  fs.writeSync(1, `${PHASE_PREFIX}${request}\n`);
  const answer = Buffer.alloc(16);
  for (;;) {
    try {
      if (fs.readSync(0, answer) > 0) return;
      throw new Error('bench:instructions harness: the driver closed stdin');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }
}

/** Send `total` GETs of `uri` over CLIENT_CONNECTIONS keep-alive connections, one in flight on each; every answer 200. */
function drive(port: number, uri: string, total: number): Promise<void> {
  const request = Buffer.from(
    `GET ${uri} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\napikey: ${BENCH_API_KEY}\r\n\r\n`,
    'latin1',
  );
  return new Promise((resolve, reject) => {
    let sent = 0;
    let answered = 0;
    const sockets: net.Socket[] = [];
    const fail = (err: Error): void => {
      for (const socket of sockets) socket.destroy();
      reject(err);
    };
    for (let i = 0; i < Math.min(CLIENT_CONNECTIONS, total); i++) {
      const socket = net.connect(port, '127.0.0.1');
      sockets.push(socket);
      let pending = '';
      socket.setNoDelay(true);
      socket.on('error', fail);
      socket.on('connect', () => {
        sent++;
        socket.write(request);
      });
      socket.on('data', (chunk: Buffer) => {
        pending += chunk.toString('latin1');
        for (;;) {
          const headEnd = pending.indexOf('\r\n\r\n');
          if (headEnd < 0) return;
          const length = /\r\ncontent-length:\s*(\d+)/i.exec(pending.slice(0, headEnd));
          if (length === null)
            return fail(new Error(`${uri}: an answer without Content-Length: ${pending.slice(0, 300)}`));
          const end = headEnd + 4 + Number(length[1]);
          if (pending.length < end) return;
          if (!pending.startsWith('HTTP/1.1 200 ')) return fail(new Error(`${uri}: ${pending.slice(0, end)}`));
          pending = pending.slice(end);
          answered++;
          if (sent < total) {
            sent++;
            socket.write(request);
          } else {
            socket.end();
          }
          if (answered === total) resolve();
        }
      });
    }
  });
}

async function runHarness(settings: HarnessSettings): Promise<void> {
  const gateway = loadGateway(settings.build);
  const backend = gateway.native.loadBackend(settings.backend);
  const dicts = new Map<string, SharedDict>();
  for (const [name, size] of Object.entries(gateway.defaults.DEFAULT_SHARED_DICTS)) {
    const capacity = gateway.shdict.parseDictSize(size);
    dicts.set(
      name,
      gateway.shdict.openSharedDict(backend, name, capacity, { path: path.join(settings.dictDir, name), fresh: true }),
    );
  }
  const loader = new gateway.loader.PluginLoader();
  loader.load();
  const plane = new gateway.server.DataPlane(backend, {
    listen: [{ host: '127.0.0.1', port: 0 }],
    plugins: {
      get registry() {
        return loader.registry;
      },
      env: {
        dict(name: string) {
          const dict = dicts.get(name);
          if (dict === undefined) throw new Error(`no such shared dictionary: ${name}`);
          return dict;
        },
      },
    },
    dicts,
  });
  const routes = settings.routes.map((name) => ROUTES.find((route) => route.name === name) as BenchRoute);
  plane.applyConfig(routeSnapshot(routes, settings.upstreamPort));
  const [address] = await plane.listen();
  // Warm-up in rounds over every route, not each route at once: code first optimized for one route's types was
  // deoptimized by the next routes and compiled again inside an earlier route's measured window (TurboFan traces).
  for (let done = 0; done < settings.warmup; done += WARMUP_ROUND) {
    const requests = Math.min(WARMUP_ROUND, settings.warmup - done);
    for (const route of routes) await drive(address.port, route.uri, requests);
  }
  for (const route of routes) {
    callgrindPhase(`zero ${route.name}`);
    await drive(address.port, route.uri, settings.requests);
    callgrindPhase(`dump ${route.name}`);
  }
  await plane.close(100);
  for (const dict of dicts.values()) dict.close();
}

// ---------------------------------------------------------------------------------------------------------------
// The driver: valgrind per build, the phases through callgrind_control, the dumps read into figures.

interface RouteCount {
  route: string;
  requests: number;
  /** Instructions per request, compile left out: the figure compared. */
  perRequest: number;
  /**
   * perRequest without GC too: steadier between builds, as a window holds a whole number of collections (one more
   * or less moves perRequest by a few thousand), but blind to a change in what is allocated.
   */
  perRequestWithoutGc: number;
  /** perRequest minus the bare route's: what the route's plugins cost (the client and proxying are the same). */
  minusBare: number;
  /** perRequestWithoutGc minus the bare route's. */
  minusBareWithoutGc: number;
  compilePerRequest: number;
  gcPerRequest: number;
  /** The dump's whole count (compile included). */
  totalInstructions: number;
}

interface BuildResult {
  label: string;
  path: string;
  commit: string;
  routes: RouteCount[];
}

function describeCommit(dir: string): string {
  try {
    const commit = execFileSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const changed = execFileSync('git', ['-C', dir, 'status', '--porcelain', '--untracked-files=no'], {
      encoding: 'utf8',
    }).trim();
    return changed === '' ? commit : `${commit} + uncommitted changes`;
  } catch {
    return 'not a git checkout';
  }
}

function checkBuild(dir: string): void {
  for (const file of ['dist/src/dataplane/server.js', 'dist/src/plugins/loader.js', 'dist/src/native/index.js']) {
    if (!fs.existsSync(path.join(dir, file))) {
      throw new Error(
        `${dir} is not built (no ${file}): run \`npm run build:native && npx tsc -p tsconfig.json\` there first`,
      );
    }
  }
}

function hasCommand(command: string): boolean {
  try {
    execFileSync(command, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** nginx-light and valgrind, installed through scripts/ensure-packages.sh when missing; a clear message when that fails. */
function ensurePackages(): void {
  try {
    execFileSync('bash', [path.join(ROOT, 'scripts', 'ensure-packages.sh'), 'nginx-light', 'valgrind'], {
      stdio: 'inherit',
    });
  } catch {
    // Not root and no sudo: fine when the commands are there anyway (checked below).
  }
  if (!hasCommand('valgrind') || !hasCommand('callgrind_control')) {
    throw new Error(
      'valgrind is not installed: bench:instructions runs the gateway under valgrind --tool=callgrind and drives it ' +
        'with callgrind_control. On Debian/Ubuntu: `sudo apt-get install valgrind` ' +
        '(or `bash scripts/ensure-packages.sh valgrind` as root)',
    );
  }
}

interface Measurement {
  result: BuildResult;
  /** Per route (in order), self cost by function with JIT code named: with BENCH_FUNCTIONS only. */
  functionCosts?: Map<string, number>[];
}

/** Run one build's harness under callgrind, serve its phase requests, and read its dumps. */
async function measureBuild(
  label: string,
  build: string,
  routes: readonly BenchRoute[],
  upstreamPort: number,
  workDir: string,
): Promise<Measurement> {
  const dir = path.join(workDir, label);
  fs.mkdirSync(path.join(dir, 'dicts'), { recursive: true });
  const outFile = path.join(dir, 'callgrind.out');
  const settings: HarnessSettings = {
    build,
    backend: BACKEND,
    upstreamPort,
    dictDir: path.join(dir, 'dicts'),
    routes: routes.map((route) => route.name),
    warmup: WARMUP_REQUESTS,
    requests: MEASURED_REQUESTS,
  };
  const harness = [
    process.execPath,
    '--single-threaded',
    ...(WANTS_PERF_MAP ? ['--perf-basic-prof-only-functions'] : []),
    path.join(__dirname, 'instructions.js'),
    '--harness',
    JSON.stringify(settings),
  ];
  const started = Date.now();
  const elapsed = (): string => `${fmt((Date.now() - started) / 1000)} s`;
  const child = startChild(`valgrind (${label})`, 'valgrind', callgrindArgs(outFile, harness), {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const pid = child.process.pid as number;
  if (WANTS_PERF_MAP) perfMapFiles.add(`/tmp/perf-${pid}.map`);
  const stdin = child.process.stdin as NodeJS.WritableStream;
  console.log(`[${label}] valgrind pid ${pid}: warming up ${routes.length} routes x ${fmt(WARMUP_REQUESTS)} requests`);

  // The harness blocks after each request line until answered, so phases arrive one at a time.
  let phases = Promise.resolve();
  let lineStart = '';
  const handlePhase = async (phase: string, route: string): Promise<void> => {
    if (phase === 'zero') {
      if (route === routes[0].name) console.log(`[${label}] warmed up in ${elapsed()}`);
      await zeroCounters(pid, CONTROL_TIMEOUT_MS);
    } else {
      await dumpCounters(pid, route, CONTROL_TIMEOUT_MS);
      console.log(`[${label}] ${route} measured (${elapsed()})`);
    }
    stdin.write('go\n');
  };
  child.process.stdout?.on('data', (chunk: Buffer) => {
    const lines = (lineStart + chunk.toString()).split('\n');
    lineStart = lines.pop() as string;
    for (const line of lines) {
      if (!line.startsWith(PHASE_PREFIX)) continue;
      const [phase, route] = line.slice(PHASE_PREFIX.length).split(' ');
      // A failed callgrind_control leaves the harness waiting: end it, so the failure is reported at once.
      phases = phases
        .then(() => handlePhase(phase, route))
        .catch((err: unknown) => {
          child.process.kill('SIGKILL');
          throw err;
        });
    }
  });
  const exitCode = await new Promise<number | null>((resolve) => child.process.on('exit', (code) => resolve(code)));
  await phases;
  if (exitCode !== 0) throw new Error(`[${label}] valgrind exited with ${exitCode}:\n${child.output()}`);

  const perfMapFile = `/tmp/perf-${pid}.map`;
  let perfMap: PerfMapEntry[] = [];
  if (fs.existsSync(perfMapFile)) {
    perfMap = parsePerfMap(fs.readFileSync(perfMapFile, 'utf8'));
    if (DUMPS_DIR !== undefined) fs.copyFileSync(perfMapFile, path.join(DUMPS_DIR, `${label}-perf.map`));
    fs.rmSync(perfMapFile);
  }
  const functionCosts: Map<string, number>[] = [];
  const files = dumpFiles(outFile);
  if (files.length !== routes.length) {
    throw new Error(`[${label}] ${files.length} callgrind dumps for ${routes.length} routes:\n${child.output()}`);
  }
  const counts = files.map((file, i) => {
    const profile = readCallgrindFile(file);
    if (DUMPS_DIR === undefined) fs.rmSync(file);
    else fs.renameSync(file, path.join(DUMPS_DIR, `${label}-${routes[i].name}.callgrind`));
    if (!profile.trigger.endsWith(routes[i].name)) {
      throw new Error(`[${label}] dump ${file} is '${profile.trigger}', expected route ${routes[i].name}`);
    }
    if (FUNCTIONS_SHOWN > 0) functionCosts.push(selfCostsByName(profile, perfMap, [build, ROOT]));
    return countRoute(routes[i].name, profile);
  });
  const bare = counts.find((count) => count.route === 'bare') as RouteCount;
  for (const count of counts) {
    count.minusBare = count.perRequest - bare.perRequest;
    count.minusBareWithoutGc = count.perRequestWithoutGc - bare.perRequestWithoutGc;
  }
  return {
    result: { label, path: build, commit: describeCommit(build), routes: counts },
    functionCosts: FUNCTIONS_SHOWN > 0 ? functionCosts : undefined,
  };
}

function countRoute(route: string, profile: CallgrindProfile): RouteCount {
  if (profile.events[0] !== 'Ir') throw new Error(`callgrind counted ${profile.events.join(',')}, expected Ir first`);
  const { total, compile, gc } = v8Costs(profile);
  return {
    route,
    requests: MEASURED_REQUESTS,
    perRequest: (total - compile) / MEASURED_REQUESTS,
    perRequestWithoutGc: (total - compile - gc) / MEASURED_REQUESTS,
    minusBare: 0,
    minusBareWithoutGc: 0,
    compilePerRequest: compile / MEASURED_REQUESTS,
    gcPerRequest: gc / MEASURED_REQUESTS,
    totalInstructions: total,
  };
}

function printOne(result: BuildResult): void {
  console.log(`\n## instructions per request: ${result.path} (${result.commit})\n`);
  console.log(
    '| route | instructions/request | minus bare | without GC | without GC, minus bare | GC | compile (left out) |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const count of result.routes) {
    const isBare = count.route === 'bare';
    console.log(
      `| ${count.route} | ${fmt(count.perRequest)} | ${isBare ? '' : signed(count.minusBare)} | ` +
        `${fmt(count.perRequestWithoutGc)} | ${isBare ? '' : signed(count.minusBareWithoutGc)} | ` +
        `${fmt(count.gcPerRequest)} | ${fmt(count.compilePerRequest)} |`,
    );
  }
}

interface RouteDifference {
  route: string;
  /** B − A, instructions per request. */
  perRequest: number;
  percent: number;
  /** B − A without GC: the steadier figure (a window holds a whole number of collections). */
  withoutGc: number;
  withoutGcPercent: number;
}

function compareBuilds(a: BuildResult, b: BuildResult): RouteDifference[] {
  return a.routes.map((countA, i) => {
    const countB = b.routes[i];
    const withoutGc = countB.perRequestWithoutGc - countA.perRequestWithoutGc;
    return {
      route: countA.route,
      perRequest: countB.perRequest - countA.perRequest,
      percent: ((countB.perRequest - countA.perRequest) / countA.perRequest) * 100,
      withoutGc,
      withoutGcPercent: (withoutGc / countA.perRequestWithoutGc) * 100,
    };
  });
}

function printComparison(a: BuildResult, b: BuildResult, differences: RouteDifference[]): void {
  console.log(`\n## A/B, instructions per request\n\nA: ${a.path} (${a.commit})\nB: ${b.path} (${b.commit})\n`);
  console.log('| route | A | B | B − A | without GC: A | B | B − A | minus bare without GC: A / B |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  differences.forEach((difference, i) => {
    const [countA, countB] = [a.routes[i], b.routes[i]];
    console.log(
      `| ${difference.route} | ${fmt(countA.perRequest)} | ${fmt(countB.perRequest)} | ` +
        `${signed(difference.perRequest)} (${signed(difference.percent, 1)}%) | ` +
        `${fmt(countA.perRequestWithoutGc)} | ${fmt(countB.perRequestWithoutGc)} | ` +
        `${signed(difference.withoutGc)} (${signed(difference.withoutGcPercent, 1)}%) | ` +
        `${difference.route === 'bare' ? '' : `${signed(countA.minusBareWithoutGc)} / ${signed(countB.minusBareWithoutGc)}`} |`,
    );
  });
}

function printFunctionDifferences(route: string, functions: FunctionDifference[]): void {
  console.log(`\n### ${route}: self cost per request, the functions that changed most\n`);
  console.log('| B − A | A | B | function |');
  console.log('| ---: | ---: | ---: | --- |');
  for (const { name, a, b } of functions) {
    const perRequest = (cost: number): string => fmt(cost / MEASURED_REQUESTS, 1);
    const shown = name.length > 120 ? `${name.slice(0, 117)}...` : name;
    console.log(
      `| ${signed((b - a) / MEASURED_REQUESTS, 1)} | ${perRequest(a)} | ${perRequest(b)} | ${shown.replace(/\|/g, '\\|')} |`,
    );
  }
}

async function main(): Promise<void> {
  const otherBuild = process.argv[2] ?? process.env.BENCH_BUILD;
  const builds = [{ label: 'A', path: ROOT }];
  if (otherBuild !== undefined && otherBuild !== '') builds.push({ label: 'B', path: path.resolve(otherBuild) });
  for (const build of builds) checkBuild(build.path);
  if (!BACKENDS.includes(BACKEND)) throw new Error(`BENCH_BACKEND: '${BACKEND}' is not one of ${BACKENDS.join(', ')}`);
  const routes = selectRoutes(process.env.BENCH_ROUTES);
  ensurePackages();
  if (DUMPS_DIR !== undefined) fs.mkdirSync(DUMPS_DIR, { recursive: true });

  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-bench-instructions-'));
  process.on('exit', () => {
    killAllChildrenNow();
    fs.rmSync(workDir, { recursive: true, force: true });
    for (const file of perfMapFiles) fs.rmSync(file, { force: true });
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));
  const guard = setTimeout(() => {
    console.error(
      `bench:instructions: over ${RUN_LIMIT_MS / 60_000} minutes (BENCH_LIMIT_MINUTES), giving up; ` +
        'valgrind is killed and its files removed',
    );
    process.exit(1);
  }, RUN_LIMIT_MS);
  guard.unref();

  try {
    const upstreamPort = await freePort();
    await startNginxUpstream(workDir, upstreamPort);
    const valgrindVersion = execFileSync('valgrind', ['--version'], { encoding: 'utf8' }).trim();
    console.log(
      `bench:instructions: ${valgrindVersion}, node ${process.version} --single-threaded, backend ${BACKEND}; ` +
        `routes ${routes.map((route) => route.name).join(', ')}; ${fmt(WARMUP_REQUESTS)} warm-up and ` +
        `${fmt(MEASURED_REQUESTS)} measured requests per route, ${CLIENT_CONNECTIONS} keep-alive connections`,
    );
    const measurements = await Promise.all(
      builds.map((build) => measureBuild(build.label, build.path, routes, upstreamPort, workDir)),
    );
    const results = measurements.map((measurement) => measurement.result);
    const report: Record<string, unknown> = {
      kind: 'bench:instructions',
      date: new Date().toISOString(),
      machine: { ...machineInfo(), valgrind: valgrindVersion },
      method:
        'callgrind Ir per request, in-process client included, compile inside the window left out ' +
        '(inclusive cost of V8 compile entry points), GC included and shown apart',
      warmupRequests: WARMUP_REQUESTS,
      measuredRequests: MEASURED_REQUESTS,
      clientConnections: CLIENT_CONNECTIONS,
      backend: BACKEND,
      builds: results,
    };
    for (const result of results) printOne(result);
    if (results.length === 2) {
      const differences = compareBuilds(results[0], results[1]);
      report.differenceBMinusA = differences;
      printComparison(results[0], results[1], differences);
      const [costsA, costsB] = measurements.map((measurement) => measurement.functionCosts);
      if (costsA !== undefined && costsB !== undefined) {
        const functions = routes.map((route, i) => ({
          route: route.name,
          functions: largestDifferences(costsA[i], costsB[i], FUNCTIONS_SHOWN),
        }));
        report.functionDifferences = functions;
        for (const { route, functions: changed } of functions) printFunctionDifferences(route, changed);
      }
    }
    console.log(`\nreport: ${writeReport('instructions', report)}`);
  } finally {
    await stopAllChildren();
  }
}

if (process.argv[2] === '--harness') {
  runHarness(JSON.parse(process.argv[3]) as HarnessSettings).then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(
        `bench:instructions harness failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
      );
      process.exit(1);
    },
  );
} else {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(`bench:instructions failed: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
