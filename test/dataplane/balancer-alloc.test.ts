// pick() runs per request: with no tried nodes it must not allocate, with or
// without a health view. Measured in a child process started with --expose-gc
// and a young generation large enough that no collection runs during the
// measured loop; a real allocation costs at least 16 bytes per pick.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';

const balancerModule = path.resolve(__dirname, '../../src/dataplane/balancer');

const script = `
const { createBalancer, normalizeNodes } = require(${JSON.stringify(balancerModule)});
const vars = { uri: '/api/v1/items', remote_addr: '10.0.0.9' };
const ctx = { remoteAddr: '10.0.0.9', vars: (name) => vars[name] };
const health = { isHealthy: () => true };
const results = {};
let sink = 0;
// Best of three: a run during which the JIT re-optimises fn can show a
// transient allocation; a real per-pick allocation shows in every run.
function measure(name, fn) {
  for (let i = 0; i < 200000; i++) fn();
  let best = Infinity;
  for (let run = 0; run < 3; run++) {
    gc();
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 1000000; i++) fn();
    best = Math.min(best, (process.memoryUsage().heapUsed - before) / 1000000);
  }
  results[name] = best;
}
for (const type of ['roundrobin', 'chash', 'least_conn', 'ewma']) {
  const upstream = { type, key: 'uri', nodes: { 'a:80': 3, 'b:80': 1, 'c:80': 2 } };
  const nodes = normalizeNodes(upstream.nodes);
  const plain = createBalancer(upstream, nodes);
  const checked = createBalancer(upstream, nodes, health);
  measure(type, () => {
    const node = plain.pick(ctx);
    if (plain.begin) plain.begin(node);
    if (plain.end) plain.end(node, 3, false);
    sink += node.port;
  });
  measure(type + ' with health', () => {
    sink += checked.pick(ctx).port;
  });
}
process.stdout.write(JSON.stringify({ results, sink }));
`;

describe('balancer hot path', () => {
  it('pick, begin and end allocate nothing', () => {
    const output = execFileSync(
      process.execPath,
      ['--expose-gc', '--min-semi-space-size=128', '--max-semi-space-size=128', '-e', script],
      {
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    const { results, sink } = JSON.parse(output) as { results: Record<string, number>; sink: number };
    assert.ok(sink > 0);
    for (const [name, bytesPerPick] of Object.entries(results)) {
      assert.ok(bytesPerPick < 4, `${name}: ${bytesPerPick.toFixed(2)} bytes per pick`);
    }
  });
});
