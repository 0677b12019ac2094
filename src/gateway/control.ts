// The control API on a loopback listener of the primary (APISIX's control
// API, 127.0.0.1:9090 by default):
//
//   GET /v1/healthcheck          active health check status, asked of the agent
//   GET /v1/processes            the workers and the agent: pids, applied config versions
//   GET /v1/processes?version=N&wait_ms=M
//                                answer once every worker has applied version N (or M ms pass)
//
// The last form lets a benchmark measure how long a change takes to reach
// every worker without polling.

import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ListenAddress } from '../config/types';
import { errorText } from '../core/errors';
import { logger } from '../core/log';

const log = logger('control');

const MAX_WAIT_MS = 30_000;

export interface ProcessesReport {
  configVersion: number;
  workers: Array<{ pid: number | undefined; appliedVersion: number; lastApplyMs: number }>;
  agent: { pid: number | undefined; ready: boolean } | undefined;
}

/** What the control API asks the primary. */
export interface ControlSource {
  /** The agent's health check report; null when health checks are not part of the build. Throws when there is no agent. */
  healthReport(): Promise<unknown>;
  processes(): ProcessesReport;
  /** Resolves true once every worker has applied `version`, false after `timeoutMs`. */
  waitApplied(version: number, timeoutMs: number): Promise<boolean>;
}

/** The agent's report (src/health's HealthReport), as far as the control API reads it. */
interface AgentHealthReport {
  upstreams: Array<{
    id: string;
    nodes: Array<{ node: string; healthy: boolean; successes: number; failures: number }>;
  }>;
}

function isAgentHealthReport(value: unknown): value is AgentHealthReport {
  return typeof value === 'object' && value !== null && Array.isArray((value as { upstreams?: unknown }).upstreams);
}

/** The etcd-style key APISIX names a checked upstream by: its own, or the route's or service's it is inlined in. */
function upstreamName(id: string): string {
  if (id.startsWith('route:')) return `/apisix/routes/${id.slice('route:'.length)}`;
  if (id.startsWith('service:')) return `/apisix/services/${id.slice('service:'.length)}`;
  return `/apisix/upstreams/${id}`;
}

function splitNode(node: string): { ip: string; port: number } {
  const colon = node.lastIndexOf(':');
  const host = node.slice(0, colon);
  return { ip: host.startsWith('[') ? host.slice(1, -1) : host, port: Number(node.slice(colon + 1)) };
}

/** APISIX's control API shape: one entry per checked upstream with each node's status and counters. */
export function toApisixHealthcheck(report: unknown): unknown[] {
  if (!isAgentHealthReport(report)) return [];
  return report.upstreams.map((upstream) => ({
    name: upstreamName(upstream.id),
    type: 'http',
    nodes: upstream.nodes.map((node) => ({
      ...splitNode(node.node),
      status: node.healthy ? 'healthy' : 'unhealthy',
      counter: { success: node.successes, failure: node.failures },
    })),
  }));
}

function reply(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export class ControlServer {
  readonly #server: http.Server;
  readonly #source: ControlSource;

  constructor(source: ControlSource) {
    this.#source = source;
    this.#server = http.createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        log.error('control request failed', { url: req.url, error: errorText(err) });
        if (!res.headersSent) reply(res, 500, { error_msg: errorText(err) });
        else res.destroy();
      });
    });
    this.#server.keepAliveTimeout = 5_000;
  }

  listen(address: ListenAddress): Promise<ListenAddress> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(address.port, address.host, () => {
        this.#server.off('error', reject);
        const bound = this.#server.address() as AddressInfo;
        resolve({ host: bound.address, port: bound.port });
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.closeAllConnections();
      this.#server.close(() => resolve());
    });
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://control');
    if (req.method !== 'GET') {
      reply(res, 405, { error_msg: 'the control API only answers GET' });
      return;
    }
    if (url.pathname === '/v1/healthcheck') {
      let report: unknown;
      try {
        report = await this.#source.healthReport();
      } catch (err) {
        reply(res, 503, { error_msg: errorText(err) });
        return;
      }
      reply(res, 200, toApisixHealthcheck(report));
      return;
    }
    if (url.pathname === '/v1/processes') {
      const version = url.searchParams.get('version');
      if (version !== null) {
        const wanted = Number(version);
        const waitMs = Math.min(MAX_WAIT_MS, Number(url.searchParams.get('wait_ms') ?? 5000));
        if (!Number.isInteger(wanted) || !Number.isFinite(waitMs) || waitMs < 0) {
          reply(res, 400, { error_msg: 'version must be an integer and wait_ms a number of ms' });
          return;
        }
        const applied = await this.#source.waitApplied(wanted, waitMs);
        reply(res, applied ? 200 : 504, { applied, ...this.#source.processes() });
        return;
      }
      reply(res, 200, this.#source.processes());
      return;
    }
    reply(res, 404, { error_msg: 'not found' });
  }
}
