// Which resources refer to which by id. Validation checks that a referenced
// item exists, the Admin API refuses to delete an item still referred to, and
// stored references are strings: one table serves all three.

import type { ResourceName } from '../store/types';
import type { JsonObject } from './json';

export interface Reference {
  from: ResourceName;
  field: string;
  to: ResourceName;
  /** How APISIX's messages name the target: `failed to fetch <label> info by <label> id [...]`. */
  label: string;
}

/** In the order validation checks them: a route's upstream, then its service, then its plugin config. */
export const REFERENCES: readonly Reference[] = [
  { from: 'routes', field: 'upstream_id', to: 'upstreams', label: 'upstream' },
  { from: 'routes', field: 'service_id', to: 'services', label: 'service' },
  { from: 'routes', field: 'plugin_config_id', to: 'plugin_configs', label: 'plugin config' },
  { from: 'services', field: 'upstream_id', to: 'upstreams', label: 'upstream' },
  { from: 'consumers', field: 'group_id', to: 'consumer_groups', label: 'consumer group' },
];

/** The references an item of `resource` may hold. */
export function referencesFrom(resource: ResourceName): Reference[] {
  return REFERENCES.filter((ref) => ref.from === resource);
}

/**
 * A copy of `value` whose references to other items are strings. APISIX takes
 * `upstream_id: 1` as well as `"1"`; the data plane looks items up by their
 * string ids, and the resource types say string.
 */
export function withStringReferences(resource: ResourceName, value: JsonObject): JsonObject {
  const result = { ...value };
  for (const ref of referencesFrom(resource)) {
    if (typeof result[ref.field] === 'number') result[ref.field] = String(result[ref.field]);
  }
  return result;
}
