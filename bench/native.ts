// `npm run bench:native`: cost of the native hot path per backend (ffi, napi,
// js). Each section measures a few operations in interleaved rounds (every
// backend once per round, so drift hits all of them alike) after a warm-up,
// and reports the median. Only ratios from one run mean anything.
//
// Sections:
//   parse+route  one parseRequest call on a ~400-byte head, routed against
//                tables of 1, 1,000 and 10,000 routes (and parse only, router -1)
//   router build time to build (and free) a 10,000-route table
//   shared dict  get / set / incr through SharedDict on a 10,000-key dictionary
//                (one process; in `js` the dictionary is per process)
// A new section is one more entry in `sections`.

import { existsSync, rmSync } from 'node:fs';
import { loadBackend } from '../src/native';
import type { BackendName, NativeBackend } from '../src/native';
import { OUT_SIZE, Out } from '../src/native/layout';
import { addonPath, sharedLibraryPath } from '../src/native/paths';
import { encodeRouterSpec } from '../src/native/router-spec';
import type { RouteMatchSpec } from '../src/native/router-spec';
import { openSharedDict, sharedDictPath } from '../src/native/shdict';
import { median } from './lib/report';

const BACKENDS: readonly BackendName[] = ['ffi', 'napi', 'js'];
const BUILD_FILES: Record<BackendName, string | undefined> = { ffi: sharedLibraryPath, napi: addonPath, js: undefined };
const ROUNDS = 7;
const SAMPLE_MS = 40; // target duration of one timed sample
const WARMUP_MS = 150;

/** One timed operation: run it `iterations` times; returns nothing (results are checked in setup). */
interface Case {
  /** Row label, e.g. "routes=1000". */
  row: string;
  /** Column label: the backend name. */
  column: string;
  run(iterations: number): void;
  /** Frees what setup built. */
  dispose?(): void;
}

interface Section {
  title: string;
  unit: 'ns/op' | 'ms/op' | 'ops/s';
  cases(backends: readonly NativeBackend[]): Case[];
}

// ---- helpers ----

function elapsedNs(fn: () => void): number {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start);
}

/** Iterations that take about SAMPLE_MS, found by doubling. */
function calibrate(run: (iterations: number) => void): number {
  let iterations = 1;
  for (;;) {
    const ns = elapsedNs(() => run(iterations));
    if (ns >= (SAMPLE_MS * 1e6) / 4 || iterations >= 1 << 26) {
      return Math.max(1, Math.round((iterations * SAMPLE_MS * 1e6) / Math.max(ns, 1)));
    }
    iterations *= 2;
  }
}

function availableBackends(): NativeBackend[] {
  const loaded: NativeBackend[] = [];
  for (const name of BACKENDS) {
    const file = BUILD_FILES[name];
    if (file !== undefined && !existsSync(file)) {
      console.log(`bench:native: skipping ${name} (${file} is missing; run npm run build:native)`);
      continue;
    }
    loaded.push(loadBackend(name));
  }
  return loaded;
}

// ---- workload ----

const SERVICES = ['orders', 'users', 'catalog', 'billing', 'search', 'media', 'auth', 'cart'];

/** A realistic table: mixed exact, prefix and parameter uris, some hosts, some methods, a few priorities. */
function routeTable(size: number): RouteMatchSpec[] {
  return Array.from({ length: size }, (_, k) => {
    const service = `${SERVICES[k % SERVICES.length]}${k}`;
    const kind = k % 4;
    const uri =
      kind === 0
        ? `/api/v1/${service}/items`
        : kind === 1
          ? `/api/v1/${service}/static/*`
          : kind === 2
            ? `/api/v1/${service}/users/:id`
            : `/api/v2/${service}/*rest`;
    return {
      priority: k % 7 === 0 ? 1 : 0,
      methods: k % 3 === 0 ? ['GET', 'POST'] : [],
      hosts: k % 5 === 0 ? [`${service}.example.com`] : k % 11 === 0 ? ['*.example.net'] : [],
      uris: [uri],
      remoteAddrs: k % 13 === 0 ? ['10.0.0.0/8'] : [],
    };
  });
}

/** The index of a parameter route near the middle of a table of `size`. */
function middleRoute(size: number): number {
  let k = Math.floor(size / 2);
  while (k % 4 !== 2 && k < size - 1) k++;
  return k < size && k % 4 === 2 ? k : 0;
}

/** A ~400-byte browser-like request head for route k of the table. */
function requestFor(routes: readonly RouteMatchSpec[], k: number): Buffer {
  const uri = routes[k].uris[0];
  const path = uri.replace(':id', '12345').replace('*rest', 'a/b').replace(/\*$/, 'app.js');
  const host = routes[k].hosts[0]?.replace('*.', 'www.') ?? 'api.example.org';
  const head = [
    `GET ${path}?expand=true&fields=id,name HTTP/1.1`,
    `Host: ${host}`,
    'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
    'Accept: application/json, text/plain, */*',
    'Accept-Language: en-US,en;q=0.9',
    'Accept-Encoding: gzip, deflate, br',
    'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJl',
    'X-Request-Id: 7f9c2b1e-4d3a-4c5b-9e8f-1a2b3c4d5e6f',
    'Connection: keep-alive',
    '',
    '',
  ].join('\r\n');
  return Buffer.from(head, 'latin1');
}

const CLIENT_IP = Buffer.from([10, 20, 30, 40]);

function parseRouteCases(backends: readonly NativeBackend[]): Case[] {
  const cases: Case[] = [];
  for (const size of [0, 1, 1000, 10000]) {
    const routes = routeTable(Math.max(size, 1));
    const spec = encodeRouterSpec(routes);
    const expected = middleRoute(routes.length);
    const head = requestFor(routes, expected);
    for (const backend of backends) {
      const router = size === 0 ? -1 : backend.routerBuild(spec);
      if (size !== 0 && router < 0) throw new Error(`${backend.name}: routerBuild failed (${router})`);
      const out = new Int32Array(OUT_SIZE);
      const n = backend.parseRequest(head, 0, head.length, router, CLIENT_IP, out);
      if (n !== head.length) throw new Error(`${backend.name}: parseRequest returned ${n}`);
      if (size !== 0 && (out[Out.RouteCount] < 1 || out[Out.Routes] !== expected)) {
        throw new Error(`${backend.name}: routes=${size} matched ${out[Out.Routes]}, expected ${expected}`);
      }
      cases.push({
        row: size === 0 ? 'parse only (router -1)' : `routes=${size}`,
        column: backend.name,
        run(iterations) {
          for (let i = 0; i < iterations; i++) backend.parseRequest(head, 0, head.length, router, CLIENT_IP, out);
        },
        dispose: () => {
          if (router >= 0) backend.routerFree(router);
        },
      });
    }
  }
  return cases;
}

function routerBuildCases(backends: readonly NativeBackend[]): Case[] {
  const spec = encodeRouterSpec(routeTable(10000));
  return backends.map((backend) => ({
    row: 'build 10,000 routes',
    column: backend.name,
    run(iterations) {
      for (let i = 0; i < iterations; i++) backend.routerFree(backend.routerBuild(spec));
    },
  }));
}

const SHDICT_KEYS = 10000;

function sharedDictCases(backends: readonly NativeBackend[]): Case[] {
  const cases: Case[] = [];
  const keys = Array.from({ length: SHDICT_KEYS }, (_, k) => `limit-req:route-${k % 97}:10.0.${k >> 8}.${k & 255}`);
  const textKeys = keys.map((key) => `${key}:text`); // set writes strings, so it keeps off the counters
  for (const backend of backends) {
    const file = sharedDictPath(`bench-${backend.name}-${process.pid}`);
    const dict = openSharedDict(backend, 'bench', 16 * 1024 * 1024, { path: file, fresh: true });
    for (const key of keys) dict.set(key, 1);
    for (const key of textKeys) dict.set(key, 'sixteen-byte-val');
    if (dict.stats().items !== 2 * SHDICT_KEYS) throw new Error(`${backend.name}: shared dict lost keys while filling`);
    let next = 0;
    const dispose = () => {
      dict.close();
      rmSync(file, { force: true });
    };
    cases.push(
      {
        row: 'get (number, hit)',
        column: backend.name,
        run(iterations) {
          for (let i = 0; i < iterations; i++) dict.get(keys[next++ % SHDICT_KEYS]);
        },
      },
      {
        row: 'set (16-byte string)',
        column: backend.name,
        run(iterations) {
          for (let i = 0; i < iterations; i++) dict.set(textKeys[next++ % SHDICT_KEYS], 'sixteen-byte-val');
        },
      },
      {
        row: 'incr (with init)',
        column: backend.name,
        run(iterations) {
          for (let i = 0; i < iterations; i++) dict.incr(keys[next++ % SHDICT_KEYS], 1, 0);
        },
        dispose,
      },
    );
  }
  return cases;
}

const sections: Section[] = [
  { title: 'parse + route (one parseRequest call, ~400-byte head)', unit: 'ns/op', cases: parseRouteCases },
  { title: 'router build', unit: 'ms/op', cases: routerBuildCases },
  { title: 'shared dict (SharedDict calls, one process)', unit: 'ops/s', cases: sharedDictCases },
];

// ---- runner ----

function runSection(section: Section, backends: readonly NativeBackend[]): void {
  const cases = section.cases(backends);
  const iterations = cases.map((c) => {
    c.run(1);
    const end = Date.now() + WARMUP_MS;
    while (Date.now() < end) c.run(16);
    return calibrate((n) => c.run(n));
  });
  const samples = cases.map(() => [] as number[]);
  for (let round = 0; round < ROUNDS; round++) {
    cases.forEach((c, i) => samples[i].push(elapsedNs(() => c.run(iterations[i])) / iterations[i]));
  }
  for (const c of cases) c.dispose?.();

  const rows = [...new Set(cases.map((c) => c.row))];
  const columns = [...new Set(cases.map((c) => c.column))];
  const scale = section.unit === 'ms/op' ? 1e-6 : 1;
  const cell = (row: string, column: string): string => {
    const i = cases.findIndex((c) => c.row === row && c.column === column);
    if (i < 0) return '-';
    const value = section.unit === 'ops/s' ? 1e9 / median(samples[i]) : median(samples[i]) * scale;
    return value.toLocaleString('en-US', { maximumFractionDigits: section.unit === 'ms/op' ? 2 : 0 });
  };
  const rowWidth = Math.max(...rows.map((r) => r.length), section.unit.length);
  console.log(`\n${section.title} — median of ${ROUNDS} rounds, ${section.unit}`);
  console.log(`${section.unit.padEnd(rowWidth)} | ${columns.map((c) => c.padStart(10)).join(' | ')}`);
  console.log(`${'-'.repeat(rowWidth)}-|${columns.map(() => '-'.repeat(12)).join('|')}`);
  for (const row of rows) {
    console.log(`${row.padEnd(rowWidth)} | ${columns.map((c) => cell(row, c).padStart(10)).join(' | ')}`);
  }
}

function main(): void {
  const backends = availableBackends();
  console.log(`bench:native: node ${process.version}, backends ${backends.map((b) => b.name).join(', ')}`);
  const started = Date.now();
  for (const section of sections) runSection(section, backends);
  console.log(`\nbench:native: done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

main();
