// Turns an ajv error into the message APISIX's Lua `jsonschema` library would
// give for the same value, e.g. `property "uri" validation failed: string too
// short, expected at least 1, got 0`. Clients (curl scripts, the dashboard,
// adc) and APISIX's own tests match on these strings.
//
// ajv runs with allErrors off, so it stops at the first failing keyword; the
// last error it reports is that keyword (branch errors of an anyOf/oneOf come
// before the anyOf/oneOf error itself). The path prefix is rebuilt from the
// schema path, which says at each step whether ajv descended through
// `properties`, `items`, `additionalProperties` or `patternProperties`.

import type { ErrorObject } from 'ajv';
import { jsonTypeName } from './json';

function quote(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

function requiredAlternatives(branches: unknown): string {
  if (!Array.isArray(branches)) return '';
  const lists: string[] = [];
  for (const branch of branches) {
    const required = (branch as { required?: unknown } | null)?.required;
    if (Array.isArray(required)) lists.push(JSON.stringify(required));
  }
  return lists.length > 0 ? ': ' + lists.join(' or ') : '';
}

function keywordMessage(error: ErrorObject): string {
  const params = error.params as Record<string, unknown>;
  const data = error.data;
  switch (error.keyword) {
    case 'type':
      return `wrong type: expected ${String(params.type)}, got ${jsonTypeName(data)}`;
    case 'minLength':
      return `string too short, expected at least ${String(params.limit)}, got ${[...String(data)].length}`;
    case 'maxLength':
      return `string too long, expected at most ${String(params.limit)}, got ${[...String(data)].length}`;
    case 'pattern':
      return `failed to match pattern ${quote(params.pattern)} with ${quote(data)}`;
    case 'minimum':
      return `expected ${String(data)} to be at least ${String(params.limit)}`;
    case 'maximum':
      return `expected ${String(data)} to be at most ${String(params.limit)}`;
    case 'exclusiveMinimum':
      return `expected ${String(data)} to be greater than ${String(params.limit)}`;
    case 'exclusiveMaximum':
      return `expected ${String(data)} to be smaller than ${String(params.limit)}`;
    case 'multipleOf':
      return `expected ${String(data)} to be a multiple of ${String(params.multipleOf)}`;
    case 'enum':
      return 'matches none of the enum values';
    case 'const':
      return 'failed to check const value';
    case 'required':
      return `property ${quote(params.missingProperty)} is required`;
    case 'dependencies':
      return `property ${quote(params.missingProperty)} is required when ${String(params.property)} is set`;
    case 'additionalProperties':
      return `additional properties forbidden, found ${String(params.additionalProperty)}`;
    case 'minItems':
      return `expect array to have at least ${String(params.limit)} items`;
    case 'maxItems':
      return `expect array to have at most ${String(params.limit)} items`;
    case 'uniqueItems': {
      // ajv reports the pair zero-based; jsonschema reports it one-based, lower first.
      const [first, second] = [Number(params.i), Number(params.j)].sort((a, b) => a - b);
      return `expected unique items but items ${first + 1} and ${second + 1} are equal`;
    }
    case 'minProperties':
      return `expect object to have at least ${String(params.limit)} properties`;
    case 'maxProperties':
      return `expect object to have at most ${String(params.limit)} properties`;
    case 'anyOf':
      return 'object matches none of the required' + requiredAlternatives(error.schema);
    case 'oneOf': {
      const passing = params.passingSchemas;
      if (Array.isArray(passing) && passing.length >= 2) {
        return `value should match only one schema, but matches both schemas ${Number(passing[0]) + 1} and ${Number(passing[1]) + 1}`;
      }
      return 'value should match only one schema, but matches none';
    }
    case 'not':
      return "value wasn't supposed to match schema";
    case 'format':
      if (params.format === 'ip-or-cidr') return `expect valid ip address or CIDR but got: ${String(data)}`;
      return `expect valid ${String(params.format)} but got: ${String(data)}`;
    default:
      return error.message ?? `failed keyword ${error.keyword}`;
  }
}

function decodePointer(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((segment) => segment.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function pathPrefix(error: ErrorObject): string {
  const instance = decodePointer(error.instancePath);
  // Drop the leading '#' and the keyword itself at the end.
  const schemaTokens = error.schemaPath.split('/').slice(1, -1).map(decodeURIComponent);
  let prefix = '';
  let next = 0;
  for (let i = 0; i < schemaTokens.length && next < instance.length; i++) {
    const token = schemaTokens[i];
    if (token === 'properties') {
      prefix += `property ${quote(instance[next++])} validation failed: `;
      i++; // the property name
    } else if (token === 'patternProperties') {
      prefix += `failed to validate ${instance[next++]} (matching ${quote(schemaTokens[i + 1])}): `;
      i++; // the pattern
    } else if (token === 'additionalProperties') {
      prefix += `failed to validate additional property ${instance[next++]}: `;
    } else if (token === 'items') {
      prefix += `failed to validate item ${Number(instance[next++]) + 1}: `;
      if (/^\d+$/.test(schemaTokens[i + 1] ?? '')) i++; // tuple form
    }
  }
  return prefix;
}

/** The jsonschema-style message for the error ajv stopped at. */
export function formatAjvErrors(errors: readonly ErrorObject[] | null | undefined): string {
  if (!errors || errors.length === 0) return 'invalid value';
  const error = errors[errors.length - 1];
  return pathPrefix(error) + keywordMessage(error);
}
