// Health on the per-request path must not allocate: a pick through an
// UpstreamHealth view (one node unhealthy) and a passive report of a good
// status on a healthy node. Measured in a child process started with
// --expose-gc and a young generation large enough that no collection runs
// during the measured loop, as test/dataplane/balancer-alloc.test.ts does.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { availableBackends } from '../helpers/backends';

const modules = {
  native: path.resolve(__dirname, '../../src/native'),
  shdict: path.resolve(__dirname, '../../src/native/shdict'),
  balancer: path.resolve(__dirname, '../../src/dataplane/balancer'),
  health: path.resolve(__dirname, '../../src/health/upstream-health'),
};

const script = `
const { loadBackend } = require(${JSON.stringify(modules.native)});
const { openSharedDict } = require(${JSON.stringify(modules.shdict)});
const { createBalancer, normalizeNodes } = require(${JSON.stringify(modules.balancer)});
const { UpstreamHealth } = require(${JSON.stringify(modules.health)});
const [backendName, file] = process.argv.slice(1);
const dict = openSharedDict(loadBackend(backendName), 'alloc', 1 << 20, { path: file, fresh: true });
const upstream = {
  nodes: { '10.0.0.1:80': 1, '10.0.0.2:80': 1, '10.0.0.3:80': 1 },
  checks: { active: {}, passive: {} },
};
const nodes = normalizeNodes(upstream.nodes);
dict.set('health/u/10.0.0.2:80/state', 0);
const health = new UpstreamHealth(dict, 'u', upstream, nodes);
const balancer = createBalancer(upstream, nodes, health);
const ctx = { remoteAddr: '10.0.0.9', vars: () => undefined };
const results = {};
let sink = 0;
function measure(name, fn) {
  for (let i = 0; i < 100000; i++) fn();
  let best = Infinity;
  for (let run = 0; run < 3; run++) {
    gc();
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 300000; i++) fn();
    best = Math.min(best, (process.memoryUsage().heapUsed - before) / 300000);
  }
  results[name] = best;
}
let unhealthyPicks = 0;
measure('pick', () => {
  const node = balancer.pick(ctx);
  if (node === nodes[1]) unhealthyPicks++;
  sink += node.port;
});
measure('passive success', () => {
  health.status(nodes[0], 200);
});
if (unhealthyPicks > 0) sink = -1;
dict.close();
process.stdout.write(JSON.stringify({ results, sink }));
`;

describe('health hot path', () => {
  let directory: string;
  before(() => {
    directory = mkdtempSync(path.join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'palisade-health-alloc-'));
  });
  after(() => rmSync(directory, { recursive: true, force: true }));

  for (const backend of availableBackends()) {
    it(`a pick with a health view and a passive success allocate nothing (${backend.name})`, () => {
      const output = execFileSync(
        process.execPath,
        [
          '--expose-gc',
          '--min-semi-space-size=128',
          '--max-semi-space-size=128',
          '-e',
          script,
          backend.name,
          path.join(directory, backend.name),
        ],
        { encoding: 'utf8', timeout: 60_000 },
      );
      const { results, sink } = JSON.parse(output) as { results: Record<string, number>; sink: number };
      assert.ok(sink > 0, 'the unhealthy node was never picked');
      for (const [name, bytes] of Object.entries(results)) {
        assert.ok(bytes < 4, `${name}: ${bytes.toFixed(2)} bytes per call`);
      }
    });
  }
});
