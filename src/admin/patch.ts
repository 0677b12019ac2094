// PATCH semantics of the APISIX Admin API: a JSON merge patch (RFC 7396: null
// deletes a field, objects merge, anything else, arrays included, replaces),
// or, with a sub-path (`PATCH /routes/1/upstream/nodes`), replacing the value
// at that path.

import { isPlainObject } from '../schema/json';

type Json = unknown;

/** Keys that would reach an object's prototype instead of its own fields. */
const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function setOwn(target: Record<string, Json>, key: string, value: Json): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}

/** Apply `patch` to a copy of `target`. */
export function mergePatch(target: Json, patch: Json): Json {
  if (!isPlainObject(patch)) return structuredClone(patch);
  const result: Record<string, Json> = isPlainObject(target) ? structuredClone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else setOwn(result, key, mergePatch(Object.hasOwn(result, key) ? result[key] : undefined, value));
  }
  return result;
}

/**
 * A copy of `target` with the value at `path` (object keys, or array indexes
 * counted from 1 as APISIX does) replaced by `value`. Returns an error message
 * when the path does not lead through objects or arrays.
 */
export function replaceAtPath(
  target: Record<string, Json>,
  path: readonly string[],
  value: Json,
): Record<string, Json> | string {
  const result = structuredClone(target);
  let node: Json = result;
  if (path.some((segment) => UNSAFE_KEYS.has(segment))) return `invalid sub path: ${path.join('/')}`;
  for (let i = 0; i < path.length; i++) {
    const segment = path[i];
    const last = i === path.length - 1;
    if (Array.isArray(node)) {
      const index = Number(segment) - 1;
      if (!Number.isInteger(index) || index < 0 || index > node.length) return `invalid sub path: ${path.join('/')}`;
      if (last) node[index] = value;
      else node = node[index];
    } else if (isPlainObject(node)) {
      if (last) {
        node[segment] = value;
      } else {
        if (!Object.hasOwn(node, segment)) node[segment] = {};
        node = node[segment];
      }
    } else {
      return `invalid sub path: ${path.join('/')}`;
    }
  }
  return result;
}
