// The counting rules of health state in the shared dictionary (src/health/state.ts),
// the documented key scheme, and readHealthReport's view of it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { activeSettings, passiveSettings, StatusClass, type Thresholds } from '../../src/health/config';
import { readHealthReport } from '../../src/health';
import { NodeKeys } from '../../src/health/keys';
import { Outcome, recordOutcome } from '../../src/health/state';
import { availableBackends } from '../helpers/backends';
import { snapshot } from '../helpers/dataplane';
import { openTestDict, type TestDict } from './support';

const THRESHOLDS: Thresholds = { successes: 2, httpFailures: 3, tcpFailures: 2, timeouts: 2 };

for (const backend of availableBackends()) {
  describe(`health state (${backend.name})`, () => {
    let testDict: TestDict;
    let serial = 0;
    /** Fresh keys per test. */
    const freshKeys = (): NodeKeys => new NodeKeys(`u${++serial}`, '127.0.0.1:80');

    before(() => {
      testDict = openTestDict(backend);
    });
    after(() => testDict.close());

    it('uses the documented keys', () => {
      const keys = new NodeKeys('route:7', '[::1]:8080');
      assert.equal(keys.state, 'health/route:7/[::1]:8080/state');
      assert.equal(keys.successes, 'health/route:7/[::1]:8080/successes');
      assert.equal(keys.failures, 'health/route:7/[::1]:8080/failures');
      assert.equal(keys.checked, 'health/route:7/[::1]:8080/checked');
    });

    it('a node starts healthy and turns unhealthy at exactly the failure threshold', () => {
      const { dict } = testDict;
      const keys = freshKeys();
      assert.equal(dict.get(keys.state), undefined);
      assert.equal(recordOutcome(dict, keys, Outcome.HttpFailure, THRESHOLDS), true);
      assert.equal(recordOutcome(dict, keys, Outcome.HttpFailure, THRESHOLDS), true);
      assert.equal(recordOutcome(dict, keys, Outcome.HttpFailure, THRESHOLDS), false);
      assert.equal(dict.get(keys.state), 0);
      assert.equal(dict.get(keys.failures), 0, 'counts start again after a change');
    });

    it('a success ends a run of failures', () => {
      const { dict } = testDict;
      const keys = freshKeys();
      recordOutcome(dict, keys, Outcome.HttpFailure, THRESHOLDS);
      recordOutcome(dict, keys, Outcome.HttpFailure, THRESHOLDS);
      recordOutcome(dict, keys, Outcome.Success, THRESHOLDS);
      recordOutcome(dict, keys, Outcome.HttpFailure, THRESHOLDS);
      assert.equal(recordOutcome(dict, keys, Outcome.HttpFailure, THRESHOLDS), true);
      assert.equal(recordOutcome(dict, keys, Outcome.HttpFailure, THRESHOLDS), false);
    });

    it('failure kinds count separately, each against its own threshold', () => {
      const { dict } = testDict;
      const keys = freshKeys();
      assert.equal(recordOutcome(dict, keys, Outcome.HttpFailure, THRESHOLDS), true);
      assert.equal(recordOutcome(dict, keys, Outcome.Timeout, THRESHOLDS), true);
      assert.equal(recordOutcome(dict, keys, Outcome.TcpFailure, THRESHOLDS), true);
      assert.equal(recordOutcome(dict, keys, Outcome.HttpFailure, THRESHOLDS), true);
      assert.equal(recordOutcome(dict, keys, Outcome.TcpFailure, THRESHOLDS), false, 'second tcp failure');
    });

    it('an unhealthy node comes back after healthy.successes consecutive successes', () => {
      const { dict } = testDict;
      const keys = freshKeys();
      dict.set(keys.state, 0);
      assert.equal(recordOutcome(dict, keys, Outcome.Success, THRESHOLDS), false);
      assert.equal(recordOutcome(dict, keys, Outcome.TcpFailure, THRESHOLDS), false, 'a failure ends the run');
      assert.equal(dict.get(keys.successes), 0);
      assert.equal(recordOutcome(dict, keys, Outcome.Success, THRESHOLDS), false);
      assert.equal(recordOutcome(dict, keys, Outcome.Success, THRESHOLDS), true);
      assert.equal(dict.get(keys.state), 1);
    });

    it('a threshold of 0 turns that kind of result off', () => {
      const { dict } = testDict;
      const keys = freshKeys();
      const noTimeouts = { ...THRESHOLDS, timeouts: 0 };
      for (let i = 0; i < 5; i++) assert.equal(recordOutcome(dict, keys, Outcome.Timeout, noTimeouts), true);
      assert.equal(dict.get(keys.failures), undefined);
    });

    it('readHealthReport lists every upstream with checks, inline ones by route and service id', () => {
      const { dict } = testDict;
      const checks = { active: {} };
      const config = snapshot({
        upstreams: [
          { id: 'checked', name: 'first', nodes: { '127.0.0.1:1001': 1, '127.0.0.1:1002': 1 }, checks },
          { id: 'plain', nodes: { '127.0.0.1:1003': 1 } },
        ],
        routes: [
          { id: 'r1', uri: '/r1', upstream: { nodes: [{ host: '::1', port: 1004, weight: 1 }], checks } },
          { id: 'r2', uri: '/r2', upstream_id: 'checked' },
        ],
        services: [{ id: 's1', upstream: { nodes: { 'example.com': 1 }, checks } }],
      });
      dict.set('health/checked/127.0.0.1:1002/state', 0);
      dict.set('health/checked/127.0.0.1:1002/successes', 1);
      dict.set('health/checked/127.0.0.1:1002/checked', 1700000000000);
      dict.set('health/route:r1/[::1]:1004/failures', 1 + 2 ** 16);
      const report = readHealthReport(dict, config);
      assert.deepEqual(report, {
        upstreams: [
          {
            id: 'checked',
            name: 'first',
            nodes: [
              { upstreamId: 'checked', node: '127.0.0.1:1001', healthy: true, successes: 0, failures: 0 },
              {
                upstreamId: 'checked',
                node: '127.0.0.1:1002',
                healthy: false,
                successes: 1,
                failures: 0,
                lastCheck: 1700000000000,
              },
            ],
          },
          {
            id: 'route:r1',
            nodes: [{ upstreamId: 'route:r1', node: '[::1]:1004', healthy: true, successes: 0, failures: 2 }],
          },
          {
            id: 'service:s1',
            nodes: [{ upstreamId: 'service:s1', node: 'example.com:80', healthy: true, successes: 0, failures: 0 }],
          },
        ],
      });
    });
  });
}

describe('health check settings', () => {
  it('fills in APISIX defaults for active checks', () => {
    const settings = activeSettings({});
    assert.equal(settings.kind, 'http');
    assert.equal(settings.timeoutMs, 1000);
    assert.equal(settings.concurrency, 10);
    assert.equal(settings.httpPath, '/');
    assert.equal(settings.verifyCertificate, true);
    assert.equal(settings.healthyIntervalMs, 1000);
    assert.equal(settings.unhealthyIntervalMs, 1000);
    assert.deepEqual(settings.thresholds, { successes: 2, httpFailures: 5, tcpFailures: 2, timeouts: 3 });
    for (const status of [200, 302]) assert.equal(settings.statuses[status], StatusClass.Success);
    for (const status of [429, 404, 500, 501, 502, 503, 504, 505])
      assert.equal(settings.statuses[status], StatusClass.Failure);
    assert.equal(settings.statuses[201], StatusClass.Ignored);
  });

  it('fills in APISIX defaults for passive checks', () => {
    const settings = passiveSettings({});
    assert.deepEqual(settings.thresholds, { successes: 5, httpFailures: 5, tcpFailures: 2, timeouts: 7 });
    for (const status of [200, 208, 226, 300, 308]) assert.equal(settings.statuses[status], StatusClass.Success);
    for (const status of [429, 500, 503]) assert.equal(settings.statuses[status], StatusClass.Failure);
    assert.equal(settings.statuses[502], StatusClass.Ignored);
  });

  it('takes fractions of a second for intervals and timeouts', () => {
    const settings = activeSettings({ timeout: 0.25, healthy: { interval: 0.1 }, unhealthy: { interval: 0.2 } });
    assert.equal(settings.timeoutMs, 250);
    assert.equal(settings.healthyIntervalMs, 100);
    assert.equal(settings.unhealthyIntervalMs, 200);
  });
});
