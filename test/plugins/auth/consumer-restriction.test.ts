import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import consumerRestriction from '../../../src/plugins/builtin/consumer-restriction';
import {
  checkPluginConf,
  compilePluginConf,
  testConsumer,
  testContext,
  type TestRequest,
} from '../support/test-context';
import { assertExit, assertPassed } from './helpers';

const jack = testConsumer('jack', {}, { group_id: 'gold' });
const rose = testConsumer('rose', {});

function contextWith(consumerName: 'jack' | 'rose' | undefined, request: TestRequest = {}) {
  const ctx = testContext(request);
  if (consumerName !== undefined) ctx.attachConsumer(consumerName === 'jack' ? jack : rose);
  return ctx;
}

describe('consumer-restriction', () => {
  it('runs in access at priority 2400', () => {
    assert.equal(consumerRestriction.priority, 2400);
    assert.equal(typeof consumerRestriction.access, 'function');
  });

  it('whitelist: lets listed consumers through and rejects others with 403 "The consumer_name is forbidden."', () => {
    const conf = compilePluginConf(consumerRestriction, { whitelist: ['jack'] });
    assertPassed(consumerRestriction.access!(conf, contextWith('jack')));
    assertExit(consumerRestriction.access!(conf, contextWith('rose')), 403, {
      message: 'The consumer_name is forbidden.',
    });
  });

  it('blacklist: rejects listed consumers with the configured code and message', () => {
    const conf = compilePluginConf(consumerRestriction, {
      blacklist: ['rose'],
      rejected_code: 401,
      rejected_msg: 'go away',
    });
    assertPassed(consumerRestriction.access!(conf, contextWith('jack')));
    assertExit(consumerRestriction.access!(conf, contextWith('rose')), 401, { message: 'go away' });
  });

  it('rejects a request without a consumer with 401', () => {
    const conf = compilePluginConf(consumerRestriction, { whitelist: ['jack'] });
    assertExit(consumerRestriction.access!(conf, contextWith(undefined)), 401, {
      message: 'The request is rejected, please check the consumer_name for this request',
    });
  });

  it('restricts by route_id, service_id and consumer_group_id', () => {
    const byRoute = compilePluginConf(consumerRestriction, { type: 'route_id', whitelist: ['r1'] });
    assertPassed(consumerRestriction.access!(byRoute, contextWith(undefined, { routeId: 'r1' })));
    assertExit(consumerRestriction.access!(byRoute, contextWith(undefined, { routeId: 'r2' })), 403, {
      message: 'The route_id is forbidden.',
    });

    const byService = compilePluginConf(consumerRestriction, { type: 'service_id', blacklist: ['s1'] });
    assertExit(consumerRestriction.access!(byService, contextWith(undefined, { serviceId: 's1' })), 403, {
      message: 'The service_id is forbidden.',
    });
    assertExit(consumerRestriction.access!(byService, contextWith(undefined)), 401, {
      message: 'The request is rejected, please check the service_id for this request',
    });

    const byGroup = compilePluginConf(consumerRestriction, { type: 'consumer_group_id', whitelist: ['gold'] });
    assertPassed(consumerRestriction.access!(byGroup, contextWith('jack')));
    assertExit(consumerRestriction.access!(byGroup, contextWith('rose')), 401, {
      message: 'The request is rejected, please check the consumer_group_id for this request',
    });
  });

  it('allowed_by_methods: a consumer may use only its listed methods; whitelisted values may use all', () => {
    const conf = compilePluginConf(consumerRestriction, {
      allowed_by_methods: [{ user: 'jack', methods: ['GET', 'POST'] }],
    });
    assertPassed(consumerRestriction.access!(conf, contextWith('jack', { method: 'POST' })));
    assertExit(consumerRestriction.access!(conf, contextWith('jack', { method: 'DELETE' })), 403, {
      message: 'The consumer_name is forbidden.',
    });
    assertExit(consumerRestriction.access!(conf, contextWith('rose', { method: 'GET' })), 403, {
      message: 'The consumer_name is forbidden.',
    });

    const withWhitelist = compilePluginConf(consumerRestriction, {
      whitelist: ['rose'],
      allowed_by_methods: [{ user: 'jack', methods: ['GET'] }],
    });
    assertPassed(consumerRestriction.access!(withWhitelist, contextWith('rose', { method: 'DELETE' })));
    assertExit(consumerRestriction.access!(withWhitelist, contextWith('jack', { method: 'GET' })), 403, {
      message: 'The consumer_name is forbidden.',
    });
  });

  it('validates configurations with APISIX messages', () => {
    assert.deepEqual(checkPluginConf(consumerRestriction, {}), {
      ok: false,
      error: 'object matches none of the required: ["blacklist"] or ["whitelist"] or ["allowed_by_methods"]',
    });
    assert.deepEqual(checkPluginConf(consumerRestriction, { whitelist: [] }), {
      ok: false,
      error: 'property "whitelist" validation failed: expect array to have at least 1 items',
    });
    assert.deepEqual(checkPluginConf(consumerRestriction, { whitelist: ['a'], type: 'ip' }), {
      ok: false,
      error: 'property "type" validation failed: matches none of the enum values',
    });
    assert.deepEqual(checkPluginConf(consumerRestriction, { whitelist: ['a'], rejected_code: 100 }), {
      ok: false,
      error: 'property "rejected_code" validation failed: expected 100 to be at least 200',
    });
    assert.deepEqual(checkPluginConf(consumerRestriction, { whitelist: ['a'] }), {
      ok: true,
      conf: { whitelist: ['a'], type: 'consumer_name', rejected_code: 403 },
    });
  });
});
