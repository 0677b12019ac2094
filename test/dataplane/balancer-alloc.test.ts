// pick() runs per request: with no tried nodes it must not allocate, with or
// without a health view. Measured in a child process started with --expose-gc
// and a young generation large enough that no collection runs during the
// measured loop; a real allocation costs at least 16 bytes per pick.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { measureAllocations } from '../helpers/alloc';

const balancerModule = path.resolve(__dirname, '../../src/dataplane/balancer');

const body = `
const { createBalancer, normalizeNodes } = require(${JSON.stringify(balancerModule)});
const vars = { uri: '/api/v1/items', remote_addr: '10.0.0.9' };
const ctx = { remoteAddr: '10.0.0.9', vars: (name) => vars[name] };
const health = { isHealthy: () => true };
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
`;

describe('balancer hot path', () => {
  it('pick, begin and end allocate nothing', () => {
    const { results, sink } = measureAllocations(body);
    assert.ok(sink > 0);
    for (const [name, bytesPerPick] of Object.entries(results)) {
      assert.ok(bytesPerPick < 4, `${name}: ${bytesPerPick.toFixed(2)} bytes per pick`);
    }
  });
});
