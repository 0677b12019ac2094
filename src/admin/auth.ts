// Admin API access control: the source-address allow list, then the API key.
//
// Keys are compared as SHA-256 digests with timingSafeEqual, and every
// configured key is compared on each request, so neither the key's length nor
// which key matched shows in the response time.

import { createHash, timingSafeEqual } from 'node:crypto';
import { parseCidrList, type CidrMatcher } from '../core/cidr';
import { PAL_ERR_ADMIN_UNAUTHORIZED, type PalisadeError } from '../core/errors';

export interface AdminKey {
  key: string;
  role: 'admin' | 'viewer';
}

/** APISIX's published default keys: anyone can look them up, so they only work from loopback. */
export const PUBLISHED_DEFAULT_KEYS: readonly string[] = [
  'edd1c9f034335f136f87ad84b625c8f1', // admin
  '4054f7cf07e344346cd3f287985e76a2', // viewer
];

const loopback = parseCidrList(['127.0.0.0/8', '::1/128']);

interface PreparedKey {
  digest: Buffer;
  role: AdminKey['role'];
  publishedDefault: boolean;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

export class AdminAuth {
  readonly #keys: PreparedKey[];
  readonly #allow: CidrMatcher;

  constructor(keys: readonly AdminKey[], allow: readonly string[]) {
    this.#keys = keys.map((k) => ({
      digest: digest(k.key),
      role: k.role,
      publishedDefault: PUBLISHED_DEFAULT_KEYS.includes(k.key),
    }));
    this.#allow = parseCidrList(allow);
  }

  /** Configured keys that are APISIX's published defaults (worth a start-up warning). */
  static publishedDefaultsIn(keys: readonly AdminKey[]): AdminKey[] {
    return keys.filter((k) => PUBLISHED_DEFAULT_KEYS.includes(k.key));
  }

  isAllowed(address: string): boolean {
    return this.#allow.match(address);
  }

  /** Undefined when the request may go ahead; otherwise the 401 to send. */
  check(presented: string | undefined, method: string, address: string): PalisadeError | undefined {
    if (presented === undefined || presented === '') {
      return PAL_ERR_ADMIN_UNAUTHORIZED('failed to check token', { description: 'missing apikey' });
    }
    const presentedDigest = digest(presented);
    let role: AdminKey['role'] | undefined;
    const fromLoopback = loopback.match(address);
    for (const key of this.#keys) {
      // No early exit: every key is compared so timing does not tell which matched.
      const same = timingSafeEqual(key.digest, presentedDigest);
      if (same && (!key.publishedDefault || fromLoopback) && role !== 'admin') role = key.role;
    }
    if (role === undefined) {
      return PAL_ERR_ADMIN_UNAUTHORIZED('failed to check token', { description: 'wrong apikey' });
    }
    if (role === 'viewer' && method !== 'GET' && method !== 'HEAD') {
      return PAL_ERR_ADMIN_UNAUTHORIZED('failed to check token', { description: 'invalid method for role viewer' });
    }
    return undefined;
  }
}

/** The key from `X-API-KEY`, `?api_key=` or the `x_api_key` cookie, in that order. */
export function presentedKey(
  headerKey: string | string[] | undefined,
  query: URLSearchParams,
  cookie: string | undefined,
): string | undefined {
  if (typeof headerKey === 'string') return headerKey;
  if (Array.isArray(headerKey)) return headerKey[0];
  const fromQuery = query.get('api_key');
  if (fromQuery !== null) return fromQuery;
  if (cookie) {
    for (const part of cookie.split(';')) {
      const eq = part.indexOf('=');
      if (eq > 0 && part.slice(0, eq).trim() === 'x_api_key') return decodeURIComponent(part.slice(eq + 1).trim());
    }
  }
  return undefined;
}
