// Small questions about parsed JSON values, asked by validation, error
// messages and the Admin API alike.

export type JsonObject = Record<string, unknown>;

/** An object that is not an array or null: what a JSON `{...}` parses to. */
export function isPlainObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The JSON Schema type name of a value, as APISIX's messages spell it (`array`, `null`, `object`...). */
export function jsonTypeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/** APISIX's message for a body that is not an object. */
export function notAnObjectMessage(value: unknown): string {
  return `invalid configuration: wrong type: expected object, got ${jsonTypeName(value)}`;
}
