// real-ip: take the client address from a header, query argument or variable
// (`source`, e.g. http_x_forwarded_for, arg_realip) when the connecting peer
// is one of trusted_addresses (any peer when the list is absent), as nginx's
// realip module does. For X-Forwarded-For, the last address is taken; with
// `recursive`, the last one that is not itself trusted. Later plugins, vars
// and logs see the new remote_addr (ctx.setRemoteAddr).

import { type CidrMatcher, isValidIpOrCidr, parseCidrList } from '../../core/cidr';
import type { JsonSchema, PluginContext, PluginModule } from '../types';

const schema: JsonSchema = {
  type: 'object',
  properties: {
    trusted_addresses: { type: 'array', items: { type: 'string' }, minItems: 1 },
    source: { type: 'string', minLength: 1 },
    recursive: { type: 'boolean', default: false },
  },
  required: ['source'],
};

interface RealIpConf {
  trusted_addresses?: string[];
  source: string;
  recursive?: boolean;
}

export interface CompiledRealIp {
  readonly source: string;
  readonly forwardedFor: boolean;
  readonly trusted: CidrMatcher | undefined;
  readonly recursive: boolean;
}

/** "1.2.3.4", "1.2.3.4:80", "[::1]:80" or "::1" as address and port. */
export function splitAddress(value: string): { address: string; port: number | undefined } {
  const text = value.trim();
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return { address: text, port: undefined };
    const rest = text.slice(close + 1);
    const port = rest.startsWith(':') ? Number(rest.slice(1)) : undefined;
    return { address: text.slice(1, close), port: Number.isInteger(port) ? port : undefined };
  }
  const colon = text.indexOf(':');
  if (colon >= 0 && colon === text.lastIndexOf(':')) {
    const port = Number(text.slice(colon + 1));
    return { address: text.slice(0, colon), port: Number.isInteger(port) ? port : undefined };
  }
  return { address: text, port: undefined };
}

function fromForwardedFor(compiled: CompiledRealIp, header: string): string | undefined {
  const addresses = header.split(',');
  if (!compiled.recursive || compiled.trusted === undefined) return addresses[addresses.length - 1];
  for (let i = addresses.length - 1; i >= 0; i--) {
    const candidate = splitAddress(addresses[i]).address;
    if (!compiled.trusted.match(candidate)) return addresses[i];
  }
  return addresses[0];
}

function sourceValue(compiled: CompiledRealIp, ctx: PluginContext): string | undefined {
  const value = ctx.var(compiled.source);
  if (value === undefined || value === null || value === '') return undefined;
  const text = Array.isArray(value) ? value.join(',') : String(value);
  return compiled.forwardedFor ? fromForwardedFor(compiled, text) : text;
}

const realIp: PluginModule<CompiledRealIp> = {
  name: 'real-ip',
  version: '0.1',
  priority: 23000,
  schema,
  check(raw) {
    const conf = raw as RealIpConf;
    for (const entry of conf.trusted_addresses ?? []) {
      if (!isValidIpOrCidr(entry)) return `invalid ip address: ${entry}`;
    }
    return undefined;
  },
  compile(raw) {
    const conf = raw as RealIpConf;
    return {
      source: conf.source,
      forwardedFor: conf.source === 'http_x_forwarded_for',
      trusted: conf.trusted_addresses !== undefined ? parseCidrList(conf.trusted_addresses) : undefined,
      recursive: conf.recursive === true,
    };
  },
  rewrite(compiled, ctx) {
    if (compiled.trusted !== undefined && !compiled.trusted.match(ctx.remoteAddr)) return undefined;
    const value = sourceValue(compiled, ctx);
    if (value === undefined) {
      ctx.log.warn('real-ip: missing real address', { source: compiled.source });
      return undefined;
    }
    const { address, port } = splitAddress(value);
    if (!isValidIpOrCidr(address) || address.includes('/')) {
      ctx.log.warn('real-ip: bad address', { source: compiled.source, address });
      return undefined;
    }
    if (ctx.setRemoteAddr === undefined) {
      ctx.log.warn('real-ip: this data plane cannot replace remote_addr');
      return undefined;
    }
    ctx.setRemoteAddr(address, port);
    return undefined;
  },
};

export default realIp;
