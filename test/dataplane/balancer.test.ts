import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  createBalancer,
  normalizeNodes,
  type BalanceContext,
  type Balancer,
  type BalancerNode,
  type HealthView,
} from '../../src/dataplane/balancer';
import type { Upstream, UpstreamNode } from '../../src/schema/types';

const ctx: BalanceContext = { remoteAddr: '127.0.0.1', vars: () => undefined };

function node(host: string, weight = 1, priority = 0, port = 80): UpstreamNode {
  return { host, port, weight, priority };
}

function build(type: Upstream['type'], nodes: UpstreamNode[], health?: HealthView): Balancer {
  const upstream: Upstream = { type, nodes };
  return createBalancer(upstream, normalizeNodes(upstream.nodes), health);
}

function picks(balancer: Balancer, count: number, tried?: ReadonlySet<BalancerNode>): string[] {
  return Array.from({ length: count }, () => balancer.pick(ctx, tried)?.host ?? '-');
}

function countPicks(balancer: Balancer, count: number): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const host of picks(balancer, count)) counts[host] = (counts[host] ?? 0) + 1;
  return counts;
}

function nodeNamed(balancer: Balancer, host: string): BalancerNode {
  const found = balancer.nodes.find((candidate) => candidate.host === host);
  assert.ok(found, host);
  return found;
}

/** A health view whose unhealthy set the test changes. */
function healthOf(unhealthy: Set<string>): HealthView {
  return { isHealthy: (candidate) => !unhealthy.has(candidate.host) };
}

describe('normalizeNodes', () => {
  it('reads the map form, with IPv6 and default ports', () => {
    const nodes = normalizeNodes({ '127.0.0.1:8080': 2, 'example.com': 1, '[::1]:9000': 3, '[::2]': 1, '::3': 1 });
    assert.deepEqual(
      nodes.map((n) => [n.host, n.port, n.weight, n.priority, n.address]),
      [
        ['127.0.0.1', 8080, 2, 0, '127.0.0.1:8080'],
        ['example.com', 80, 1, 0, 'example.com:80'],
        ['::1', 9000, 3, 0, '[::1]:9000'],
        ['::2', 80, 1, 0, '[::2]:80'],
        ['::3', 80, 1, 0, '[::3]:80'],
      ],
    );
  });

  it('reads the array form with priority, and strips brackets from IPv6 hosts', () => {
    const nodes = normalizeNodes([
      { host: '10.0.0.1', port: 81, weight: 5, priority: 2 },
      { host: '[fe80::1]', port: 82, weight: 1 },
      { host: 'svc', weight: 0 } as UpstreamNode,
    ]);
    assert.deepEqual(
      nodes.map((n) => [n.host, n.port, n.weight, n.priority, n.address]),
      [
        ['10.0.0.1', 81, 5, 2, '10.0.0.1:81'],
        ['fe80::1', 82, 1, 0, '[fe80::1]:82'],
        ['svc', 80, 0, 0, 'svc:80'],
      ],
    );
  });

  it('returns an empty list for no nodes', () => {
    assert.deepEqual(normalizeNodes(undefined), []);
    assert.deepEqual(normalizeNodes({}), []);
    assert.equal(build('roundrobin', []).pick(ctx), undefined);
  });
});

describe('roundrobin', () => {
  it('is smooth: weights 5,1,1 give a a b a c a a', () => {
    const balancer = build('roundrobin', [node('a', 5), node('b', 1), node('c', 1)]);
    assert.deepEqual(picks(balancer, 14), ['a', 'a', 'b', 'a', 'c', 'a', 'a', 'a', 'a', 'b', 'a', 'c', 'a', 'a']);
  });

  it('alternates equal weights and follows weights over many picks', () => {
    assert.deepEqual(picks(build(undefined, [node('a'), node('b')]), 4), ['a', 'b', 'a', 'b']);
    const counts = countPicks(build('roundrobin', [node('a', 3), node('b', 2), node('c', 1)]), 600);
    assert.deepEqual(counts, { a: 300, b: 200, c: 100 });
  });

  it('never picks a node of weight 0', () => {
    const balancer = build('roundrobin', [node('a', 0), node('b', 1)]);
    assert.deepEqual(picks(balancer, 3), ['b', 'b', 'b']);
    assert.equal(build('roundrobin', [node('a', 0)]).pick(ctx), undefined);
  });

  it('skips tried nodes on a retry', () => {
    const balancer = build('roundrobin', [node('a'), node('b'), node('c')]);
    const tried = new Set([nodeNamed(balancer, 'a'), nodeNamed(balancer, 'b')]);
    assert.deepEqual(picks(balancer, 3, tried), ['c', 'c', 'c']);
    tried.add(nodeNamed(balancer, 'c'));
    assert.equal(balancer.pick(ctx, tried), undefined);
    assert.equal(balancer.pick(ctx, new Set())?.host !== undefined, true);
  });

  it('skips unhealthy nodes', () => {
    const unhealthy = new Set(['b']);
    const balancer = build('roundrobin', [node('a'), node('b'), node('c')], healthOf(unhealthy));
    assert.deepEqual(picks(balancer, 4), ['a', 'c', 'a', 'c']);
  });
});

describe('priority groups', () => {
  const types: Upstream['type'][] = ['roundrobin', 'chash', 'least_conn', 'ewma'];
  for (const type of types) {
    describe(type ?? 'default', () => {
      const nodes = () => [node('low', 1, -1), node('high1', 1, 10), node('mid', 1, 5), node('high2', 1, 10)];

      it('uses only the highest priority group while it has a usable node', () => {
        const balancer = build(type, nodes());
        for (const host of picks(balancer, 20)) assert.match(host, /^high[12]$/);
      });

      it('fails over group by group on tried nodes', () => {
        const balancer = build(type, nodes());
        const tried = new Set([nodeNamed(balancer, 'high1')]);
        assert.equal(balancer.pick(ctx, tried)?.host, 'high2');
        tried.add(nodeNamed(balancer, 'high2'));
        assert.equal(balancer.pick(ctx, tried)?.host, 'mid');
        tried.add(nodeNamed(balancer, 'mid'));
        assert.equal(balancer.pick(ctx, tried)?.host, 'low');
        tried.add(nodeNamed(balancer, 'low'));
        assert.equal(balancer.pick(ctx, tried), undefined);
      });

      it('fails over on health and fails back when the higher group recovers', () => {
        const unhealthy = new Set(['high1', 'high2']);
        const balancer = build(type, nodes(), healthOf(unhealthy));
        assert.deepEqual(new Set(picks(balancer, 10)), new Set(['mid']));
        unhealthy.add('mid');
        assert.deepEqual(new Set(picks(balancer, 10)), new Set(['low']));
        unhealthy.delete('high2');
        assert.deepEqual(new Set(picks(balancer, 10)), new Set(['high2']));
        unhealthy.clear();
        for (const host of picks(balancer, 10)) assert.match(host, /^high[12]$/);
      });

      it('skips a group whose nodes all have weight 0', () => {
        const balancer = build(type, [node('zero', 0, 10), node('backup', 1, 0)]);
        assert.deepEqual(new Set(picks(balancer, 5)), new Set(['backup']));
      });
    });
  }
});

describe('least_conn', () => {
  it('picks the node with the lowest (active + 1) / weight, the first on a tie', () => {
    const balancer = build('least_conn', [node('a', 1), node('b', 2)]);
    const a = nodeNamed(balancer, 'a');
    const b = nodeNamed(balancer, 'b');
    assert.equal(balancer.pick(ctx), b, 'b scores 1/2, a scores 1');
    balancer.begin?.(b);
    assert.equal(balancer.pick(ctx), a, 'both score 1: the first wins');
    balancer.begin?.(a);
    assert.equal(balancer.pick(ctx), b, 'a 2, b 1.5');
    balancer.begin?.(b);
    balancer.begin?.(b);
    assert.equal(balancer.pick(ctx), a, 'a 2, b 2.5');
    balancer.end?.(b, 1, false);
    balancer.end?.(b, 1, false);
    balancer.end?.(b, 1, false);
    assert.equal(balancer.pick(ctx), b, 'a 2, b 0.5');
  });

  it('does not let end() push the count below zero, and ignores unknown nodes', () => {
    const balancer = build('least_conn', [node('a'), node('b')]);
    const a = nodeNamed(balancer, 'a');
    balancer.end?.(a, 1, false);
    balancer.begin?.({ host: 'x', port: 1, weight: 1, priority: 0, address: 'x:1' });
    assert.equal(balancer.pick(ctx), a);
    balancer.begin?.(a);
    assert.equal(balancer.pick(ctx)?.host, 'b');
  });

  it('spreads concurrent requests evenly over equal nodes', () => {
    const balancer = build('least_conn', [node('a'), node('b'), node('c')]);
    const counts: Record<string, number> = {};
    for (let i = 0; i < 9; i++) {
      const picked = balancer.pick(ctx);
      assert.ok(picked);
      balancer.begin?.(picked);
      counts[picked.host] = (counts[picked.host] ?? 0) + 1;
    }
    assert.deepEqual(counts, { a: 3, b: 3, c: 3 });
  });
});

describe('ewma', () => {
  /** A time cell the test moves; the seed makes the random draws repeat. */
  interface FakeClock {
    timeCell: Float64Array;
    advance(ms: number): void;
  }

  function fakeClock(): FakeClock {
    const timeCell = Float64Array.of(1_000_000);
    return {
      timeCell,
      advance(ms: number) {
        timeCell[0] += ms;
      },
    };
  }

  function buildEwma(hosts: string[], clock: FakeClock): Balancer {
    const upstream: Upstream = { type: 'ewma', nodes: hosts.map((host) => node(host)) };
    return createBalancer(upstream, normalizeNodes(upstream.nodes), undefined, {
      ewma: { timeCell: clock.timeCell, seed: 12345 },
    });
  }

  it('prefers the node with the lower latency', () => {
    const clock = fakeClock();
    const balancer = buildEwma(['fast', 'slow'], clock);
    balancer.end?.(nodeNamed(balancer, 'fast'), 5, false);
    balancer.end?.(nodeNamed(balancer, 'slow'), 200, false);
    clock.advance(10);
    assert.deepEqual(new Set(picks(balancer, 20)), new Set(['fast']));
  });

  it('mostly avoids the slow node among several (two random choices)', () => {
    const clock = fakeClock();
    const balancer = buildEwma(['a', 'b', 'c', 'slow'], clock);
    for (const host of ['a', 'b', 'c']) balancer.end?.(nodeNamed(balancer, host), 5, false);
    balancer.end?.(nodeNamed(balancer, 'slow'), 500, false);
    const counts = countPicks(balancer, 300);
    assert.equal(counts.slow ?? 0, 0, 'the slow node loses every comparison');
    assert.ok((counts.a ?? 0) > 50 && (counts.b ?? 0) > 50 && (counts.c ?? 0) > 50, JSON.stringify(counts));
  });

  it('penalises failures and forgives them as time passes', () => {
    const clock = fakeClock();
    const balancer = buildEwma(['a', 'b'], clock);
    const a = nodeNamed(balancer, 'a');
    const b = nodeNamed(balancer, 'b');
    balancer.end?.(a, 10, false);
    balancer.end?.(b, 20, false);
    clock.advance(1);
    balancer.end?.(a, 1, true);
    assert.equal(balancer.pick(ctx), b, 'the failure makes a worse than b');
    // b keeps answering in 20 ms while a, idle, decays back toward zero.
    for (let i = 0; i < 60; i++) {
      clock.advance(1_000);
      balancer.end?.(b, 20, false);
    }
    assert.equal(balancer.pick(ctx), a);
  });

  it('counts requests in flight in the cost', () => {
    const clock = fakeClock();
    const balancer = buildEwma(['a', 'b'], clock);
    const a = nodeNamed(balancer, 'a');
    const b = nodeNamed(balancer, 'b');
    balancer.end?.(a, 10, false);
    balancer.end?.(b, 15, false);
    assert.equal(balancer.pick(ctx), a);
    balancer.begin?.(a);
    assert.equal(balancer.pick(ctx), b, 'a costs 10 x 2 = 20, b 15');
  });

  it('picks the only usable node on a retry', () => {
    const balancer = buildEwma(['a', 'b', 'c'], fakeClock());
    const tried = new Set([nodeNamed(balancer, 'a'), nodeNamed(balancer, 'c')]);
    assert.deepEqual(new Set(picks(balancer, 10, tried)), new Set(['b']));
  });
});
