import type { ListenAddress } from './types';

/** `host:port`, with IPv6 hosts in brackets. */
export function formatAddress(address: ListenAddress): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
