// EtcdStore.fetch and fetchList, the Admin API's reads: they read etcd itself
// (as APISIX's Admin API does), keep to the keys the store serves, and fail
// with PAL_ERR_ADMIN_STORE_UNAVAILABLE (503) when etcd does not answer.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { PalisadeError } from '../../src/core/errors';
import { createEtcdStore, type EtcdStore } from '../../src/store/index';
import { eventually, startEtcd, startTcpProxy, type EtcdServer } from '../helpers/etcd';

const TEST_TIMEOUT = { timeout: 30_000 };

let prefixCounter = 0;
function freshPrefix(): string {
  return `/palisade-fetch-${process.pid}-${++prefixCounter}`;
}

describe('EtcdStore.fetch and fetchList against a real etcd', () => {
  let etcd: EtcdServer;
  let raw: Etcd3;
  const stores: EtcdStore[] = [];

  async function openStore(hosts: string[], prefix: string): Promise<EtcdStore> {
    const store = createEtcdStore({ hosts, prefix, requestTimeoutMs: 1000, maxBackoffMs: 200 });
    stores.push(store);
    await store.open();
    return store;
  }

  before(async () => {
    etcd = await startEtcd();
    raw = new Etcd3({ hosts: etcd.url });
  });
  after(async () => {
    for (const store of stores.splice(0)) await store.close();
    raw?.close();
    await etcd?.close();
  });

  it('reads the items etcd holds, with its revisions, and only the keys the store serves', TEST_TIMEOUT, async () => {
    const prefix = freshPrefix();
    await raw.put(`${prefix}/routes/`).value(''); // APISIX's init_dir placeholder
    await raw.put(`${prefix}/routes/r1`).value(JSON.stringify({ uri: '/r1' }));
    await raw.put(`${prefix}/routes/r2`).value(JSON.stringify({ id: 'r2', uri: '/r2' }));
    await raw.put(`${prefix}/routes/broken`).value('{not json');
    await raw.put(`${prefix}/routes/array`).value('[1]');
    await raw.put(`${prefix}/consumers/jack`).value(JSON.stringify({ username: 'jack' }));
    await raw.put(`${prefix}/consumers/jack/credentials/c1`).value(JSON.stringify({ plugins: {} }));
    await raw.put(`${prefix}/routes_other/x`).value(JSON.stringify({ uri: '/x' }));
    const store = await openStore([etcd.url], prefix);

    const routes = await store.fetchList('routes');
    assert.deepEqual(routes.map((item) => item.key).sort(), [`${prefix}/routes/r1`, `${prefix}/routes/r2`]);
    const r1 = await store.fetch('routes', 'r1');
    assert.deepEqual(r1?.value, { id: 'r1', uri: '/r1' }, 'the id comes from the key when the value has none');
    const kv = (await raw.get(`${prefix}/routes/r1`).exec()).kvs[0];
    assert.equal(r1?.createdIndex, Number(kv.create_revision));
    assert.equal(r1?.modifiedIndex, Number(kv.mod_revision));

    assert.equal(await store.fetch('routes', 'broken'), undefined, 'a value that is not JSON is not served');
    assert.equal(await store.fetch('routes', 'array'), undefined, 'a value that is not an object is not served');
    assert.equal(await store.fetch('routes', 'missing'), undefined);
    assert.equal(await store.fetch('consumers', 'jack/credentials/c1'), undefined, 'nested keys are not items');
    assert.deepEqual(
      (await store.fetchList('consumers')).map((item) => item.key),
      [`${prefix}/consumers/jack`],
    );
    assert.deepEqual(await store.fetchList('ssls'), []);
  });

  it('sees a key another client wrote, and no longer one it deleted', TEST_TIMEOUT, async () => {
    const prefix = freshPrefix();
    const store = await openStore([etcd.url], prefix);
    await raw.put(`${prefix}/upstreams/u1`).value(JSON.stringify({ id: 'u1', type: 'roundrobin', nodes: {} }));
    assert.equal((await store.fetch('upstreams', 'u1'))?.value.type, 'roundrobin');
    assert.equal((await store.fetchList('upstreams')).length, 1);
    await raw.delete().key(`${prefix}/upstreams/u1`);
    assert.equal(await store.fetch('upstreams', 'u1'), undefined);
    assert.deepEqual(await store.fetchList('upstreams'), []);
  });

  it('fails with a 503 naming etcd while etcd is cut off, and reads again once it is back', TEST_TIMEOUT, async () => {
    const prefix = freshPrefix();
    await raw.put(`${prefix}/routes/r1`).value(JSON.stringify({ id: 'r1', uri: '/r1' }));
    const proxy = await startTcpProxy(etcd.clientPort);
    try {
      const store = await openStore([proxy.url], prefix);
      proxy.cut();
      for (const read of [store.fetch('routes', 'r1'), store.fetchList('routes')]) {
        await assert.rejects(read, (err: unknown) => {
          assert.ok(err instanceof PalisadeError, String(err));
          assert.equal(err.code, 'PAL_ERR_ADMIN_STORE_UNAVAILABLE');
          assert.equal(err.status, 503);
          assert.match(err.message, /^etcd request failed: \S/);
          return true;
        });
      }
      assert.equal(store.get('routes', 'r1')?.value.uri, '/r1', 'the in-memory view keeps the last configuration');
      proxy.restore();
      await eventually(
        async () => (await store.fetch('routes', 'r1').catch(() => undefined)) !== undefined,
        10_000,
        'fetch to read etcd again',
      );
    } finally {
      await proxy.close();
    }
  });

  it('refuses reads before open and after close', TEST_TIMEOUT, async () => {
    const store = createEtcdStore({ hosts: [etcd.url], prefix: freshPrefix() });
    await assert.rejects(store.fetch('routes', 'r1'), /the etcd store is not open/);
    await store.open();
    await store.close();
    await assert.rejects(store.fetchList('routes'), /the etcd store is closed/);
  });
});
