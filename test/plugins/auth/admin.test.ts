// Misconfigured auth plugins are refused by the Admin API with APISIX's
// "failed to check the configuration of plugin <name> err: ..." bodies.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { RegistryCatalog } from '../../../src/plugins/catalog';
import { PluginLoader } from '../../../src/plugins/loader';
import { startAdmin, type Harness } from '../../admin/harness';

const upstream = { type: 'roundrobin', nodes: { '127.0.0.1:1980': 1 } };

describe('auth plugins through the Admin API', () => {
  let admin: Harness;

  before(async () => {
    const loader = new PluginLoader();
    loader.load();
    admin = await startAdmin({ plugins: new RegistryCatalog(() => loader.registry) });
  });
  after(() => admin.close());

  async function putRoute(plugins: Record<string, unknown>) {
    return admin.call('PUT', '/routes/1', { uri: '/get', plugins, upstream });
  }

  async function putConsumer(plugins: Record<string, unknown>) {
    return admin.call('PUT', '/consumers', { username: 'jack', plugins });
  }

  it('accepts valid route and consumer configurations', async () => {
    for (const plugins of [
      { 'key-auth': {} },
      { 'basic-auth': { hide_credentials: true } },
      { 'jwt-auth': { header: 'x-jwt' } },
      { 'hmac-auth': { signed_headers: ['date'] } },
      { 'key-auth': {}, 'consumer-restriction': { whitelist: ['jack'] } },
    ]) {
      const reply = await putRoute(plugins);
      assert.ok(reply.status === 200 || reply.status === 201, `${JSON.stringify(plugins)}: ${reply.text}`);
    }
    const consumer = await putConsumer({
      'key-auth': { key: 'k' },
      'basic-auth': { username: 'jack', password: 'p' },
      'jwt-auth': { key: 'jack-key', secret: 's' },
      'hmac-auth': { key_id: 'jack-id', secret_key: 's' },
    });
    assert.ok(consumer.status === 200 || consumer.status === 201, consumer.text);
  });

  it('refuses misconfigured routes with APISIX bodies', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [
        { 'key-auth': { header: 1 } },
        'failed to check the configuration of plugin key-auth err: property "header" validation failed: wrong type: expected string, got number',
      ],
      [
        { 'jwt-auth': { claims_to_verify: ['iat'] } },
        'failed to check the configuration of plugin jwt-auth err: property "claims_to_verify" validation failed: failed to validate item 1: matches none of the enum values',
      ],
      [
        { 'hmac-auth': { clock_skew: 0 } },
        'failed to check the configuration of plugin hmac-auth err: property "clock_skew" validation failed: expected 0 to be at least 1',
      ],
      [
        { 'consumer-restriction': {} },
        'failed to check the configuration of plugin consumer-restriction err: object matches none of the required: ["blacklist"] or ["whitelist"] or ["allowed_by_methods"]',
      ],
    ];
    for (const [plugins, message] of cases) {
      const reply = await putRoute(plugins);
      assert.equal(reply.status, 400, reply.text);
      assert.deepEqual(reply.json, { error_msg: message });
    }
  });

  it('refuses misconfigured consumers with APISIX bodies', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ 'key-auth': {} }, 'failed to check the configuration of plugin key-auth err: property "key" is required'],
      [
        { 'basic-auth': { username: 'jack' } },
        'failed to check the configuration of plugin basic-auth err: property "password" is required',
      ],
      [
        { 'jwt-auth': { key: 'k', algorithm: 'RS256' } },
        'failed to check the configuration of plugin jwt-auth err: missing valid public key',
      ],
      [
        { 'hmac-auth': { key_id: 'k' } },
        'failed to check the configuration of plugin hmac-auth err: property "secret_key" is required',
      ],
    ];
    for (const [plugins, message] of cases) {
      const reply = await putConsumer(plugins);
      assert.equal(reply.status, 400, reply.text);
      // APISIX's admin/consumers.lua prefixes the plugin checker's message.
      assert.deepEqual(reply.json, { error_msg: `invalid plugins configuration: ${message}` });
    }
  });
});
