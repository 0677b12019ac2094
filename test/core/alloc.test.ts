// Evaluating a compiled `vars` expression and matching a CIDR list run per
// request: they must not allocate (measured as test/helpers/alloc.ts explains).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { measureAllocations } from '../helpers/alloc';

const distSrc = path.resolve(__dirname, '../../src');

const body = `
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
measure('expr', () => { if (expr(lookup)) sink++; });
measure('cidr ipv4', () => { if (cidr.match('10.2.3.4')) sink++; });
measure('cidr ipv6', () => { if (cidr.match('2001:db8::1')) sink++; });
measure('cidr mapped', () => { if (cidr.match('::ffff:10.2.3.4')) sink++; });
`;

describe('hot paths allocate nothing', () => {
  it('expression evaluation and CIDR matching', () => {
    const { results, sink } = measureAllocations(body);
    assert.ok(sink > 0);
    for (const [name, bytesPerCall] of Object.entries(results)) {
      assert.ok(bytesPerCall < 4, `${name}: ${bytesPerCall.toFixed(2)} bytes per call`);
    }
  });
});
