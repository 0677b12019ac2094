// A process's own copy of the configuration, kept item by item so that a
// change travels between processes as the few items it touched (a ConfigDelta)
// instead of the whole snapshot. With 10,000 routes a full snapshot is about
// 2 MB of JSON to encode once and decode in every worker; a one-route delta is
// a few hundred bytes.
//
// The source side calls replace(snapshot) with each new store snapshot and
// sends the delta it returns; the receiving side calls apply(delta), which
// refuses a delta that does not start at its own version (it then asks for a
// full snapshot). Both sides build their ConfigSnapshot from the same maps, in
// the same order.

import { RESOURCES, type ConfigSnapshot, type ResourceName } from '../store/types';

type ItemValue = Readonly<Record<string, unknown>>;

export interface ConfigChange {
  resource: ResourceName;
  id: string;
  /** The new value; null when the item was deleted. */
  value: ItemValue | null;
}

export interface ConfigDelta {
  /** The version the receiver must hold for this delta to apply. */
  fromVersion: number;
  version: number;
  changes: ConfigChange[];
}

function itemId(value: ItemValue): string {
  return String(value.id);
}

/** Same JSON value: identical objects (the stores share frozen items across snapshots), or equal JSON text. */
function sameValue(a: ItemValue | undefined, b: ItemValue): boolean {
  if (a === b) return true;
  return a !== undefined && JSON.stringify(a) === JSON.stringify(b);
}

export class ConfigMirror {
  readonly #items = {} as Record<ResourceName, Map<string, ItemValue>>;
  /** The arrays replace() last adopted; an unchanged resource keeps its array in the next store snapshot. */
  readonly #adopted: Partial<Record<ResourceName, readonly unknown[]>> = {};
  readonly #arrays: Partial<Record<ResourceName, readonly unknown[]>> = {};
  #version = -1;
  #snapshot: ConfigSnapshot | undefined;

  constructor() {
    for (const resource of RESOURCES) this.#items[resource] = new Map();
  }

  /** -1 until the first snapshot. */
  get version(): number {
    return this.#version;
  }

  /** Adopt a whole snapshot and return what changed since the previous one. */
  replace(snapshot: ConfigSnapshot): ConfigDelta {
    const delta: ConfigDelta = { fromVersion: this.#version, version: snapshot.version, changes: [] };
    for (const resource of RESOURCES) {
      const next = snapshot[resource] as readonly ItemValue[];
      if (this.#adopted[resource] === next) continue;
      const items = this.#items[resource];
      const seen = new Set<string>();
      for (const value of next) {
        const id = itemId(value);
        seen.add(id);
        if (sameValue(items.get(id), value)) continue;
        delta.changes.push({ resource, id, value });
      }
      for (const id of items.keys()) {
        if (!seen.has(id)) delta.changes.push({ resource, id, value: null });
      }
      this.#adopted[resource] = next;
    }
    this.#applyChanges(delta);
    return delta;
  }

  /** Apply a delta from another process; false (nothing changed) when it does not start at this version. */
  apply(delta: ConfigDelta): boolean {
    if (delta.fromVersion !== this.#version) return false;
    for (const change of delta.changes) delete this.#adopted[change.resource];
    this.#applyChanges(delta);
    return true;
  }

  #applyChanges(delta: ConfigDelta): void {
    for (const { resource, id, value } of delta.changes) {
      if (value === null) this.#items[resource].delete(id);
      else this.#items[resource].set(id, value);
      delete this.#arrays[resource];
    }
    if (delta.changes.length > 0 || delta.version !== this.#version) this.#snapshot = undefined;
    this.#version = delta.version;
  }

  /** The configuration as a snapshot; resources untouched since the last call keep their arrays. */
  snapshot(): ConfigSnapshot {
    if (this.#snapshot !== undefined) return this.#snapshot;
    const arrays = {} as Record<ResourceName, readonly unknown[]>;
    for (const resource of RESOURCES) {
      let array = this.#arrays[resource];
      if (array === undefined) {
        array = Object.freeze([...this.#items[resource].values()]);
        this.#arrays[resource] = array;
      }
      arrays[resource] = array;
    }
    this.#snapshot = Object.freeze({ version: this.#version, ...arrays }) as unknown as ConfigSnapshot;
    return this.#snapshot;
  }
}
