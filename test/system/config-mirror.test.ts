// ConfigMirror (src/gateway/config-mirror.ts), in process: how a change is
// turned into a delta on the source side and applied on the receiving side.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigMirror } from '../../src/gateway/config-mirror';
import type { Route } from '../../src/schema/types';
import type { ConfigSnapshot } from '../../src/store/types';

function snapshot(version: number, routes: Array<Record<string, unknown>>): ConfigSnapshot {
  return {
    version,
    routes: routes as unknown as Route[],
    services: [],
    upstreams: [],
    consumers: [],
    consumer_groups: [],
    global_rules: [],
    plugin_configs: [],
    plugin_metadata: [],
    ssls: [],
  };
}

describe('ConfigMirror', () => {
  test('a delta carries only changed and deleted items, and a receiver applying it builds the same snapshot', () => {
    const source = new ConfigMirror();
    const receiver = new ConfigMirror();
    const one = { id: '1', uri: '/a' };
    const two = { id: '2', uri: '/b' };
    const first = source.replace(snapshot(1, [one, two]));
    assert.equal(first.fromVersion, -1);
    assert.equal(first.changes.length, 2);
    assert.equal(receiver.apply(first), true);

    // Same object for route 1 (the stores share unchanged items), a JSON-equal copy of route 2: neither is a change.
    const three = { id: '3', uri: '/c' };
    const second = source.replace(snapshot(2, [one, { id: '2', uri: '/b' }, three]));
    assert.deepEqual(second, { fromVersion: 1, version: 2, changes: [{ resource: 'routes', id: '3', value: three }] });
    assert.equal(receiver.apply(second), true);

    const third = source.replace(snapshot(3, [{ id: '1', uri: '/changed' }, three]));
    assert.deepEqual(
      third.changes.map((c) => [c.id, c.value]),
      [
        ['1', { id: '1', uri: '/changed' }],
        ['2', null],
      ],
    );
    assert.equal(receiver.apply(third), true);
    assert.deepEqual(receiver.snapshot(), source.snapshot());
    assert.equal(receiver.snapshot().version, 3);
    assert.deepEqual(
      receiver.snapshot().routes.map((r) => r.uri),
      ['/changed', '/c'],
    );
  });

  test('a delta that does not start at the receiver version is refused and changes nothing', () => {
    const source = new ConfigMirror();
    const receiver = new ConfigMirror();
    receiver.apply(source.replace(snapshot(1, [{ id: '1', uri: '/a' }])));
    source.replace(snapshot(2, [{ id: '1', uri: '/b' }])); // lost on the way
    const gap = source.replace(snapshot(3, [{ id: '1', uri: '/c' }]));
    assert.equal(receiver.apply(gap), false);
    assert.equal(receiver.version, 1);
    assert.equal(receiver.snapshot().routes[0].uri, '/a');
    // A full snapshot repairs it.
    receiver.replace(source.snapshot());
    assert.equal(receiver.version, 3);
    assert.equal(receiver.snapshot().routes[0].uri, '/c');
  });

  test('unchanged resources keep their arrays across snapshots', () => {
    const mirror = new ConfigMirror();
    mirror.replace(snapshot(1, [{ id: '1', uri: '/a' }]));
    const before = mirror.snapshot();
    mirror.apply({ fromVersion: 1, version: 2, changes: [{ resource: 'upstreams', id: 'u', value: { id: 'u' } }] });
    const after = mirror.snapshot();
    assert.equal(after.routes, before.routes);
    assert.notEqual(after.upstreams, before.upstreams);
    assert.equal(after.version, 2);
  });
});
