// APISIX accepts a reference to another item as an integer (`upstream_id: 1`);
// the Admin API stores it as a string, the type the resource types declare and
// the data plane looks items up by.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startAdmin, upstream, type Harness } from './harness';

describe('Admin API id references', () => {
  let admin: Harness;
  before(async () => {
    admin = await startAdmin();
    await admin.call('PUT', '/upstreams/1', upstream);
    await admin.call('PUT', '/services/2', { upstream_id: 1 });
    await admin.call('PUT', '/plugin_configs/3', { plugins: {} });
    await admin.call('PUT', '/consumer_groups/4', { plugins: {} });
  });
  after(() => admin.close());

  it('stores integer references given to PUT and POST as strings', async () => {
    const put = await admin.call('PUT', '/routes/r1', {
      uri: '/r1',
      upstream_id: 1,
      service_id: 2,
      plugin_config_id: 3,
    });
    assert.equal(put.status, 201, put.text);
    const stored = admin.store.get('routes', 'r1')?.value;
    assert.equal(stored?.upstream_id, '1');
    assert.equal(stored?.service_id, '2');
    assert.equal(stored?.plugin_config_id, '3');
    assert.equal((admin.store.get('services', '2')?.value ?? {}).upstream_id, '1');

    const posted = await admin.call('POST', '/routes', { uri: '/r2', upstream_id: 1 });
    assert.equal(posted.status, 201, posted.text);
    assert.equal((posted.json.value as Record<string, unknown>).upstream_id, '1');

    await admin.call('PUT', '/consumers', { username: 'jack', group_id: 4 });
    assert.equal(admin.store.get('consumers', 'jack')?.value.group_id, '4');
  });

  it('stores integer references given to PATCH as strings, with or without a sub-path', async () => {
    await admin.call('PUT', '/routes/p', { uri: '/p', upstream_id: '1' });
    const merged = await admin.call('PATCH', '/routes/p', { service_id: 2 });
    assert.equal(merged.status, 200, merged.text);
    assert.equal((merged.json.value as Record<string, unknown>).service_id, '2');

    const replaced = await admin.call('PATCH', '/routes/p/plugin_config_id', 3);
    assert.equal(replaced.status, 200, replaced.text);
    assert.equal(admin.store.get('routes', 'p')?.value.plugin_config_id, '3');
  });

  it('still refuses to delete an item referred to by an integer', async () => {
    const refused = await admin.call('DELETE', '/upstreams/1');
    assert.equal(refused.status, 400);
    assert.match(String(refused.json.error_msg), /^can not delete this upstream, /);
  });

  it('leaves other integer fields alone', async () => {
    await admin.call('PUT', '/routes/prio', { uri: '/prio', upstream_id: 1, priority: 7, status: 0 });
    const stored = admin.store.get('routes', 'prio')?.value;
    assert.equal(stored?.priority, 7);
    assert.equal(stored?.status, 0);
  });
});
