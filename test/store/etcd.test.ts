import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { PalisadeError } from '../../src/core/errors';
import { createEtcdStore, etcdOptionsFromEnv, type EtcdStore, type EtcdStoreOptions } from '../../src/store/index';
import type { ConfigSnapshot } from '../../src/store/types';
import { eventually, startEtcd, startTcpProxy, type EtcdServer } from '../helpers/etcd';

const TEST_TIMEOUT = { timeout: 30_000 };

let prefixCounter = 0;
function freshPrefix(): string {
  return `/palisade-test-${process.pid}-${++prefixCounter}`;
}

const upstream = { type: 'roundrobin', nodes: { '127.0.0.1:1980': 1 } };

/** Stores opened by a test, closed by its suite whatever happened. */
class Stores {
  readonly #open: EtcdStore[] = [];
  async open(options: EtcdStoreOptions): Promise<EtcdStore> {
    const store = createEtcdStore({ requestTimeoutMs: 2000, maxBackoffMs: 500, ...options });
    this.#open.push(store);
    await store.open();
    return store;
  }
  async closeAll(): Promise<void> {
    await Promise.all(this.#open.splice(0).map((store) => store.close()));
  }
}

async function assertRejectsWith(promise: Promise<unknown>, status: number, message: string | RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof PalisadeError, `expected a PalisadeError, got ${String(err)}`);
    assert.equal(err.status, status);
    if (typeof message === 'string') assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

describe('etcd store against a real etcd', () => {
  let etcd: EtcdServer;
  let raw: Etcd3;
  const stores = new Stores();
  before(async () => {
    etcd = await startEtcd();
    raw = new Etcd3({ hosts: etcd.url });
  });
  after(async () => {
    await stores.closeAll();
    raw?.close();
    await etcd?.close();
  });

  it('puts, gets, lists and deletes, with etcd revisions as indexes', TEST_TIMEOUT, async () => {
    const prefix = freshPrefix();
    const store = await stores.open({ hosts: [etcd.url], prefix });
    assert.equal(store.readOnly, false);
    assert.equal(store.reachable, true);

    const first = await store.put('upstreams', 'u1', { id: 'u1', ...upstream });
    assert.equal(first.key, `${prefix}/upstreams/u1`);
    assert.equal(first.createdIndex, first.modifiedIndex);
    assert.deepEqual(store.get('upstreams', 'u1')?.value, { id: 'u1', ...upstream });

    const second = await store.put('upstreams', 'u1', { id: 'u1', ...upstream, desc: 'again' });
    assert.equal(second.createdIndex, first.createdIndex);
    assert.ok(second.modifiedIndex > first.modifiedIndex);
    assert.equal(store.get('upstreams', 'u1')?.value.desc, 'again');

    await store.put('routes', 'r1', { id: 'r1', uri: '/r1', upstream_id: 'u1' });
    assert.deepEqual(
      store.list('routes').map((item) => item.value.id),
      ['r1'],
    );
    const snapshot = store.snapshot();
    assert.equal(snapshot.routes.length, 1);
    assert.equal(snapshot.upstreams.length, 1);
    assert.ok(Object.isFrozen(snapshot.routes[0]), 'snapshot items are frozen');

    // Stored exactly as APISIX stores it: the value's JSON.
    const stored = await raw.get(`${prefix}/routes/r1`).json();
    assert.deepEqual(stored, { id: 'r1', uri: '/r1', upstream_id: 'u1' });

    assert.equal(await store.delete('routes', 'r1'), true);
    assert.equal(store.get('routes', 'r1'), undefined);
    assert.equal(await store.delete('routes', 'r1'), false);
    assert.equal(await raw.get(`${prefix}/routes/r1`).string(), null);
  });

  it('generates APISIX ids: increasing etcd revisions, zero-padded to 20 digits', TEST_TIMEOUT, async () => {
    const prefix = freshPrefix();
    const store = await stores.open({ hosts: [etcd.url], prefix });
    const a = await store.nextId();
    const b = await store.nextId();
    assert.match(a, /^\d{20}$/);
    assert.ok(b > a);
    assert.notEqual(await raw.get(`${prefix}/gen_id`).string(), null);
    assert.equal(store.list('routes').length, 0, 'gen_id is not an item');
  });

  it('emits one snapshot for a burst of writes and none for gen_id', TEST_TIMEOUT, async () => {
    const prefix = freshPrefix();
    const store = await stores.open({ hosts: [etcd.url], prefix });
    const seen: ConfigSnapshot[] = [];
    store.onChange((snapshot) => seen.push(snapshot));
    // Five keys in one transaction arrive as one watch response.
    await raw
      .stm()
      .transact((tx) =>
        Promise.all(
          [1, 2, 3, 4, 5].map((n) =>
            tx.put(`${prefix}/routes/${n}`).value(JSON.stringify({ id: String(n), uri: `/${n}`, upstream })),
          ),
        ),
      );
    await eventually(() => seen.length > 0, 5000, 'a snapshot');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(seen.length, 1);
    assert.equal(seen[0].routes.length, 5);
    const version = seen[0].version;
    await store.nextId();
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(seen.length, 1);
    await store.put('routes', '6', { id: '6', uri: '/6', upstream });
    await eventually(() => seen.length === 2, 5000, 'a second snapshot');
    assert.ok(seen[1].version > version);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(seen.length, 2, 'a write is applied once, from the watch');
  });

  it('serves an etcd written directly in APISIX layout, skipping what it cannot use', TEST_TIMEOUT, async () => {
    const prefix = freshPrefix();
    // What APISIX writes: init_dir placeholders, items with create/update times, gen_id, credentials.
    await raw.put(`${prefix}/routes/`).value('init_dir');
    await raw.put(`${prefix}/upstreams/`).value('init_dir');
    await raw.put(`${prefix}/upstreams/1`).value(
      JSON.stringify({
        id: '1',
        type: 'roundrobin',
        nodes: [{ host: '127.0.0.1', port: 1980, weight: 1 }],
        create_time: 1700000000,
        update_time: 1700000000,
      }),
    );
    await raw.put(`${prefix}/routes/1`).value(
      JSON.stringify({
        id: '1',
        uri: '/hello',
        methods: ['GET'],
        upstream_id: '1',
        status: 1,
        priority: 0,
        create_time: 1700000000,
        update_time: 1700000001,
      }),
    );
    await raw.put(`${prefix}/gen_id`).value('0');
    await raw.put(`${prefix}/consumers/jack/credentials/c1`).value(JSON.stringify({ id: 'c1', plugins: {} }));
    await raw.put(`${prefix}/stream_routes/1`).value(JSON.stringify({ id: '1' }));
    await raw.put(`${prefix}/plugin_metadata/prometheus`).value(JSON.stringify({ prefix: 'apisix' }));
    await raw.put(`${prefix}/services/7`).value(JSON.stringify({ id: 7, name: 'numeric id' }));
    await raw.put(`${prefix}/routes/broken`).value('{not json');
    await raw.put(`${prefix}/routes/array`).value('[1,2]');
    await raw.put(`${prefix}-other/routes/9`).value(JSON.stringify({ id: '9', uri: '/elsewhere' }));

    const store = await stores.open({ hosts: [etcd.url], prefix });
    const snapshot = store.snapshot();
    assert.deepEqual(
      snapshot.routes.map((route) => route.id),
      ['1'],
    );
    assert.equal(snapshot.routes[0].uri, '/hello');
    assert.equal(snapshot.routes[0].upstream_id, '1');
    assert.deepEqual(
      snapshot.upstreams.map((item) => item.id),
      ['1'],
    );
    assert.equal(snapshot.consumers.length, 0);
    // Missing or numeric ids come from the key, as strings.
    assert.deepEqual(snapshot.plugin_metadata, [{ id: 'prometheus', prefix: 'apisix' }]);
    assert.equal(snapshot.services[0].id, '7');
    const route = store.get('routes', '1');
    assert.ok(route);
    const kv = await raw.get(`${prefix}/routes/1`).exec();
    assert.equal(route.createdIndex, Number(kv.kvs[0].create_revision));
    assert.equal(route.modifiedIndex, Number(kv.kvs[0].mod_revision));

    // The same rules apply to watched events: a broken value removes the item it replaces.
    await raw.put(`${prefix}/routes/2`).value(JSON.stringify({ id: '2', uri: '/two', upstream_id: '1' }));
    await eventually(() => store.get('routes', '2') !== undefined, 5000, 'route 2 from the watch');
    await raw.put(`${prefix}/routes/2`).value('oops');
    await eventually(() => store.get('routes', '2') === undefined, 5000, 'route 2 dropped');
    await raw.put(`${prefix}/routes/`).value('init_dir');
    await raw.delete().key(`${prefix}/routes/1`);
    await eventually(() => store.get('routes', '1') === undefined, 5000, 'route 1 deleted');
    assert.equal(store.snapshot().routes.length, 0);
  });

  it('a second gateway on the same etcd sees the first one’s writes', TEST_TIMEOUT, async () => {
    const prefix = freshPrefix();
    const controlPlane = await stores.open({ hosts: [etcd.url], prefix, role: 'control_plane' });
    const dataPlane = await stores.open({ hosts: [etcd.url], prefix, role: 'data_plane' });
    assert.equal(dataPlane.readOnly, true);
    const snapshots: ConfigSnapshot[] = [];
    dataPlane.onChange((snapshot) => snapshots.push(snapshot));

    const written = await controlPlane.put('routes', 'r1', { id: 'r1', uri: '/shared', upstream });
    await eventually(() => dataPlane.get('routes', 'r1') !== undefined, 2000, 'the write on the second store');
    assert.deepEqual(dataPlane.get('routes', 'r1'), written);
    await eventually(() => snapshots.length > 0, 2000, 'a snapshot on the second store');
    assert.equal(snapshots.at(-1)?.routes[0]?.uri, '/shared');

    await controlPlane.delete('routes', 'r1');
    await eventually(() => dataPlane.get('routes', 'r1') === undefined, 2000, 'the delete on the second store');

    await assertRejectsWith(dataPlane.put('routes', 'x', { id: 'x' }), 400, /read-only: this node is a data plane/);
    await assertRejectsWith(dataPlane.delete('routes', 'x'), 400, /read-only/);
    await assertRejectsWith(dataPlane.nextId(), 400, /read-only/);
  });

  it('concurrent writes from two stores leave both views equal to etcd', TEST_TIMEOUT, async () => {
    const prefix = freshPrefix();
    const a = await stores.open({ hosts: [etcd.url], prefix });
    const b = await stores.open({ hosts: [etcd.url], prefix });
    const writes: Array<Promise<unknown>> = [];
    for (let n = 0; n < 100; n++) {
      const store = n % 2 === 0 ? a : b;
      writes.push(store.put('routes', `r${n % 30}`, { id: `r${n % 30}`, uri: `/${n}`, upstream }));
      if (n % 7 === 0) writes.push(store.delete('routes', `r${(n + 3) % 30}`));
    }
    await Promise.all(writes);
    const kvs = (await raw.getAll().prefix(`${prefix}/routes/`).exec()).kvs;
    const expected = new Map(kvs.map((kv) => [kv.key.toString(), Number(kv.mod_revision)]));
    for (const store of [a, b]) {
      await eventually(
        () => {
          const items = store.list('routes');
          return items.length === expected.size && items.every((item) => expected.get(item.key) === item.modifiedIndex);
        },
        5000,
        'the store to match etcd',
      );
    }
  });

  it(
    'compare-and-swap on modifiedIndex: a stale index gives 503 value changed before overwritten',
    TEST_TIMEOUT,
    async () => {
      const prefix = freshPrefix();
      const store = await stores.open({ hosts: [etcd.url], prefix });
      const first = await store.put('services', 's1', { id: 's1', name: 'one' });
      const second = await store.put('services', 's1', { id: 's1', name: 'two' }, { prevIndex: first.modifiedIndex });
      assert.equal(second.value.name, 'two');
      await assertRejectsWith(
        store.put('services', 's1', { id: 's1', name: 'late' }, { prevIndex: first.modifiedIndex }),
        503,
        'value changed before overwritten',
      );
      assert.equal(store.get('services', 's1')?.value.name, 'two');
      // A key that does not exist has no modifiedIndex to match.
      await assertRejectsWith(
        store.put('services', 'none', { id: 'none' }, { prevIndex: 1 }),
        503,
        'value changed before overwritten',
      );
      assert.equal(store.get('services', 'none'), undefined);
    },
  );

  it('expires a ttl write through an etcd lease, on every store', TEST_TIMEOUT, async () => {
    const prefix = freshPrefix();
    const store = await stores.open({ hosts: [etcd.url], prefix });
    const other = await stores.open({ hosts: [etcd.url], prefix, role: 'data_plane' });
    const before = Date.now();
    const item = await store.put('routes', 'short', { id: 'short', uri: '/short', upstream }, { ttl: 1 });
    assert.ok(item.expiresAt !== undefined && item.expiresAt >= before + 1000);
    const kv = await raw.get(`${prefix}/routes/short`).exec();
    assert.notEqual(kv.kvs[0].lease, '0', 'the key carries a lease');
    await eventually(() => other.get('routes', 'short') !== undefined, 2000, 'the ttl item on the other store');
    await eventually(
      () => store.get('routes', 'short') === undefined && other.get('routes', 'short') === undefined,
      10_000,
      'the lease to expire',
    );
    assert.equal(await raw.get(`${prefix}/routes/short`).string(), null);
  });

  it('keys carry a custom prefix and ignore the default one', TEST_TIMEOUT, async () => {
    const prefix = freshPrefix();
    const store = await stores.open({ hosts: [etcd.url], prefix: prefix.slice(1) + '/' });
    assert.equal(store.prefix, prefix);
    await raw.put(`/apisix/routes/ignored-${prefixCounter}`).value(JSON.stringify({ id: 'x', uri: '/x' }));
    const item = await store.put('routes', '1', { id: '1', uri: '/p', upstream });
    assert.equal(item.key, `${prefix}/routes/1`);
    assert.deepEqual(
      store.list('routes').map((stored) => stored.value.id),
      ['1'],
    );
  });
});

describe('etcd store resync and outages', () => {
  const stores = new Stores();
  const servers: EtcdServer[] = [];
  const clients: Etcd3[] = [];
  after(async () => {
    await stores.closeAll();
    for (const client of clients) client.close();
    await Promise.all(servers.map((server) => server.close()));
  });

  async function newEtcd(): Promise<{ etcd: EtcdServer; raw: Etcd3 }> {
    const etcd = await startEtcd();
    servers.push(etcd);
    const raw = new Etcd3({ hosts: etcd.url });
    clients.push(raw);
    return { etcd, raw };
  }

  it('a compaction while the watch is behind leads to a resync with no lost update', TEST_TIMEOUT, async () => {
    const { etcd, raw } = await newEtcd();
    const proxy = await startTcpProxy(etcd.clientPort);
    try {
      const prefix = '/apisix';
      await raw.put(`${prefix}/routes/keep`).value(JSON.stringify({ id: 'keep', uri: '/keep', upstream }));
      await raw.put(`${prefix}/routes/change`).value(JSON.stringify({ id: 'change', uri: '/old', upstream }));
      await raw.put(`${prefix}/routes/remove`).value(JSON.stringify({ id: 'remove', uri: '/remove', upstream }));
      const store = await stores.open({ hosts: [proxy.url], prefix });
      assert.equal(store.list('routes').length, 3);

      // The store loses etcd; etcd moves on and forgets the history the watch would resume from.
      proxy.cut();
      await eventually(() => !store.reachable, 5000, 'the store to notice the cut');
      await raw.put(`${prefix}/routes/change`).value(JSON.stringify({ id: 'change', uri: '/new', upstream }));
      await raw.delete().key(`${prefix}/routes/remove`);
      await raw.put(`${prefix}/routes/added`).value(JSON.stringify({ id: 'added', uri: '/added', upstream }));
      const latest = await raw
        .put(`${prefix}/upstreams/u9`)
        .value(JSON.stringify({ id: 'u9', ...upstream }))
        .exec();
      await raw.kv.compact({ revision: latest.header.revision, physical: true });
      assert.equal(store.get('routes', 'change')?.value.uri, '/old', 'the last config keeps serving');

      proxy.restore();
      await eventually(() => store.reachable && store.get('routes', 'added') !== undefined, 15_000, 'the resync');
      assert.deepEqual(
        store
          .list('routes')
          .map((item) => item.value.id)
          .sort(),
        ['added', 'change', 'keep'],
      );
      assert.equal(store.get('routes', 'change')?.value.uri, '/new');
      assert.ok(store.get('upstreams', 'u9'));

      // And the watch runs again after the resync.
      await raw.put(`${prefix}/routes/after`).value(JSON.stringify({ id: 'after', uri: '/after', upstream }));
      await eventually(() => store.get('routes', 'after') !== undefined, 5000, 'a write after the resync');
      const fresh = await stores.open({ hosts: [etcd.url], prefix });
      const byKey = (a: { key: string }, b: { key: string }) => a.key.localeCompare(b.key);
      assert.deepEqual(store.list('routes').sort(byKey), fresh.list('routes').sort(byKey));
    } finally {
      await proxy.close();
    }
  });

  it('etcd killed and restarted: the last config serves, then later changes apply', TEST_TIMEOUT, async () => {
    const { etcd, raw } = await newEtcd();
    const store = await stores.open({ hosts: [etcd.url] });
    await store.put('routes', 'r1', { id: 'r1', uri: '/before', upstream });
    const before = store.snapshot();

    await etcd.kill();
    await eventually(() => !store.reachable, 5000, 'reachable to turn false');
    assert.equal(store.snapshot(), before, 'the last snapshot keeps serving');
    assert.equal(store.get('routes', 'r1')?.value.uri, '/before');
    // 503 with the etcd client's error, as APISIX answers a failed etcd write.
    await assertRejectsWith(store.put('routes', 'r2', { id: 'r2' }), 503, /^etcd request failed: \S/);

    await etcd.start();
    // A write as soon as etcd is back resolves once the store's own view holds it.
    await eventually(
      () =>
        store.put('routes', 'r3', { id: 'r3', uri: '/mine', upstream }).then(
          () => true,
          () => false,
        ),
      10_000,
      'a write to succeed after the restart',
    );
    assert.equal(store.get('routes', 'r3')?.value.uri, '/mine');
    assert.equal(store.reachable, true);
    await raw.put('/apisix/routes/r2').value(JSON.stringify({ id: 'r2', uri: '/after', upstream }));
    await eventually(() => store.get('routes', 'r2') !== undefined, 5000, 'a write by another client');
    assert.equal(store.get('routes', 'r1')?.value.uri, '/before');
  });

  it('etcd wiped (revision goes backwards): the store reloads what etcd now holds', TEST_TIMEOUT, async () => {
    const { etcd, raw } = await newEtcd();
    const store = await stores.open({ hosts: [etcd.url] });
    for (let n = 0; n < 20; n++) await store.put('routes', `r${n}`, { id: `r${n}`, uri: `/${n}`, upstream });
    const versionBefore = store.snapshot().version;

    await etcd.kill();
    const { rmSync } = await import('node:fs');
    rmSync(etcd.dataDir, { recursive: true, force: true });
    await etcd.start();
    await raw.put('/apisix/routes/new').value(JSON.stringify({ id: 'new', uri: '/new', upstream }));

    await eventually(() => store.list('routes').length === 1, 15_000, 'the reload after the wipe');
    assert.ok(store.get('routes', 'new'));
    assert.ok(store.snapshot().version > versionBefore, 'snapshot versions never go back');
  });

  it('open fails with a clear error when etcd cannot be reached', TEST_TIMEOUT, async () => {
    const { etcd } = await newEtcd();
    await etcd.kill();
    const store = createEtcdStore({ hosts: [etcd.url], requestTimeoutMs: 1000 });
    await assertRejectsWith(store.open(), 500, /cannot load the configuration from etcd/);
    await store.close();
  });
});

describe('etcd store options', () => {
  it('reads PALISADE_ETCD_HOSTS and PALISADE_ETCD_PREFIX', () => {
    assert.equal(etcdOptionsFromEnv({}), undefined);
    assert.equal(etcdOptionsFromEnv({ PALISADE_ETCD_HOSTS: ' , ' }), undefined);
    assert.deepEqual(etcdOptionsFromEnv({ PALISADE_ETCD_HOSTS: 'http://a:2379, http://b:2379' }), {
      hosts: ['http://a:2379', 'http://b:2379'],
    });
    assert.deepEqual(etcdOptionsFromEnv({ PALISADE_ETCD_HOSTS: 'http://a:2379', PALISADE_ETCD_PREFIX: '/gw' }), {
      hosts: ['http://a:2379'],
      prefix: '/gw',
    });
  });
});
