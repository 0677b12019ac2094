// The reference table that validation, deletion checks and storage share.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { idSchema } from '../../src/schema/definitions';
import { resourceSchemas, validateResource } from '../../src/schema/index';
import { REFERENCES, withStringReferences } from '../../src/schema/references';

const emptyStore = { get: () => undefined };

describe('id references', () => {
  it('name fields whose schema is the id schema', () => {
    for (const ref of REFERENCES) {
      // Compared as served JSON: TypeBox marks optional fields with a symbol.
      const served = JSON.parse(JSON.stringify(resourceSchemas[ref.from])) as { properties: Record<string, unknown> };
      assert.deepEqual(served.properties[ref.field], JSON.parse(JSON.stringify(idSchema)), `${ref.from}.${ref.field}`);
    }
  });

  it('are checked in table order with APISIX wording', () => {
    const route = { uri: '/r', upstream_id: 'u', service_id: 's', plugin_config_id: 'p' };
    assert.equal(
      validateResource('routes', route, { store: emptyStore }),
      'failed to fetch upstream info by upstream id [u], response code: 404',
    );
    const { upstream_id: _upstream, ...withoutUpstream } = route;
    assert.equal(
      validateResource('routes', withoutUpstream, { store: emptyStore }),
      'failed to fetch service info by service id [s], response code: 404',
    );
    assert.equal(
      validateResource('consumers', { username: 'jack', group_id: 7 }, { store: emptyStore }),
      'failed to fetch consumer group info by consumer group id [7], response code: 404',
    );
    assert.equal(validateResource('routes', route, { store: emptyStore, checkReferences: false }), undefined);
  });

  it('become strings when stored; other fields and the input stay as they are', () => {
    const route = { uri: '/r', upstream_id: 1, service_id: '2', priority: 3 };
    assert.deepEqual(withStringReferences('routes', route), {
      uri: '/r',
      upstream_id: '1',
      service_id: '2',
      priority: 3,
    });
    assert.equal(route.upstream_id, 1);
    assert.deepEqual(withStringReferences('upstreams', { id: 1, nodes: {} }), { id: 1, nodes: {} });
  });
});
