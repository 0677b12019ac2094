// Admin API reads while etcd is down. APISIX's Admin API reads etcd for every
// GET and answers 503 {"error_msg": ...} when it cannot (admin/resource.lua);
// Palisade does the same for GET list and GET one on every resource, in the
// shape its failed writes already use, while the store's in-memory view (what
// the data plane serves) keeps the last loaded configuration.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { createEtcdStore, type EtcdStore } from '../../src/store/index';
import { RESOURCES, type ResourceName } from '../../src/store/types';
import { startAdmin, type Harness } from '../admin/harness';
import { eventually, startEtcd, type EtcdServer } from '../helpers/etcd';

const TEST_TIMEOUT = { timeout: 60_000 };
const PREFIX = '/palisade-outage';

/** One item per resource, written to etcd as APISIX tooling would (the Admin API reads them back as they are). */
const seeded: Record<ResourceName, { id: string; value: Record<string, unknown> }> = {
  routes: { id: 'r1', value: { id: 'r1', uri: '/r1', upstream_id: 'u1' } },
  services: { id: 's1', value: { id: 's1', upstream_id: 'u1' } },
  upstreams: { id: 'u1', value: { id: 'u1', type: 'roundrobin', nodes: { '127.0.0.1:1980': 1 } } },
  consumers: { id: 'jack', value: { username: 'jack' } },
  consumer_groups: { id: 'g1', value: { id: 'g1', plugins: {} } },
  global_rules: { id: 'gr1', value: { id: 'gr1', plugins: {} } },
  plugin_configs: { id: 'pc1', value: { id: 'pc1', plugins: {} } },
  plugin_metadata: { id: 'http-logger', value: { id: 'http-logger', log_format: { host: '$host' } } },
  ssls: { id: 'ssl1', value: { id: 'ssl1', snis: ['example.com'] } },
};

function assertUnavailable(reply: { status: number; text: string; json: Record<string, unknown> }, what: string): void {
  assert.equal(reply.status, 503, `${what}: ${reply.text}`);
  assert.deepEqual(Object.keys(reply.json), ['error_msg'], what);
  assert.match(String(reply.json.error_msg), /^etcd request failed: \S/, what);
}

describe('Admin API reads while etcd is down', () => {
  let etcd: EtcdServer;
  let store: EtcdStore;
  let admin: Harness;

  before(async () => {
    etcd = await startEtcd();
    const raw = new Etcd3({ hosts: etcd.url });
    try {
      for (const resource of RESOURCES) {
        const { id, value } = seeded[resource];
        await raw.put(`${PREFIX}/${resource}/${id}`).value(JSON.stringify(value));
      }
    } finally {
      raw.close();
    }
    store = createEtcdStore({ hosts: [etcd.url], prefix: PREFIX, requestTimeoutMs: 1000, maxBackoffMs: 200 });
    await store.open();
    admin = await startAdmin({ store });
  });

  after(async () => {
    await admin?.close();
    await store?.close();
    await etcd?.close();
  });

  it('answers GET list and GET one on every resource from etcd while it is up', TEST_TIMEOUT, async () => {
    for (const resource of RESOURCES) {
      const { id, value } = seeded[resource];
      const one = await admin.call('GET', `/${resource}/${id}`);
      assert.equal(one.status, 200, `${resource}: ${one.text}`);
      assert.equal(one.json.key, `${PREFIX}/${resource}/${id}`);
      assert.deepEqual(one.json.value, { id, ...value });
      const list = await admin.call('GET', `/${resource}`);
      assert.equal(list.status, 200, `${resource}: ${list.text}`);
      assert.equal(list.json.total, 1, resource);
    }
  });

  it(
    'answers 503 {"error_msg"} for GET list, GET one and HEAD on every resource once etcd stops',
    TEST_TIMEOUT,
    async () => {
      await etcd.kill();
      for (const resource of RESOURCES) {
        const { id } = seeded[resource];
        assertUnavailable(await admin.call('GET', `/${resource}`), `GET /${resource}`);
        assertUnavailable(await admin.call('GET', `/${resource}/${id}`), `GET /${resource}/${id}`);
        // Whether the key exists cannot be known without etcd: not a 404.
        assertUnavailable(await admin.call('GET', `/${resource}/missing`), `GET /${resource}/missing`);
        const head = await admin.call('HEAD', `/${resource}/${id}`);
        assert.equal(head.status, 503, `HEAD /${resource}/${id}`);
        assert.equal(head.text, '');
      }
      // Filters and pages do not change that.
      assertUnavailable(await admin.call('GET', '/routes?page=1&page_size=10&name=x'), 'GET /routes?page=1');
    },
  );

  it('keeps the last loaded configuration in the store for the data plane meanwhile', TEST_TIMEOUT, async () => {
    await eventually(() => !store.reachable, 10_000, 'the store to notice etcd is gone');
    for (const resource of RESOURCES) {
      const { id } = seeded[resource];
      assert.ok(store.get(resource, id), `${resource}/${id} is still in the in-memory view`);
    }
    assert.equal(store.snapshot().routes.length, 1);
  });

  it('answers 200 again once etcd is back, with what etcd holds', TEST_TIMEOUT, async () => {
    await etcd.start();
    await eventually(
      async () => (await admin.call('GET', '/routes/r1')).status === 200,
      15_000,
      'GET /routes/r1 to answer 200 after etcd restarted',
    );
    for (const resource of RESOURCES) {
      const { id } = seeded[resource];
      assert.equal((await admin.call('GET', `/${resource}/${id}`)).status, 200, resource);
      assert.equal((await admin.call('GET', `/${resource}`)).json.total, 1, resource);
    }
    assert.equal((await admin.call('GET', '/routes/missing')).status, 404);
  });
});
