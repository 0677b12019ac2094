// A closed-loop keep-alive load client for the system tests: N connections,
// each sending GET requests back to back. Like wrk, a keep-alive connection
// the server closes is simply reopened: a request that fails on a reused
// connection is sent again on a new one (unless `retryClosedKeepAlive` is off)
// and counted as a reconnect, not a failure. A failure is an error on a fresh
// connection, or any 5xx.

import * as http from 'node:http';

export interface LoadResult {
  ok: number;
  /** Responses with a status >= 500. */
  serverErrors: string[];
  /** Socket errors (refused, reset, hang up) that count as failed requests. */
  socketErrors: string[];
  /** Requests sent again after the server closed a reused keep-alive connection. */
  reconnects: number;
}

export interface LoadRun {
  stop(): Promise<LoadResult>;
  /** Successful responses so far. */
  ok(): number;
}

interface Attempt {
  status: number;
  reused: boolean;
}

function get(agent: http.Agent, url: string): Promise<Attempt> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
      res.on('error', (err) => reject(Object.assign(err, { reused: req.reusedSocket })));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => reject(Object.assign(err, { reused: req.reusedSocket })));
  });
}

export function startLoad(url: string, options: { connections: number; retryClosedKeepAlive?: boolean }): LoadRun {
  const retry = options.retryClosedKeepAlive ?? true;
  const result: LoadResult = { ok: 0, serverErrors: [], socketErrors: [], reconnects: 0 };
  let running = true;
  const loop = async (): Promise<void> => {
    // One agent with one socket per loop: a keep-alive connection of its own, reopened when closed.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      while (running) {
        try {
          const attempt = await get(agent, url);
          if (attempt.status >= 500) result.serverErrors.push(`status ${attempt.status}`);
          else result.ok += 1;
        } catch (err) {
          const reused = (err as { reused?: boolean }).reused === true;
          if (!(retry && reused)) {
            result.socketErrors.push((err as Error).message);
            continue;
          }
          result.reconnects += 1;
          try {
            const again = await get(agent, url);
            if (again.status >= 500) result.serverErrors.push(`status ${again.status}`);
            else result.ok += 1;
          } catch (second) {
            result.socketErrors.push(`after reconnect: ${(second as Error).message}`);
          }
        }
      }
    } finally {
      agent.destroy();
    }
  };
  const loops = Array.from({ length: options.connections }, () => loop());
  return {
    ok: () => result.ok,
    async stop() {
      running = false;
      await Promise.all(loops);
      return result;
    },
  };
}
