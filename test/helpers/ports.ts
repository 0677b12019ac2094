// Free loopback ports for servers that another process binds a moment later
// (a gateway, etcd, redis-server). listen(0) hands out ports from the
// kernel's ephemeral range, the same range every outgoing connection takes
// its local port from: with test files running side by side, a client socket
// of another test could take the port before the child bound it (a CI run
// failed so, with EADDRINUSE on a gateway's proxy port). These ports come from
// below that range, where no outgoing connection is ever given one.

import { readFileSync } from 'node:fs';
import net from 'node:net';

const LOWEST = 10_000;

/** The first port of the kernel's ephemeral range (Linux's default when it cannot be read). */
function ephemeralStart(): number {
  try {
    const start = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'latin1').trim().split(/\s+/)[0]);
    return Number.isInteger(start) && start > 0 ? start : 32_768;
  } catch {
    return 32_768;
  }
}

const EPHEMERAL_START = ephemeralStart();

/** Ports this process has handed out, so two servers of one test file never get the same one. */
const given = new Set<number>();

export function isFree(port: number): Promise<boolean> {
  const server = net.createServer();
  return new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A free loopback port below the ephemeral range. `companion`: an offset whose
 * port must be free (and below that range) too, as Redis Cluster's bus port
 * (port + 10000).
 */
export async function freePort(companion = 0): Promise<number> {
  const highest = EPHEMERAL_START - 1 - companion;
  if (highest - LOWEST < 1000) throw new Error(`no room below the ephemeral range (${EPHEMERAL_START})`);
  for (let attempt = 0; attempt < 1000; attempt++) {
    const port = LOWEST + Math.floor(Math.random() * (highest - LOWEST + 1));
    if (given.has(port) || (companion > 0 && given.has(port + companion))) continue;
    if (!(await isFree(port)) || (companion > 0 && !(await isFree(port + companion)))) continue;
    given.add(port);
    if (companion > 0) given.add(port + companion);
    return port;
  }
  throw new Error('no free port found below the ephemeral range');
}
