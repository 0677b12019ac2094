// Evaluating a compiled `vars` expression and matching a CIDR list run per
// request: they must not allocate. Measured in a child process started with
// --expose-gc and a young generation large enough that no collection runs
// during the measured loop; a real allocation costs at least 16 bytes per call,
// while JIT warm-up leaves well under one byte per call over a million calls.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';

const distSrc = path.resolve(__dirname, '../../src');

const script = `
const { compileExpr } = require(${JSON.stringify(path.join(distSrc, 'core/expr'))});
const { parseCidrList } = require(${JSON.stringify(path.join(distSrc, 'core/cidr'))});
const vars = { arg_a: '1', http_x: 'Hello', remote_addr: '10.1.2.3', uri: '/api/v1/x', arg_n: '42', roles: ['a', 'b'] };
const lookup = (name) => vars[name];
const expr = compileExpr([
  'OR',
  ['AND', ['arg_a', '==', 1], ['http_x', '~*', '^hel'], ['remote_addr', 'ipmatch', ['10.0.0.0/8', '::1']], ['roles', 'has', 'b']],
  [['arg_n', '>', 5], ['uri', 'in', ['/a', '/b']], ['arg_z', '!', '==', null]],
]);
const cidr = parseCidrList(['192.168.0.0/16', '10.0.0.0/8', '2001:db8::/32']);
const results = {};
let sink = 0;
function measure(name, fn) {
  for (let i = 0; i < 200000; i++) fn();
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < 1000000; i++) fn();
  results[name] = (process.memoryUsage().heapUsed - before) / 1000000;
}
measure('expr', () => { if (expr(lookup)) sink++; });
measure('cidr ipv4', () => { if (cidr.match('10.2.3.4')) sink++; });
measure('cidr ipv6', () => { if (cidr.match('2001:db8::1')) sink++; });
measure('cidr mapped', () => { if (cidr.match('::ffff:10.2.3.4')) sink++; });
process.stdout.write(JSON.stringify({ results, sink }));
`;

describe('hot paths allocate nothing', () => {
  it('expression evaluation and CIDR matching', () => {
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
    for (const [name, bytesPerCall] of Object.entries(results)) {
      assert.ok(bytesPerCall < 4, `${name}: ${bytesPerCall.toFixed(2)} bytes per call`);
    }
  });
});
