// ip-restriction: allow only the client addresses in `whitelist`, or refuse
// those in `blacklist` (addresses and CIDR ranges, IPv4 and IPv6), answering
// response_code with {"message": message}. The lists are compiled once per
// configuration into typed-array matchers; matching allocates nothing.

import { type CidrMatcher, isValidIpOrCidr, parseCidrList } from '../../core/cidr';
import type { JsonSchema, PluginModule } from '../types';

const ipList = { type: 'array', items: { type: 'string' }, minItems: 1 };

const schema: JsonSchema = {
  type: 'object',
  properties: {
    message: { type: 'string', minLength: 1, maxLength: 1024, default: 'Your IP address is not allowed' },
    response_code: { type: 'integer', minimum: 403, maximum: 404, default: 403 },
    whitelist: ipList,
    blacklist: ipList,
  },
  oneOf: [{ required: ['whitelist'] }, { required: ['blacklist'] }],
};

interface IpRestrictionConf {
  message?: string;
  response_code?: number;
  whitelist?: string[];
  blacklist?: string[];
}

export interface CompiledIpRestriction {
  readonly allow: CidrMatcher | undefined;
  readonly deny: CidrMatcher | undefined;
  readonly status: number;
  readonly body: { message: string };
}

const ipRestriction: PluginModule<CompiledIpRestriction> = {
  name: 'ip-restriction',
  version: '0.1',
  priority: 3000,
  schema,
  check(raw) {
    const conf = raw as IpRestrictionConf;
    for (const entry of [...(conf.whitelist ?? []), ...(conf.blacklist ?? [])]) {
      if (!isValidIpOrCidr(entry)) return `invalid ip address: ${entry}`;
    }
    return undefined;
  },
  compile(raw) {
    const conf = raw as IpRestrictionConf;
    return {
      allow: conf.whitelist !== undefined ? parseCidrList(conf.whitelist) : undefined,
      deny: conf.blacklist !== undefined ? parseCidrList(conf.blacklist) : undefined,
      status: conf.response_code ?? 403,
      body: { message: conf.message ?? 'Your IP address is not allowed' },
    };
  },
  access(compiled, ctx) {
    const address = ctx.remoteAddr;
    let block = false;
    if (compiled.deny !== undefined) block = compiled.deny.match(address);
    if (compiled.allow !== undefined) block = !compiled.allow.match(address);
    return block ? ctx.exit(compiled.status, compiled.body) : undefined;
  },
};

export default ipRestriction;
