// bench:instructions reads callgrind's profile files itself (no valgrind runs in the test suite): a small
// hand-written dump in callgrind's format with compressed names, relative positions, calls, recursion and V8's
// compile and GC entry points, and the dump files' order.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  costInside,
  dumpFiles,
  inclusiveCost,
  largestDifferences,
  parseCallgrind,
  parsePerfMap,
  selfCostsByName,
  v8Costs,
} from '../../bench/lib/callgrind';

const COMPILE = 'v8::internal::Runtime_CompileOptimized(int, unsigned long*, v8::internal::Isolate*)';
const COLLECT =
  'v8::internal::Heap::CollectGarbage(v8::internal::AllocationSpace, v8::internal::GarbageCollectionReason)';
const ADVANCE = 'v8::internal::IncrementalMarking::AdvanceOnAllocation()';
const STEP = 'v8::internal::IncrementalMarking::Step(double, unsigned long)';

// Self costs: main 150, compile 200, collect 100, work 500 (its recursive call's 90 is already in its lines),
// advance 30, step 70. `summary:` differs from `totals:` as in callgrind's own dumps; totals is the sum of the lines.
const DUMP = `# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 4242
cmd:  node --single-threaded bench.js
part: 2

desc: I1 cache: 
desc: Timerange: Basic block 1000 - 2000
desc: Trigger: dump risk

positions: line
events: Ir
summary: 1000

ob=(1) /usr/bin/node
fl=(1) ???
fn=(1) main
0 100
cfn=(2) ${COMPILE}
calls=1 0
0 300
+2 50
cfn=(3) work
calls=10 0
0 500
cfn=(5) ${ADVANCE}
calls=2 0
0 100

fn=(2)
0 200
cfn=(4) ${COLLECT}
calls=1 0
0 100

fn=(4)
* 100

fl=(2) work.js
fn=(3)
5 400
cfn=(3)
calls=3 +1
* 90
-1 100

fn=(5)
0 30
cfn=(6) ${STEP}
calls=2 0
0 70

fn=(6)
0 70

totals: 1050
`;

describe('callgrind profile reader', () => {
  const profile = parseCallgrind(DUMP);

  it('reads the trigger, the events and the totals line over the summary', () => {
    assert.equal(profile.trigger, 'dump risk');
    assert.deepEqual(profile.events, ['Ir']);
    assert.deepEqual(profile.totals, [1050]);
  });

  it('keeps self costs apart from the cost lines of calls, through compressed names and relative positions', () => {
    assert.deepEqual(Object.fromEntries(profile.self), {
      main: 150,
      [COMPILE]: 200,
      [COLLECT]: 100,
      work: 500,
      [ADVANCE]: 30,
      [STEP]: 70,
    });
    const selfSum = [...profile.self.values()].reduce((sum, cost) => sum + cost, 0);
    assert.equal(selfSum, 1050);
    assert.equal(profile.calls.get('main')?.get('work'), 500);
    assert.equal(profile.calls.get('work')?.get('work'), 90);
  });

  it('inclusive cost: self plus calls to other functions, a recursive call not counted again', () => {
    assert.equal(inclusiveCost(profile, 'main'), 1050);
    assert.equal(inclusiveCost(profile, COMPILE), 300);
    assert.equal(inclusiveCost(profile, 'work'), 500);
    assert.equal(inclusiveCost(profile, 'nobody'), 0);
  });

  it('cost inside matching functions counts a direct nested entry once', () => {
    assert.equal(costInside(profile, [/IncrementalMarking::/]), 100);
    assert.equal(costInside(profile, [/^main$/]), 1050);
    assert.equal(costInside(profile, [/^nothing$/]), 0);
  });

  it('splits a dump into total, compile and GC as bench:instructions reports it', () => {
    // GC: the collection inside the compile (100) and the incremental marking (100).
    assert.deepEqual(v8Costs(profile), { total: 1050, compile: 300, gc: 200 });
  });

  it('without compression, with two events, trailing zero costs left out and no totals line', () => {
    const plain = parseCallgrind(
      [
        'events: Ir Dr',
        'positions: line',
        'fn=a',
        '1 10 4',
        '2 5',
        'cfn=b',
        'calls=1 3',
        '3 7 1',
        'fn=b',
        '3 7 1',
      ].join('\n'),
    );
    assert.deepEqual(plain.events, ['Ir', 'Dr']);
    assert.deepEqual(Object.fromEntries(plain.self), { a: 15, b: 7 });
    assert.deepEqual(plain.totals, [22]);
    assert.equal(inclusiveCost(plain, 'a'), 22);
  });

  it('instruction-level positions: the cost is after both position columns', () => {
    const withAddresses = parseCallgrind(
      ['positions: instr line', 'events: Ir', 'fn=x', '0x401000 12 9', '+4 * 3'].join('\n'),
    );
    assert.deepEqual(Object.fromEntries(withAddresses.self), { x: 12 });
  });
});

describe('naming JIT code and comparing functions', () => {
  // V8 reused 0x1000..0x1040 for another function: the later line wins.
  const perfMap = parsePerfMap(
    [
      '1000 40 JS:*oldHandler /build/b/dist/a.js:1:1',
      '2000 20 JS:~parseHead /build/b/dist/head.js:10:3',
      'junk line',
      '1000 40 JS:*handle /build/b/dist/b.js:2:2',
      '3000 10 JS:*drive /build/a/dist/bench/instructions.js:5:1',
    ].join('\n'),
  );

  it('reads the perf map: hex start and size, the rest is the name', () => {
    assert.deepEqual(perfMap[1], { start: 0x2000, end: 0x2020, name: 'JS:~parseHead /build/b/dist/head.js:10:3' });
    assert.equal(perfMap.length, 4);
  });

  it('names JIT addresses by the last covering entry without the checkout and line, keeps unknown ones, folds TurboFan', () => {
    const profile = parseCallgrind(
      [
        'events: Ir',
        'fn=(1) 0x0000000000001010',
        '0 10',
        'fn=(2) 0x0000000000002000',
        '0 5',
        'fn=(3) 0x0000000000009000',
        '0 7',
        'fn=(4) v8::internal::compiler::Pipeline::Run()',
        '0 3',
        'fn=(5) v8::internal::compiler::Typer::Run()',
        '0 4',
        'fn=(6) uv__io_poll',
        '0 1',
        'fn=(7) 0x0000000000003004',
        '0 2',
      ].join('\n'),
    );
    assert.deepEqual(Object.fromEntries(selfCostsByName(profile, perfMap, ['/build/b', '/build/a'])), {
      'JS:*handle dist/b.js': 10,
      'JS:~parseHead dist/head.js': 5,
      'JIT 0x0000000000009000': 7,
      '(TurboFan compiler)': 7,
      uv__io_poll: 1,
      'JS:*drive dist/bench/instructions.js': 2,
    });
  });

  it('lists the largest changes first, functions on one side only included, equal ones left out', () => {
    const a = new Map([
      ['same', 100],
      ['faster', 500],
      ['gone', 40],
    ]);
    const b = new Map([
      ['same', 100],
      ['faster', 300],
      ['new', 60],
    ]);
    assert.deepEqual(largestDifferences(a, b, 2), [
      { name: 'faster', a: 500, b: 300 },
      { name: 'new', a: 0, b: 60 },
    ]);
    assert.equal(largestDifferences(a, b, 10).length, 3);
  });
});

describe('callgrind dump files', () => {
  it('lists out.1, out.2, ... out.10 in dump order and leaves out the exit dump and other files', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-callgrind-test-'));
    try {
      const out = path.join(dir, 'callgrind.out');
      for (const name of ['callgrind.out', 'callgrind.out.10', 'callgrind.out.2', 'callgrind.out.1', 'other.out.3']) {
        fs.writeFileSync(path.join(dir, name), '');
      }
      assert.deepEqual(
        dumpFiles(out).map((file) => path.basename(file)),
        ['callgrind.out.1', 'callgrind.out.2', 'callgrind.out.10'],
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
