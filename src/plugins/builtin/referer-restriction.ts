// referer-restriction: allow only requests whose Referer host is in
// `whitelist`, or refuse those in `blacklist` (host names, `*.example.com`
// wildcards), answering 403 {"message": message}. A request without a Referer
// passes only with bypass_missing. Hosts are compiled once into a set of exact
// names and a list of wildcard suffixes.

import type { JsonSchema, PluginModule } from '../types';

const hostPattern = '^\\*?[0-9a-zA-Z-._\\[\\]:]+$';
const hostList = { type: 'array', items: { type: 'string', pattern: hostPattern }, minItems: 1 };

const schema: JsonSchema = {
  type: 'object',
  properties: {
    bypass_missing: { type: 'boolean', default: false },
    whitelist: hostList,
    blacklist: hostList,
    message: { type: 'string', minLength: 1, maxLength: 1024, default: 'Your referer host is not allowed' },
  },
  oneOf: [{ required: ['whitelist'] }, { required: ['blacklist'] }],
};

interface RefererRestrictionConf {
  bypass_missing?: boolean;
  whitelist?: string[];
  blacklist?: string[];
  message?: string;
}

interface HostMatcher {
  readonly exact: ReadonlySet<string>;
  /** `*.example.com` kept as `.example.com`. */
  readonly suffixes: readonly string[];
}

export interface CompiledRefererRestriction {
  readonly allow: HostMatcher | undefined;
  readonly deny: HostMatcher | undefined;
  readonly bypassMissing: boolean;
  readonly body: { message: string };
}

function compileHosts(list: readonly string[] | undefined): HostMatcher | undefined {
  if (list === undefined) return undefined;
  const exact = new Set<string>();
  const suffixes: string[] = [];
  for (const host of list) {
    if (host.startsWith('*')) suffixes.push(host.slice(1).toLowerCase());
    else exact.add(host.toLowerCase());
  }
  return { exact, suffixes };
}

function hostMatches(matcher: HostMatcher, host: string): boolean {
  if (matcher.exact.has(host)) return true;
  for (const suffix of matcher.suffixes) if (host.endsWith(suffix)) return true;
  return false;
}

/** The host of a Referer URL, lower-case; '' when it has none. */
function refererHost(referer: string): string {
  const scheme = referer.indexOf('://');
  const start = scheme < 0 ? 0 : scheme + 3;
  let end = referer.length;
  for (let i = start; i < referer.length; i++) {
    const code = referer.charCodeAt(i);
    // '/', '?', '#', ':' end the host; a bracketed IPv6 host keeps its colons.
    if (code === 0x2f || code === 0x3f || code === 0x23 || (code === 0x3a && referer.charCodeAt(start) !== 0x5b)) {
      end = i;
      break;
    }
    if (code === 0x5d) {
      end = i + 1;
      break;
    }
  }
  return referer.slice(start, end).toLowerCase();
}

const refererRestriction: PluginModule<CompiledRefererRestriction> = {
  name: 'referer-restriction',
  version: '0.1',
  priority: 2990,
  schema,
  compile(raw) {
    const conf = raw as RefererRestrictionConf;
    return {
      allow: compileHosts(conf.whitelist),
      deny: compileHosts(conf.blacklist),
      bypassMissing: conf.bypass_missing === true,
      body: { message: conf.message ?? 'Your referer host is not allowed' },
    };
  },
  access(compiled, ctx) {
    const referer = ctx.header('referer');
    if (referer === undefined) return compiled.bypassMissing ? undefined : ctx.exit(403, compiled.body);
    const host = refererHost(referer);
    let block = false;
    if (compiled.allow !== undefined) block = !hostMatches(compiled.allow, host);
    else if (compiled.deny !== undefined) block = hostMatches(compiled.deny, host);
    return block ? ctx.exit(403, compiled.body) : undefined;
  },
};

export default refererRestriction;
