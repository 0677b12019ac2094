// Valgrind's callgrind for bench:instructions: the command line that runs a
// program under it, callgrind_control's zero and dump, and a reader of the
// profile files it writes (format: valgrind's docs/callgrind-format).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { run } from './children';

/**
 * The valgrind arguments that run `command` under callgrind, writing `outFile` at exit and `outFile.<n>` at each
 * dump. Line-level positions and no jump records: the benchmark needs function costs only, and smaller files.
 */
export function callgrindArgs(outFile: string, command: string[]): string[] {
  return ['--tool=callgrind', `--callgrind-out-file=${outFile}`, '--dump-instr=no', '--collect-jumps=no', ...command];
}

/** callgrind_control -z: reset every counter of the process `pid` to zero. */
export async function zeroCounters(pid: number, timeoutMs: number): Promise<void> {
  await run('callgrind_control', ['-z', String(pid)], timeoutMs);
}

/** callgrind_control -d: write the counters since the last zero to the next `outFile.<n>`, `reason` as its trigger. */
export async function dumpCounters(pid: number, reason: string, timeoutMs: number): Promise<void> {
  await run('callgrind_control', ['-d', reason, String(pid)], timeoutMs);
}

/** The dump files of `outFile`, oldest first (`outFile.1`, `outFile.2`, ...; the exit dump `outFile` is left out). */
export function dumpFiles(outFile: string): string[] {
  const dir = path.dirname(outFile);
  const base = path.basename(outFile);
  return fs
    .readdirSync(dir)
    .map((name) => /^(.*)\.(\d+)$/.exec(name))
    .filter((match): match is RegExpExecArray => match !== null && match[1] === base)
    .sort((a, b) => Number(a[2]) - Number(b[2]))
    .map((match) => path.join(dir, match[0]));
}

export interface CallgrindProfile {
  /** The dump's trigger (`desc: Trigger: ...`): "dump <reason>" for callgrind_control -d <reason>, or "Program termination". */
  trigger: string;
  /** Event names, in the order of the cost columns (`events:`), e.g. ['Ir']. */
  events: string[];
  /** Total cost of the dump for each event (`totals:`, else `summary:`, else the sum of every self cost). */
  totals: number[];
  /** Self cost of the first event by function name. */
  self: Map<string, number>;
  /** Cost of the first event of the calls made, caller name -> callee name -> the calls' inclusive cost. */
  calls: Map<string, Map<string, number>>;
}

/** Compressed names: "(12) name" defines id 12, "(12)" refers to it later in the same file; plain "name" as is. */
function nameOf(value: string, table: Map<string, string>): string {
  const match = /^\((\d+)\)(?:\s(.*))?$/.exec(value);
  if (match === null) return value;
  if (match[2] !== undefined) {
    table.set(match[1], match[2]);
    return match[2];
  }
  return table.get(match[1]) ?? `(${match[1]})`;
}

function addCost(map: Map<string, number>, name: string, cost: number): void {
  map.set(name, (map.get(name) ?? 0) + cost);
}

function numbers(text: string): number[] {
  return text
    .trim()
    .split(/\s+/)
    .filter((token) => token !== '')
    .map(Number);
}

/** Read one callgrind profile file's text. Costs beyond the first event are kept only in `totals`. */
export function parseCallgrind(text: string): CallgrindProfile {
  const functionNames = new Map<string, string>();
  const self = new Map<string, number>();
  const calls = new Map<string, Map<string, number>>();
  let trigger = '';
  let events = ['Ir'];
  let positions = 1;
  let totals: number[] | undefined;
  let summary: number[] | undefined;
  let currentFunction = '';
  let calledFunction = '';
  // The line after `calls=` is the call's inclusive cost, not the caller's own.
  let nextLineIsCall = false;
  let sumOfSelf = 0;

  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const first = line.charCodeAt(0);
    const isCostLine = (first >= 48 && first <= 57) || line[0] === '+' || line[0] === '-' || line[0] === '*';
    if (isCostLine) {
      const fields = line.trim().split(/\s+/);
      const cost = fields.length > positions ? Number(fields[positions]) : 0;
      if (nextLineIsCall) {
        let callees = calls.get(currentFunction);
        if (callees === undefined) calls.set(currentFunction, (callees = new Map()));
        addCost(callees, calledFunction, cost);
        nextLineIsCall = false;
      } else {
        addCost(self, currentFunction, cost);
        sumOfSelf += cost;
      }
      continue;
    }
    const equals = line.indexOf('=');
    const colon = line.indexOf(':');
    if (equals > 0 && (colon < 0 || equals < colon)) {
      const key = line.slice(0, equals);
      const value = line.slice(equals + 1);
      if (key === 'fn') currentFunction = nameOf(value, functionNames);
      else if (key === 'cfn') calledFunction = nameOf(value, functionNames);
      else if (key === 'calls') nextLineIsCall = true;
      // fl/fi/fe/ob/cob/cfi/cfl name files and objects; jump/jcnd are not collected (--collect-jumps=no).
      continue;
    }
    if (colon > 0) {
      const key = line.slice(0, colon);
      const value = line.slice(colon + 1).trim();
      if (key === 'events') events = value.split(/\s+/);
      else if (key === 'positions') positions = value.split(/\s+/).length;
      else if (key === 'totals') totals = numbers(value);
      else if (key === 'summary') summary = numbers(value);
      else if (key === 'desc' && value.startsWith('Trigger:')) trigger = value.slice('Trigger:'.length).trim();
    }
  }

  return { trigger, events, totals: totals ?? summary ?? [sumOfSelf], self, calls };
}

export function readCallgrindFile(file: string): CallgrindProfile {
  return parseCallgrind(fs.readFileSync(file, 'utf8'));
}

/**
 * The inclusive cost of one function: its self cost and the cost of its calls to other functions (a recursive call's
 * cost is already in the function's own lines).
 */
export function inclusiveCost(profile: CallgrindProfile, name: string): number {
  let cost = profile.self.get(name) ?? 0;
  for (const [callee, callCost] of profile.calls.get(name) ?? []) if (callee !== name) cost += callCost;
  return cost;
}

/**
 * The cost spent inside functions whose names match `patterns`, each entry counted once: calls into a matching
 * function from one that does not match, plus the inclusive cost of a matching function nobody in the dump calls. A
 * matching function calling another directly (AdvanceOnAllocation -> Step) is not counted twice; through a function
 * that does not match it would be, as callgrind keeps one cost per caller/callee pair, not per call stack.
 */
export function costInside(profile: CallgrindProfile, patterns: readonly RegExp[]): number {
  const matches = (name: string): boolean => patterns.some((pattern) => pattern.test(name));
  const called = new Set<string>();
  let sum = 0;
  for (const [caller, callees] of profile.calls) {
    for (const [callee, cost] of callees) {
      called.add(callee);
      if (matches(callee) && !matches(caller)) sum += cost;
    }
  }
  for (const name of profile.self.keys()) if (matches(name) && !called.has(name)) sum += inclusiveCost(profile, name);
  return sum;
}

/**
 * V8 compiling inside a measured window (inclusive cost, left out of the per-request figure): lazy and baseline
 * compiles, and TurboFan (Maglev is off in Node 20), all on the main thread with --single-threaded.
 */
export const COMPILE_FUNCTIONS: readonly RegExp[] = [
  /^v8::internal::Runtime_CompileOptimized\w*\(/,
  /^v8::internal::Runtime_CompileLazy\(/,
  /^v8::internal::Runtime_CompileBaseline\(/,
  /^v8::internal::Runtime_InstallBaselineCode\(/,
  /^v8::internal::baseline::BaselineBatchCompiler::CompileBatch\w*\(/,
];
/**
 * Garbage collection: every collection goes through Heap::CollectGarbage (the unmapper and the minor-GC task run
 * inside it or call it), incremental marking steps outside it. Reported apart; it stays in the per-request figure, as
 * a plugin's garbage is its cost. No concurrent marking with --single-threaded. Left out: sweeping that an allocation
 * does on its way (Sweeper::RawSweep under RefillLab, outside a collection): the same function also runs inside
 * scavenges, and callgrind's one cost per caller/callee pair cannot tell the two apart.
 */
export const GC_FUNCTIONS: readonly RegExp[] = [
  /^v8::internal::Heap::CollectGarbage\(/,
  /^v8::internal::IncrementalMarking::AdvanceOnAllocation\(/,
  /^v8::internal::IncrementalMarking::Step\(/,
];

/**
 * A dump of a node process split the way bench:instructions reports it: the whole count of the first event, the part
 * spent compiling and the part spent collecting garbage (a collection inside a compile is in both).
 */
export function v8Costs(profile: CallgrindProfile): { total: number; compile: number; gc: number } {
  return {
    total: profile.totals[0],
    compile: costInside(profile, COMPILE_FUNCTIONS),
    gc: costInside(profile, GC_FUNCTIONS),
  };
}

/** One line of V8's perf map (/tmp/perf-<pid>.map, "start size name", hex): JIT code and the JS function it runs. */
export interface PerfMapEntry {
  start: number;
  end: number;
  name: string;
}

export function parsePerfMap(text: string): PerfMapEntry[] {
  const entries: PerfMapEntry[] = [];
  for (const line of text.split('\n')) {
    const match = /^([0-9a-f]+) ([0-9a-f]+) (.*)$/i.exec(line);
    if (match === null) continue;
    const start = parseInt(match[1], 16);
    entries.push({ start, end: start + parseInt(match[2], 16), name: match[3] });
  }
  return entries;
}

/**
 * Self cost by function, with callgrind's unnamed JIT code ("0x..." in no object file) named by the perf map entry
 * covering its address (the last one: V8 reuses code space), and TurboFan's many functions counted as one. JS names
 * lose the checkout directories in `sourceRoots` and their line:column, so the same function of two checkouts has one
 * name ("JS:*copyBytes dist/src/dataplane/head.js"; `*` optimized, `^` baseline, `~` interpreted).
 */
export function selfCostsByName(
  profile: CallgrindProfile,
  perfMap: readonly PerfMapEntry[],
  sourceRoots: readonly string[] = [],
): Map<string, number> {
  // Longest first, so a checkout inside another loses its whole path.
  const roots = sourceRoots.map((root) => (root.endsWith('/') ? root : `${root}/`)).sort((a, b) => b.length - a.length);
  const withoutRoots = (name: string): string => roots.reduce((shown, root) => shown.split(root).join(''), name);
  const jitNames = new Map<string, string>();
  const jitName = (address: string): string => {
    let name = jitNames.get(address);
    if (name === undefined) {
      const value = parseInt(address, 16);
      let covering: string | undefined;
      for (const entry of perfMap) if (entry.start <= value && value < entry.end) covering = entry.name;
      name = covering === undefined ? `JIT ${address}` : withoutRoots(covering).replace(/:\d+:\d+$/, '');
      jitNames.set(address, name);
    }
    return name;
  };
  const costs = new Map<string, number>();
  for (const [name, cost] of profile.self) {
    const shown = /^0x[0-9a-f]+$/.test(name)
      ? jitName(name)
      : name.includes('v8::internal::compiler::')
        ? '(TurboFan compiler)'
        : name;
    addCost(costs, shown, cost);
  }
  return costs;
}

export interface FunctionDifference {
  name: string;
  a: number;
  b: number;
}

/** The `count` functions whose self cost differs most between `a` and `b` (largest |b − a| first). */
export function largestDifferences(
  a: ReadonlyMap<string, number>,
  b: ReadonlyMap<string, number>,
  count: number,
): FunctionDifference[] {
  const names = new Set([...a.keys(), ...b.keys()]);
  return [...names]
    .map((name) => ({ name, a: a.get(name) ?? 0, b: b.get(name) ?? 0 }))
    .filter((difference) => difference.a !== difference.b)
    .sort((x, y) => Math.abs(y.b - y.a) - Math.abs(x.b - x.a))
    .slice(0, count);
}
