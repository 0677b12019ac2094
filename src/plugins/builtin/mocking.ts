// mocking: answers in the access phase without calling the upstream, with
// `response_example` (text with `$var`s), or a sample generated from
// `response_schema` (JSON Schema: `example` values are used when given,
// otherwise values of the declared type). `delay` seconds first, when set.

import { setTimeout as sleep } from 'node:timers/promises';

import type { PluginContext, PluginModule } from '../types';
import { compileTemplate, type Template } from './proxy-rewrite';

const NAME = 'mocking';
const MOCK_HEADER_VALUE = 'Palisade/0.1.0';

export interface MockingConf {
  readonly delay: number;
  readonly response_status: number;
  readonly content_type: string;
  readonly response_example?: string;
  readonly response_schema?: Readonly<Record<string, unknown>>;
  readonly with_mock_header: boolean;
  readonly response_headers?: Readonly<Record<string, string | number>>;
}

export interface CompiledMocking {
  readonly conf: MockingConf;
  readonly example: Template | undefined;
  readonly headers: readonly (readonly [string, Template])[];
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

function randomInt(min: number, max: number): number {
  return min + Math.floor(Math.random() * (max - min + 1));
}

/** A sample value for a JSON Schema (the subset APISIX's mocking generates: example, enum, types). */
export function sampleFromSchema(schema: unknown): unknown {
  if (typeof schema !== 'object' || schema === null) return null;
  const node = schema as Record<string, unknown>;
  if ('example' in node) return node.example;
  if (Array.isArray(node.enum) && node.enum.length > 0) return node.enum[0];
  const type = Array.isArray(node.type) ? node.type[0] : node.type;
  switch (type) {
    case 'object': {
      const properties = (node.properties ?? {}) as Record<string, unknown>;
      const sample: Record<string, unknown> = {};
      for (const [name, property] of Object.entries(properties)) sample[name] = sampleFromSchema(property);
      return sample;
    }
    case 'array': {
      const count = randomInt(1, 3);
      return Array.from({ length: count }, () => sampleFromSchema(node.items));
    }
    case 'string': {
      const min = typeof node.minLength === 'number' ? node.minLength : 1;
      const max = typeof node.maxLength === 'number' ? node.maxLength : Math.max(min, 10);
      let text = '';
      for (let i = randomInt(min, max); i > 0; i--) text += LETTERS[randomInt(0, LETTERS.length - 1)];
      return text;
    }
    case 'integer': {
      const min = typeof node.minimum === 'number' ? Math.ceil(node.minimum) : 0;
      const max = typeof node.maximum === 'number' ? Math.floor(node.maximum) : min + 1000;
      return randomInt(min, max);
    }
    case 'number': {
      const min = typeof node.minimum === 'number' ? node.minimum : 0;
      const max = typeof node.maximum === 'number' ? node.maximum : min + 1000;
      return min + Math.random() * (max - min);
    }
    case 'boolean':
      return Math.random() < 0.5;
    default:
      return null;
  }
}

function xmlEscape(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A sample as XML, for an xml content_type: one element per property. */
function toXml(value: unknown, name: string): string {
  if (Array.isArray(value)) return value.map((item) => toXml(item, name)).join('');
  if (typeof value === 'object' && value !== null) {
    const inner = Object.entries(value)
      .map(([key, item]) => toXml(item, key))
      .join('');
    return `<${name}>${inner}</${name}>`;
  }
  return `<${name}>${xmlEscape(String(value))}</${name}>`;
}

function respond(compiled: CompiledMocking, ctx: PluginContext) {
  const { conf } = compiled;
  let body: string;
  if (compiled.example !== undefined) {
    body = compiled.example.render(ctx);
  } else {
    const sample = sampleFromSchema(conf.response_schema);
    body = /xml/i.test(conf.content_type) ? toXml(sample, 'data') : JSON.stringify(sample);
  }
  const headers: Record<string, string> = { 'Content-Type': conf.content_type };
  if (conf.with_mock_header) headers['x-mock-by'] = MOCK_HEADER_VALUE;
  for (const [name, value] of compiled.headers) headers[name] = value.render(ctx);
  return ctx.exit(conf.response_status, body, headers);
}

const mocking: PluginModule<CompiledMocking> = {
  name: NAME,
  version: '0.1',
  priority: 10900,
  schema: {
    type: 'object',
    properties: {
      delay: { type: 'integer', default: 0 },
      response_status: { type: 'integer', default: 200, minimum: 1 },
      content_type: { type: 'string', default: 'application/json;charset=utf8' },
      response_example: { type: 'string' },
      response_schema: { type: 'object' },
      with_mock_header: { type: 'boolean', default: true },
      response_headers: {
        type: 'object',
        minProperties: 1,
        patternProperties: { '^[^:]+$': { oneOf: [{ type: 'string' }, { type: 'number' }] } },
      },
    },
    anyOf: [{ required: ['response_example'] }, { required: ['response_schema'] }],
  },

  compile(raw) {
    const conf = raw as MockingConf;
    return {
      conf,
      example: conf.response_example === undefined ? undefined : compileTemplate(conf.response_example),
      headers: Object.entries(conf.response_headers ?? {}).map(
        ([name, value]) => [name, compileTemplate(String(value))] as const,
      ),
    };
  },

  access(compiled, ctx) {
    if (compiled.conf.delay > 0) return sleep(compiled.conf.delay * 1000).then(() => respond(compiled, ctx));
    return respond(compiled, ctx);
  },
};

export default mocking;
