import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createBalancer, normalizeNodes, type BalanceContext, type Balancer } from '../../src/dataplane/balancer';
import type { VarValue } from '../../src/core/expr';
import type { Upstream } from '../../src/schema/types';

function chash(nodes: Record<string, number>, extra: Partial<Upstream> = {}): Balancer {
  const upstream: Upstream = { type: 'chash', hash_on: 'vars', key: 'uri', nodes, ...extra };
  return createBalancer(upstream, normalizeNodes(upstream.nodes));
}

function request(vars: Record<string, VarValue>, remoteAddr = '10.0.0.1', consumerName?: string): BalanceContext {
  return { remoteAddr, vars: (name) => vars[name], consumerName };
}

function tenNodes(): Record<string, number> {
  const nodes: Record<string, number> = {};
  for (let i = 1; i <= 10; i++) nodes[`10.1.0.${i}:80`] = 1;
  return nodes;
}

const keys = Array.from({ length: 2000 }, (_, i) => `/item/${i}`);

describe('chash', () => {
  it('sends the same key to the same node, and is stable across rebuilds and node order', () => {
    const first = chash(tenNodes());
    const reordered = chash(Object.fromEntries(Object.entries(tenNodes()).reverse()));
    for (const key of keys.slice(0, 200)) {
      const picked = first.pick(request({ uri: key }))?.address;
      assert.equal(first.pick(request({ uri: key }))?.address, picked);
      assert.equal(chash(tenNodes()).pick(request({ uri: key }))?.address, picked);
      assert.equal(reordered.pick(request({ uri: key }))?.address, picked);
    }
  });

  it('spreads keys over the nodes in proportion to weight', () => {
    const counts = new Map<string, number>();
    const balancer = chash({ 'a:80': 1, 'b:80': 1, 'c:80': 2 });
    for (const key of keys) {
      const address = balancer.pick(request({ uri: key }))?.address ?? '-';
      counts.set(address, (counts.get(address) ?? 0) + 1);
    }
    const share = (address: string) => (counts.get(address) ?? 0) / keys.length;
    assert.ok(share('a:80') > 0.17 && share('a:80') < 0.33, `a ${share('a:80')}`);
    assert.ok(share('b:80') > 0.17 && share('b:80') < 0.33, `b ${share('b:80')}`);
    assert.ok(share('c:80') > 0.4 && share('c:80') < 0.6, `c ${share('c:80')}`);
  });

  it('moves only the keys that the added node takes', () => {
    const before = chash(tenNodes());
    const after = chash({ ...tenNodes(), '10.1.0.11:80': 1 });
    let moved = 0;
    for (const key of keys) {
      const was = before.pick(request({ uri: key }))?.address;
      const now = after.pick(request({ uri: key }))?.address;
      if (was !== now) {
        moved++;
        assert.equal(now, '10.1.0.11:80', 'a key only ever moves to the new node');
      }
    }
    // The new node should take about 1/11 of the keys.
    assert.ok(moved > keys.length * 0.04 && moved < keys.length * 0.16, `moved ${moved}`);
  });

  it('on a retry, walks to the next node that was not tried, the same one for the same key', () => {
    const balancer = chash(tenNodes());
    const ctx = request({ uri: '/retry/me' });
    const first = balancer.pick(ctx);
    assert.ok(first);
    const tried = new Set([first]);
    const second = balancer.pick(ctx, tried);
    assert.ok(second && second !== first);
    assert.equal(balancer.pick(ctx, new Set([first])), second);
    tried.add(second);
    const third = balancer.pick(ctx, tried);
    assert.ok(third && third !== first && third !== second);
    assert.equal(balancer.pick(ctx, new Set(balancer.nodes)), undefined);
  });

  it('falls back to the client address when the key has no value', () => {
    const balancer = chash(tenNodes(), { key: 'arg_user' });
    for (const addr of ['1.1.1.1', '2.2.2.2', '3.3.3.3']) {
      const byAddress = balancer.pick(request({}, addr))?.address;
      const byKeyEqualToAddress = balancer.pick(request({ arg_user: addr }, '9.9.9.9'))?.address;
      assert.equal(byAddress, byKeyEqualToAddress);
    }
  });

  it('hashes a header, a cookie and the consumer name', () => {
    const header = chash(tenNodes(), { hash_on: 'header', key: 'X-User-Id' });
    const cookie = chash(tenNodes(), { hash_on: 'cookie', key: 'sid' });
    const consumer = chash(tenNodes(), { hash_on: 'consumer' });
    const byVar = chash(tenNodes(), { key: 'k' });
    for (const value of ['alice', 'bob', 'carol', 'dave']) {
      const expected = byVar.pick(request({ k: value }))?.address;
      assert.equal(header.pick(request({ http_x_user_id: value }))?.address, expected);
      assert.equal(cookie.pick(request({ cookie_sid: value }))?.address, expected);
      assert.equal(consumer.pick(request({}, '10.0.0.1', value))?.address, expected);
    }
    assert.equal(consumer.pick(request({}, '7.7.7.7'))?.address, byVar.pick(request({ k: '7.7.7.7' }))?.address);
  });

  it('hashes vars_combinations as the interpolated string', () => {
    const combined = chash(tenNodes(), { hash_on: 'vars_combinations', key: '$request_uri-${arg_a}' });
    const byVar = chash(tenNodes(), { key: 'k' });
    for (const [uri, arg] of [
      ['/a', '1'],
      ['/b', '2'],
      ['/c', 'x'],
    ]) {
      assert.equal(
        combined.pick(request({ request_uri: uri, arg_a: arg }))?.address,
        byVar.pick(request({ k: `${uri}-${arg}` }))?.address,
      );
    }
    assert.equal(
      combined.pick(request({ request_uri: '/only' }))?.address,
      byVar.pick(request({ k: '/only-' }))?.address,
      'a missing variable is empty',
    );
    assert.equal(
      combined.pick(request({}, '5.5.5.5'))?.address,
      byVar.pick(request({ k: '5.5.5.5' }))?.address,
      'nothing resolved falls back to the client address',
    );
  });

  it('uses the client address when no key is configured', () => {
    const balancer = chash(tenNodes(), { key: undefined });
    const byVar = chash(tenNodes(), { key: 'k' });
    assert.equal(balancer.pick(request({}, '4.4.4.4'))?.address, byVar.pick(request({ k: '4.4.4.4' }))?.address);
  });

  it('hashes IPv6 nodes and never picks a node of weight 0', () => {
    const balancer = chash({ '[::1]:8080': 1, '[::2]:8080': 1, '10.0.0.1:80': 0 });
    const seen = new Set<string>();
    for (const key of keys.slice(0, 200)) seen.add(balancer.pick(request({ uri: key }))?.address ?? '-');
    assert.deepEqual([...seen].sort(), ['[::1]:8080', '[::2]:8080']);
  });

  it('bounds the ring for large weights and still spreads by weight', () => {
    const balancer = chash({ 'a:80': 1000, 'b:80': 3000 });
    let a = 0;
    for (const key of keys) if (balancer.pick(request({ uri: key }))?.host === 'a') a++;
    assert.ok(a > keys.length * 0.15 && a < keys.length * 0.35, `a ${a}`);
  });
});
