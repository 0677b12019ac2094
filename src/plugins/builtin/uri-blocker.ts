// uri-blocker: refuse requests whose $request_uri matches any of `block_rules`
// (PCRE, joined into one alternation compiled once per configuration),
// answering rejected_code, with {"error_msg": rejected_msg} when set.

import { pcreToRegExp } from '../../core/expr';
import type { JsonSchema, PluginModule } from '../types';

const schema: JsonSchema = {
  type: 'object',
  properties: {
    block_rules: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 4096 }, uniqueItems: true },
    rejected_msg: { type: 'string', minLength: 1 },
    rejected_code: { type: 'integer', minimum: 200, default: 403 },
    case_insensitive: { type: 'boolean', default: false },
  },
  required: ['block_rules'],
};

interface UriBlockerConf {
  block_rules: string[];
  rejected_msg?: string;
  rejected_code?: number;
  case_insensitive?: boolean;
}

export interface CompiledUriBlocker {
  readonly pattern: RegExp | undefined;
  readonly status: number;
  readonly body: { error_msg: string } | undefined;
}

const uriBlocker: PluginModule<CompiledUriBlocker> = {
  name: 'uri-blocker',
  version: '0.1',
  priority: 2900,
  schema,
  check(raw) {
    const conf = raw as UriBlockerConf;
    for (const rule of conf.block_rules) {
      if (pcreToRegExp(rule, false) === undefined) return `failed to check regex error: invalid pattern ${rule}`;
    }
    return undefined;
  },
  compile(raw) {
    const conf = raw as UriBlockerConf;
    const joined = conf.block_rules.map((rule) => `(?:${pcreToRegExp(rule, false)?.source ?? '(?!)'})`).join('|');
    return {
      pattern: conf.block_rules.length === 0 ? undefined : new RegExp(joined, conf.case_insensitive ? 'i' : ''),
      status: conf.rejected_code ?? 403,
      body: conf.rejected_msg !== undefined ? { error_msg: conf.rejected_msg } : undefined,
    };
  },
  rewrite(compiled, ctx) {
    if (compiled.pattern === undefined || !compiled.pattern.test(ctx.requestUri)) return undefined;
    return ctx.exit(compiled.status, compiled.body);
  },
};

export default uriBlocker;
