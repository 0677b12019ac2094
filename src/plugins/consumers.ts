// Consumers by credential, for auth plugins: `findConsumer('key-auth', 'key',
// value)` is one Map lookup. An index belongs to one config version and builds
// the table for a (plugin, field) pair on its first lookup, so a version whose
// routes never authenticate costs nothing.

import type { Consumer } from '../schema/types';

export class ConsumerIndex {
  readonly consumers: readonly Consumer[];
  private readonly byUsername = new Map<string, Consumer>();
  /** plugin -> field -> credential value -> consumer (nested, so a lookup builds no key string per request). */
  private readonly byCredential = new Map<string, Map<string, Map<string, Consumer>>>();

  constructor(consumers: readonly Consumer[]) {
    this.consumers = consumers;
    for (const consumer of consumers) this.byUsername.set(consumer.username, consumer);
  }

  static empty(): ConsumerIndex {
    return new ConsumerIndex([]);
  }

  byName(username: string): Consumer | undefined {
    return this.byUsername.get(username);
  }

  /** The consumer whose `plugins[plugin][field]` equals `value` (string credentials only). */
  find(plugin: string, field: string, value: string): Consumer | undefined {
    let fields = this.byCredential.get(plugin);
    if (fields === undefined) {
      fields = new Map();
      this.byCredential.set(plugin, fields);
    }
    let table = fields.get(field);
    if (table === undefined) {
      table = new Map();
      for (const consumer of this.consumers) {
        const conf = consumer.plugins?.[plugin] as Record<string, unknown> | undefined;
        const credential = conf?.[field];
        // The first consumer with a value keeps it, as a store would refuse a duplicate.
        if (typeof credential === 'string' && !table.has(credential)) table.set(credential, consumer);
      }
      fields.set(field, table);
    }
    return table.get(value);
  }
}
