import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startAdmin, testCatalog, upstream, type Harness } from './harness';

describe('Admin API resources', () => {
  let admin: Harness;
  before(async () => {
    admin = await startAdmin({ plugins: testCatalog });
  });
  after(() => admin.close());

  it('answers HEAD /apisix/admin with 200 and every response carries X-API-VERSION: v3', async () => {
    const head = await admin.call('HEAD', '');
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('x-api-version'), 'v3');
    const missing = await admin.call('GET', '/routes/none');
    assert.equal(missing.headers.get('x-api-version'), 'v3');
  });

  it('PUT creates with 201, replaces with 200, keeps create_time and sets update_time', async () => {
    const created = await admin.call('PUT', '/upstreams/u1', upstream);
    assert.equal(created.status, 201);
    assert.equal(created.json.key, '/apisix/upstreams/u1');
    const value = created.json.value as Record<string, unknown>;
    assert.equal(value.id, 'u1');
    assert.equal(typeof value.create_time, 'number');
    assert.equal(typeof value.update_time, 'number');
    assert.equal(value.scheme, undefined, 'schema defaults are not stored');

    const replaced = await admin.call('PUT', '/upstreams/u1', { ...upstream, desc: 'again' });
    assert.equal(replaced.status, 200);
    const again = replaced.json.value as Record<string, unknown>;
    assert.equal(again.create_time, value.create_time);
    assert.equal(again.desc, 'again');
  });

  it('GET one returns key, value, createdIndex and modifiedIndex', async () => {
    await admin.call('PUT', '/routes/r1', { uri: '/r1', upstream_id: 'u1' });
    const first = await admin.call('GET', '/routes/r1');
    assert.equal(first.status, 200);
    assert.deepEqual(Object.keys(first.json).sort(), ['createdIndex', 'key', 'modifiedIndex', 'value']);
    await admin.call('PUT', '/routes/r1', { uri: '/r1', upstream_id: 'u1', name: 'renamed' });
    const second = await admin.call('GET', '/routes/r1');
    assert.equal(second.json.createdIndex, first.json.createdIndex);
    assert.ok((second.json.modifiedIndex as number) > (first.json.modifiedIndex as number));
    assert.equal((second.json.value as Record<string, unknown>).name, 'renamed');
  });

  // APISIX v3 answers a write with the etcd node it built itself, {key, value} (core/etcd.lua set/atomic_set/push,
  // v3_adapter.filter): the indexes are only in GET answers, the times are in the value.
  it('PUT, POST and PATCH answer {key, value}; the value has create_time and update_time, GET the indexes', async () => {
    const put = await admin.call('PUT', '/routes/shape', { uri: '/shape', upstream });
    assert.deepEqual(Object.keys(put.json).sort(), ['key', 'value']);
    const created = put.json.value as Record<string, number>;
    assert.ok(Number.isInteger(created.create_time) && created.create_time > 1_600_000_000);
    assert.equal(created.update_time, created.create_time);
    const afterPut = await admin.call('GET', '/routes/shape');
    assert.equal(afterPut.json.key, put.json.key);
    assert.deepEqual(afterPut.json.value, put.json.value);

    const patched = await admin.call('PATCH', '/routes/shape', { desc: 'patched' });
    assert.equal(patched.status, 200);
    assert.deepEqual(Object.keys(patched.json).sort(), ['key', 'value']);
    const patchedValue = patched.json.value as Record<string, unknown>;
    assert.equal(patchedValue.create_time, created.create_time, 'PATCH keeps create_time');
    assert.equal(typeof patchedValue.update_time, 'number');
    const afterPatch = await admin.call('GET', '/routes/shape');
    assert.equal(afterPatch.json.createdIndex, afterPut.json.createdIndex);
    assert.ok((afterPatch.json.modifiedIndex as number) > (afterPut.json.modifiedIndex as number));
    assert.deepEqual(afterPatch.json.value, patched.json.value);

    const posted = await admin.call('POST', '/routes', { uri: '/shape-post', upstream });
    assert.equal(posted.status, 201);
    assert.deepEqual(Object.keys(posted.json).sort(), ['key', 'value']);
    const postedValue = posted.json.value as Record<string, unknown>;
    assert.equal(typeof postedValue.create_time, 'number');
    const afterPost = await admin.call('GET', `/routes/${String(postedValue.id)}`);
    assert.ok((afterPost.json.createdIndex as number) > (afterPatch.json.modifiedIndex as number));
    assert.equal(afterPost.json.createdIndex, afterPost.json.modifiedIndex);
  });

  it('GET a missing key gives 404 {"message":"Key not found"}', async () => {
    const reply = await admin.call('GET', '/routes/nope');
    assert.equal(reply.status, 404);
    assert.deepEqual(reply.json, { message: 'Key not found' });
    assert.deepEqual((await admin.call('DELETE', '/routes/nope')).json, { message: 'Key not found' });
    assert.deepEqual((await admin.call('PATCH', '/routes/nope', { desc: 'x' })).json, { message: 'Key not found' });
  });

  it('POST generates zero-padded 20-digit increasing ids and refuses a body id', async () => {
    const a = await admin.call('POST', '/routes', { uri: '/post-a', upstream });
    const b = await admin.call('POST', '/routes', { uri: '/post-b', upstream });
    assert.equal(a.status, 201);
    const idA = (a.json.value as Record<string, string>).id;
    const idB = (b.json.value as Record<string, string>).id;
    assert.match(idA, /^\d{20}$/);
    assert.ok(idB > idA);
    assert.equal(a.json.key, `/apisix/routes/${idA}`);

    const withId = await admin.call('POST', '/routes', { id: '9', uri: '/x', upstream });
    assert.equal(withId.status, 400);
    assert.deepEqual(withId.json, { error_msg: 'wrong route id, do not need it' });
  });

  it('DELETE answers {"deleted":"1","key":...}', async () => {
    await admin.call('PUT', '/routes/gone', { uri: '/gone', upstream });
    const reply = await admin.call('DELETE', '/routes/gone');
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.json, { deleted: '1', key: '/apisix/routes/gone' });
    assert.equal((await admin.call('GET', '/routes/gone')).status, 404);
  });

  it('refuses a body id that differs from the URL id, and a PUT without id', async () => {
    const wrong = await admin.call('PUT', '/routes/1', { id: '2', uri: '/a', upstream });
    assert.deepEqual(wrong.json, { error_msg: 'wrong route id' });
    const same = await admin.call('PUT', '/routes/77', { id: 77, uri: '/a', upstream });
    assert.equal(same.status, 201);
    const missing = await admin.call('PUT', '/routes', { uri: '/a', upstream });
    assert.deepEqual(missing.json, { error_msg: 'missing route id' });
    const badId = await admin.call('PUT', '/routes/a%20b', { uri: '/a', upstream });
    assert.equal(badId.status, 400);
    assert.match(String(badId.json.error_msg), /^invalid configuration: property "id" validation failed/);
  });

  it('refuses create_time and update_time from clients', async () => {
    const reply = await admin.call('PUT', '/routes/t', { uri: '/a', upstream, create_time: 1 });
    assert.deepEqual(reply.json, { error_msg: 'the property is forbidden:  create_time' });
    const patch = await admin.call('PATCH', '/upstreams/u1', { update_time: 1 });
    assert.deepEqual(patch.json, { error_msg: 'the property is forbidden:  update_time' });
  });

  it('reports unknown resources and unsupported methods as APISIX does', async () => {
    const unknown = await admin.call('GET', '/routs');
    assert.equal(unknown.status, 404);
    assert.deepEqual(unknown.json, { error_msg: 'Unsupported resource type: routs' });
    const post = await admin.call('POST', '/consumers', { username: 'jack' });
    assert.equal(post.status, 405);
    assert.deepEqual(post.json, { error_msg: 'not supported `POST` method for consumer' });
    const patch = await admin.call('PATCH', '/plugin_metadata/prometheus', {});
    assert.equal(patch.status, 405);
  });

  it('rejects empty and malformed JSON bodies', async () => {
    const empty = await admin.call('PUT', '/routes/e', '');
    assert.equal(empty.status, 400);
    assert.match(String(empty.json.error_msg), /^invalid request body: /);
    const broken = await admin.call('PUT', '/routes/e', '{"uri": ');
    assert.equal(broken.status, 400);
    assert.match(String(broken.json.error_msg), /^invalid request body: /);
  });

  it('answers 413 for a body over maxBodyBytes', async () => {
    const big = JSON.stringify({ uri: '/big', desc: 'x'.repeat(1572864) });
    const reply = await admin.call('PUT', '/routes/big', big);
    assert.equal(reply.status, 413);
    assert.deepEqual(reply.json, {
      error_msg: `request size ${Buffer.byteLength(big)} is greater than the maximum size 1572864 allowed`,
    });
  });

  it('consumers are keyed by username and accept PUT with or without it in the URL', async () => {
    const viaBody = await admin.call('PUT', '/consumers', { username: 'jack' });
    assert.equal(viaBody.status, 201);
    assert.equal(viaBody.json.key, '/apisix/consumers/jack');
    const viaUrl = await admin.call('PUT', '/consumers/rose', {});
    assert.equal(viaUrl.status, 201);
    assert.equal((viaUrl.json.value as Record<string, unknown>).username, 'rose');
    const mismatch = await admin.call('PUT', '/consumers/rose', { username: 'jack' });
    assert.equal(mismatch.status, 400);
  });

  it('plugin_metadata is keyed by plugin name and checked by the catalog', async () => {
    const ok = await admin.call('PUT', '/plugin_metadata/prometheus', { prefix: 'pal_' });
    assert.equal(ok.status, 201);
    assert.equal(ok.json.key, '/apisix/plugin_metadata/prometheus');
    const bad = await admin.call('PUT', '/plugin_metadata/prometheus', { prefix: 1 });
    assert.equal(bad.status, 400);
    assert.match(String(bad.json.error_msg), /prefix/);
    const unknown = await admin.call('PUT', '/plugin_metadata/nope', {});
    assert.deepEqual(unknown.json, { error_msg: 'unknown plugin [nope]' });
  });

  it('stores consumer_groups, plugin_configs and global_rules', async () => {
    for (const resource of ['consumer_groups', 'plugin_configs', 'global_rules']) {
      const reply = await admin.call('PUT', `/${resource}/1`, { plugins: { 'limit-req': { rate: 1 } } });
      assert.equal(reply.status, 201, resource);
      const missing = await admin.call('PUT', `/${resource}/2`, {});
      assert.deepEqual(missing.json, { error_msg: 'invalid configuration: property "plugins" is required' }, resource);
    }
  });
});

describe('Admin API lists', () => {
  let admin: Harness;
  before(async () => {
    admin = await startAdmin();
    await admin.call('PUT', '/services/s1', { upstream });
    for (let i = 1; i <= 25; i++) {
      const id = String(i).padStart(2, '0');
      await admin.call('PUT', `/routes/${id}`, {
        uri: `/item/${i}`,
        name: i % 2 === 0 ? `even-${i}` : `odd-${i}`,
        labels: i <= 5 ? { tier: 'gold' } : { tier: 'bronze' },
        ...(i <= 3 ? { service_id: 's1' } : { upstream }),
      });
    }
  });
  after(() => admin.close());

  it('lists everything as {list, total}, values as stored', async () => {
    const reply = await admin.call('GET', '/routes');
    assert.equal(reply.status, 200);
    assert.equal(reply.json.total, 25);
    const list = reply.json.list as Array<Record<string, unknown>>;
    assert.equal(list.length, 25);
    assert.equal(list[0].key, '/apisix/routes/01');
    assert.deepEqual(Object.keys(list[0]).sort(), ['createdIndex', 'key', 'modifiedIndex', 'value']);
    const stored = await admin.call('GET', '/routes/01');
    assert.deepEqual(list[0].value, stored.json.value);
  });

  it('paginates with page and page_size', async () => {
    const page2 = await admin.call('GET', '/routes?page=2&page_size=10');
    assert.equal(page2.json.total, 25);
    const list = page2.json.list as Array<Record<string, unknown>>;
    assert.equal(list.length, 10);
    assert.equal(list[0].key, '/apisix/routes/11');
    const page3 = await admin.call('GET', '/routes?page=3&page_size=10');
    assert.equal((page3.json.list as unknown[]).length, 5);
    for (const size of ['9', '501']) {
      const bad = await admin.call('GET', `/routes?page=1&page_size=${size}`);
      assert.equal(bad.status, 400);
      assert.deepEqual(bad.json, { error_msg: 'page_size must be between 10 and 500' });
    }
  });

  it('filters by name and uri regex, label and filter=field=value', async () => {
    const byName = await admin.call('GET', '/routes?name=^even-1');
    assert.equal(byName.json.total, 5); // 10, 12, 14, 16, 18
    const byUri = await admin.call('GET', '/routes?uri=' + encodeURIComponent('/item/2\\d'));
    assert.equal(byUri.json.total, 6);
    const byLabel = await admin.call('GET', '/routes?label=tier:gold');
    assert.equal(byLabel.json.total, 5);
    const byLabelKey = await admin.call('GET', '/routes?label=tier');
    assert.equal(byLabelKey.json.total, 25);
    const byService = await admin.call('GET', '/routes?filter=service_id%3Ds1');
    assert.equal(byService.json.total, 3);
  });
});

describe('Admin API PATCH', () => {
  let admin: Harness;
  before(async () => {
    admin = await startAdmin();
  });
  after(() => admin.close());

  it('merges objects, deletes fields set to null and replaces arrays', async () => {
    await admin.call('PUT', '/routes/1', {
      uri: '/p',
      methods: ['GET', 'POST'],
      desc: 'before',
      labels: { a: '1', b: '2' },
      upstream: { nodes: { '127.0.0.1:80': 1 }, type: 'roundrobin' },
    });
    const reply = await admin.call('PATCH', '/routes/1', {
      methods: ['PUT'],
      desc: null,
      labels: { b: null, c: '3' },
      upstream: { nodes: { '127.0.0.1:81': 2 } },
    });
    assert.equal(reply.status, 200);
    const value = reply.json.value as Record<string, unknown>;
    assert.deepEqual(value.methods, ['PUT']);
    assert.equal('desc' in value, false);
    assert.deepEqual(value.labels, { a: '1', c: '3' });
    assert.deepEqual(value.upstream, { nodes: { '127.0.0.1:80': 1, '127.0.0.1:81': 2 }, type: 'roundrobin' });
    const stored = await admin.call('GET', '/routes/1');
    assert.deepEqual(stored.json.value, value);
  });

  it('replaces the value at a sub-path', async () => {
    const reply = await admin.call('PATCH', '/routes/1/upstream/nodes', { '10.0.0.1:8080': 5 });
    assert.equal(reply.status, 200);
    const value = reply.json.value as { upstream: { nodes: unknown; type: string } };
    assert.deepEqual(value.upstream.nodes, { '10.0.0.1:8080': 5 });
    assert.equal(value.upstream.type, 'roundrobin');
    const uri = await admin.call('PATCH', '/routes/1/uri', '"/patched"');
    assert.equal((uri.json.value as Record<string, unknown>).uri, '/patched');
  });

  it('validates the merged value', async () => {
    const reply = await admin.call('PATCH', '/routes/1', { methods: ['GET', 'get'] });
    assert.equal(reply.status, 400);
    assert.deepEqual(reply.json, {
      error_msg:
        'invalid configuration: property "methods" validation failed: failed to validate item 2: matches none of the enum values',
    });
    const sub = await admin.call('PATCH', '/routes/1/upstream/retries', -1);
    assert.equal(sub.status, 400);
    assert.match(String(sub.json.error_msg), /expected -1 to be at least 0$/);
  });

  it('cannot reach Object.prototype through a sub-path or a merge key', async () => {
    const sub = await admin.call('PATCH', '/routes/1/__proto__/polluted', '"yes"');
    assert.equal(sub.status, 400);
    const merged = await admin.call('PATCH', '/routes/1', '{"labels": {"__proto__": {"polluted": "yes"}}}');
    assert.equal(merged.status, 400);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  it('refuses a body id that differs from the URL id', async () => {
    const reply = await admin.call('PATCH', '/routes/1', { id: '2' });
    assert.deepEqual(reply.json, { error_msg: 'wrong route id' });
  });
});

describe('Admin API TTL', () => {
  let admin: Harness;
  before(async () => {
    admin = await startAdmin();
  });
  after(() => admin.close());

  it('expires an item after ?ttl= seconds', async () => {
    const reply = await admin.call('PUT', '/routes/short?ttl=0.3', { uri: '/short', upstream });
    assert.equal(reply.status, 201);
    assert.equal((await admin.call('GET', '/routes/short')).status, 200);
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.equal((await admin.call('GET', '/routes/short')).status, 404);
  });

  it('accepts ttl on POST and PATCH', async () => {
    const posted = await admin.call('POST', '/upstreams?ttl=0.3', upstream);
    assert.equal(posted.status, 201);
    await admin.call('PUT', '/upstreams/keep', upstream);
    const patched = await admin.call('PATCH', '/upstreams/keep?ttl=0.3', { desc: 'soon gone' });
    assert.equal(patched.status, 200);
    await new Promise((resolve) => setTimeout(resolve, 600));
    const postedId = (posted.json.value as { id: string }).id;
    assert.equal((await admin.call('GET', `/upstreams/${postedId}`)).status, 404);
    assert.equal((await admin.call('GET', '/upstreams/keep')).status, 404);
  });

  it('rejects a ttl that is not a number', async () => {
    const reply = await admin.call('PUT', '/routes/t?ttl=abc', { uri: '/t', upstream });
    assert.equal(reply.status, 400);
    assert.deepEqual(reply.json, { error_msg: 'invalid argument ttl: should be a number' });
  });
});

describe('Admin API schema and plugin endpoints', () => {
  let admin: Harness;
  before(async () => {
    admin = await startAdmin({ plugins: testCatalog });
  });
  after(() => admin.close());

  it('serves resource schemas', async () => {
    for (const name of ['route', 'routes', 'upstream', 'ssl', 'consumer']) {
      const reply = await admin.call('GET', `/schema/${name}`);
      assert.equal(reply.status, 200, name);
      assert.equal(reply.json.type, 'object');
    }
    assert.equal((await admin.call('GET', '/schema/nope')).status, 404);
  });

  it('validates a body without storing it', async () => {
    const ok = await admin.call('POST', '/schema/validate/routes', { uri: '/v', upstream_id: 'nowhere' });
    assert.equal(ok.status, 200);
    const bad = await admin.call('POST', '/schema/validate/routes', { uri: '' });
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.json, {
      error_msg:
        'invalid configuration: property "uri" validation failed: string too short, expected at least 1, got 0',
    });
    assert.equal((await admin.call('GET', '/routes')).json.total, 0);
  });

  it('lists plugins and serves plugin schemas from the catalog', async () => {
    const list = await admin.call('GET', '/plugins/list');
    assert.deepEqual(JSON.parse(list.text), ['key-auth', 'limit-req', 'prometheus']);
    const schema = await admin.call('GET', '/schema/plugins/limit-req');
    assert.deepEqual(schema.json, { type: 'object', title: 'limit-req' });
    assert.equal((await admin.call('GET', '/plugins/limit-req')).status, 200);
    assert.equal((await admin.call('GET', '/plugins/nope')).status, 404);
  });

  it('an empty catalog lists no plugins', async () => {
    const bare = await startAdmin();
    try {
      assert.deepEqual(JSON.parse((await bare.call('GET', '/plugins/list')).text), []);
    } finally {
      await bare.close();
    }
  });
});
