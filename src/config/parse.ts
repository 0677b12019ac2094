// Parsers for the value kinds config.yaml uses (addresses, durations, sizes).
// Each throws a ConfigFieldError naming the field, so the loader can report
// `conf/config.yaml: proxy.listen[0].port must be an integer 1-65535`.

import * as net from 'node:net';
import type { ListenAddress } from './types';

export class ConfigFieldError extends Error {
  readonly field: string;

  constructor(field: string, message: string) {
    super(`${field} ${message}`);
    this.field = field;
  }
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function parsePort(value: unknown, field: string): number {
  const port = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigFieldError(field, 'must be an integer 1-65535');
  }
  return port;
}

function parseHost(value: unknown, field: string): string {
  if (typeof value !== 'string' || value === '') throw new ConfigFieldError(field, 'must be a non-empty host');
  // Hostnames are allowed (e.g. localhost); IPv6 literals come without brackets.
  if (net.isIP(value) === 0 && !/^[A-Za-z0-9.-]+$/.test(value)) {
    throw new ConfigFieldError(field, `must be an IP address or hostname, got "${value}"`);
  }
  return value;
}

/**
 * A listen address: `host:port`, `[v6]:port`, a bare port (all interfaces,
 * `defaultHost`), or `{ host, port }`.
 */
export function parseListenAddress(value: unknown, field: string, defaultHost: string): ListenAddress {
  if (typeof value === 'number') return { host: defaultHost, port: parsePort(value, `${field}.port`) };
  if (isPlainObject(value)) {
    rejectUnknownKeys(value, ['host', 'port'], field);
    const host = value.host === undefined ? defaultHost : parseHost(value.host, `${field}.host`);
    return { host, port: parsePort(value.port, `${field}.port`) };
  }
  if (typeof value !== 'string') throw new ConfigFieldError(field, 'must be "host:port", a port, or {host, port}');
  if (/^\d+$/.test(value)) return { host: defaultHost, port: parsePort(value, `${field}.port`) };
  const bracketed = /^\[([^\]]+)\]:(.*)$/.exec(value);
  const colon = value.lastIndexOf(':');
  const host = bracketed ? bracketed[1] : colon > 0 ? value.slice(0, colon) : '';
  const port = bracketed ? bracketed[2] : colon > 0 ? value.slice(colon + 1) : '';
  if (host === '' || port === '' || (!bracketed && host.includes(':'))) {
    throw new ConfigFieldError(field, `must be "host:port" (IPv6 as "[::1]:port"), got "${value}"`);
  }
  return { host: parseHost(host, `${field}.host`), port: parsePort(port, `${field}.port`) };
}

/** A duration in ms from seconds (number) or a string such as `500ms`, `60s`, `2m`. */
export function parseDurationMs(value: unknown, field: string): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return Math.round(value * 1000);
  const match = typeof value === 'string' ? /^(\d+(?:\.\d+)?)\s*(ms|s|m)?$/.exec(value.trim()) : null;
  if (!match) throw new ConfigFieldError(field, 'must be a duration such as 60s, 500ms or 2m (a number means seconds)');
  const amount = Number(match[1]);
  const unit = match[2] ?? 's';
  return Math.round(unit === 'ms' ? amount : unit === 'm' ? amount * 60_000 : amount * 1000);
}

export function parseNonNegativeInteger(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new ConfigFieldError(field, 'must be an integer >= 0');
  }
  return value;
}

/** An integer of at least `minimum`; `why` (optional) says what a smaller value would do. */
export function parseIntegerAtLeast(value: unknown, minimum: number, field: string, why?: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < minimum) {
    throw new ConfigFieldError(field, `must be an integer >= ${minimum}${why === undefined ? '' : ` (${why})`}`);
  }
  return value;
}

/** A duration (as parseDurationMs) of at least 1 ms; `why` says what 0 would do. */
export function parsePositiveDurationMs(value: unknown, field: string, why: string): number {
  const ms = parseDurationMs(value, field);
  if (ms < 1) throw new ConfigFieldError(field, `must be at least 1ms (${why})`);
  return ms;
}

export function parseEnum<T extends string>(value: unknown, allowed: readonly T[], field: string): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new ConfigFieldError(field, `must be one of ${allowed.join(', ')}`);
  }
  return value as T;
}

export function parseNonEmptyString(value: unknown, field: string): string {
  if (typeof value !== 'string' || value === '') throw new ConfigFieldError(field, 'must be a non-empty string');
  return value;
}

/** An IPv4 or IPv6 CIDR (`10.0.0.0/8`, `::1/128`) or a bare address. */
export function parseCidr(value: unknown, field: string): string {
  if (typeof value !== 'string') throw new ConfigFieldError(field, 'must be a CIDR such as 127.0.0.0/8');
  const [address, bits, extra] = value.split('/');
  const family = net.isIP(address);
  const maxBits = family === 4 ? 32 : 128;
  const validBits = bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= maxBits);
  if (family === 0 || !validBits || extra !== undefined) {
    throw new ConfigFieldError(field, `must be a CIDR such as 127.0.0.0/8, got "${value}"`);
  }
  return value;
}

export function rejectUnknownKeys(value: Record<string, unknown>, known: readonly string[], field: string): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      const where = field === '' ? key : `${field}.${key}`;
      throw new ConfigFieldError(where, `is not a known setting (expected one of ${known.join(', ')})`);
    }
  }
}
