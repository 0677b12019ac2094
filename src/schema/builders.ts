// Schema builders for the JSON Schema shapes APISIX uses that TypeBox would
// spell differently. Each returns a TypeBox schema whose static type is what
// the shape accepts, and whose JSON is exactly APISIX's, because the Admin
// API's error messages quote the schema (e.g. `(matching ".*")`).

import { Type, type SchemaOptions, type Static, type TSchema, type TUnsafe } from '@sinclair/typebox';

/** `{type: 'string', enum}`; TypeBox's own enums compile to `anyOf` of consts, which words errors differently. */
export function stringEnum<const Values extends readonly string[]>(
  values: Values,
  options: SchemaOptions = {},
): TUnsafe<Values[number]> {
  return Type.Unsafe<Values[number]>({ ...options, type: 'string', enum: values });
}

/** `{type: 'integer', enum}`, as `status: 1 | 0`. */
export function integerEnum<const Values extends readonly number[]>(
  values: Values,
  options: SchemaOptions = {},
): TUnsafe<Values[number]> {
  return Type.Unsafe<Values[number]>({ ...options, type: 'integer', enum: values });
}

/** An object whose every field matches `value`: `patternProperties: {'.*': value}` (TypeBox's Record says `^(.*)$`). */
export function stringMap<Value extends TSchema>(value: Value): TUnsafe<Record<string, Static<Value>>> {
  return Type.Unsafe<Record<string, Static<Value>>>({ type: 'object', patternProperties: { '.*': value } });
}

/** An object whose every field matches `value`, checked as `additionalProperties`. */
export function objectOf<Value extends TSchema>(value: Value): TUnsafe<Record<string, Static<Value>>> {
  return Type.Unsafe<Record<string, Static<Value>>>({ type: 'object', additionalProperties: value });
}

/** `{type: 'object'}`: any object, its fields left to another check. */
export function anyObject(): TUnsafe<Record<string, unknown>> {
  return Type.Unsafe<Record<string, unknown>>({ type: 'object' });
}

/** `{type: 'array'}`: any array, its items left to another check. */
export function anyArray(): TUnsafe<unknown[]> {
  return Type.Unsafe<unknown[]>({ type: 'array' });
}
