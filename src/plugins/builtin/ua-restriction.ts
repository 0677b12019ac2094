// ua-restriction: refuse requests by User-Agent against `allowlist` or
// `denylist` regular expressions (PCRE as ngx.re.find takes them, compiled once
// per configuration), answering 403 {"message": message}. A request without a
// User-Agent passes only with bypass_missing.

import { pcreToRegExp } from '../../core/expr';
import type { JsonSchema, PluginModule } from '../types';

const patternList = { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } };

const schema: JsonSchema = {
  type: 'object',
  properties: {
    bypass_missing: { type: 'boolean', default: false },
    allowlist: patternList,
    denylist: patternList,
    message: { type: 'string', minLength: 1, maxLength: 1024, default: 'Not allowed' },
  },
  oneOf: [{ required: ['allowlist'] }, { required: ['denylist'] }],
};

interface UaRestrictionConf {
  bypass_missing?: boolean;
  allowlist?: string[];
  denylist?: string[];
  message?: string;
}

export interface CompiledUaRestriction {
  readonly allow: readonly RegExp[] | undefined;
  readonly deny: readonly RegExp[] | undefined;
  readonly bypassMissing: boolean;
  readonly body: { message: string };
}

function compileList(list: readonly string[] | undefined): RegExp[] | undefined {
  if (list === undefined) return undefined;
  return list.map((pattern) => pcreToRegExp(pattern, false) ?? /(?!)/);
}

function anyMatches(list: readonly RegExp[], value: string): boolean {
  for (let i = 0; i < list.length; i++) if (list[i].test(value)) return true;
  return false;
}

const uaRestriction: PluginModule<CompiledUaRestriction> = {
  name: 'ua-restriction',
  version: '0.1',
  priority: 2999,
  schema,
  check(raw) {
    const conf = raw as UaRestrictionConf;
    for (const [name, list] of [
      ['allowlist', conf.allowlist],
      ['denylist', conf.denylist],
    ] as const) {
      for (const pattern of list ?? []) {
        if (pcreToRegExp(pattern, false) === undefined) return `invalid ${name}: ${pattern}`;
      }
    }
    return undefined;
  },
  compile(raw) {
    const conf = raw as UaRestrictionConf;
    return {
      allow: compileList(conf.allowlist),
      deny: compileList(conf.denylist),
      bypassMissing: conf.bypass_missing === true,
      body: { message: conf.message ?? 'Not allowed' },
    };
  },
  access(compiled, ctx) {
    const agent = ctx.header('user-agent');
    if (agent === undefined) return compiled.bypassMissing ? undefined : ctx.exit(403, compiled.body);
    if (compiled.allow !== undefined)
      return anyMatches(compiled.allow, agent) ? undefined : ctx.exit(403, compiled.body);
    if (compiled.deny !== undefined && anyMatches(compiled.deny, agent)) return ctx.exit(403, compiled.body);
    return undefined;
  },
};

export default uaRestriction;
