// prometheus: counts every request of the route in the log phase — status,
// latency (request, upstream, apisix) and bandwidth, with APISIX's metric
// names and labels. Recording is a few map updates in this worker; the agent
// merges and serves the text (see ../lib/metrics.ts), so a scrape costs the
// workers nothing. `prefer_name` labels by route and service name instead of id.

import { workerMetrics } from '../lib/metrics';
import type { PluginContext, PluginModule } from '../types';

export interface PrometheusConf {
  readonly prefer_name: boolean;
}

function text(ctx: PluginContext, name: string): string {
  const value = ctx.var(name);
  return value === undefined || value === null ? '' : String(value);
}

function number(ctx: PluginContext, name: string): number | undefined {
  const value = ctx.var(name);
  if (value === undefined || value === null || value === '') return undefined;
  const parsed = Number(value);
  return Number.isFinite(parsed) ? parsed : undefined;
}

// Most requests of a worker go to the same few nodes: the last address and its host are kept.
let lastAddress = '';
let lastNode = '';

/** The upstream node's address without its port ($upstream_addr is "ip:port"; IPv6 in brackets). */
function nodeOf(ctx: PluginContext): string {
  const address = text(ctx, 'upstream_addr');
  if (address === lastAddress) return lastNode;
  const colon = address.lastIndexOf(':');
  let node = address;
  if (colon > 0 && !address.endsWith(']')) {
    const host = address.slice(0, colon);
    node = host.startsWith('[') ? host.slice(1, -1) : host;
  }
  lastAddress = address;
  lastNode = node;
  return node;
}

const prometheus: PluginModule<PrometheusConf> = {
  name: 'prometheus',
  version: '0.2',
  priority: 500,
  schema: {
    type: 'object',
    properties: { prefer_name: { type: 'boolean', default: false } },
  },

  log(conf, ctx) {
    const requestMs = Date.now() - ctx.startTime;
    // nginx reports $upstream_response_time in seconds.
    const upstreamSeconds = number(ctx, 'upstream_response_time');
    const route = conf.prefer_name ? text(ctx, 'route_name') || ctx.routeId : ctx.routeId;
    const service = conf.prefer_name ? text(ctx, 'service_name') || ctx.serviceId : ctx.serviceId;
    workerMetrics().record({
      status: ctx.status,
      route,
      matchedUri: text(ctx, 'matched_uri'),
      matchedHost: text(ctx, 'matched_host'),
      service,
      consumer: ctx.consumer?.username ?? '',
      node: nodeOf(ctx),
      requestMs,
      upstreamMs: upstreamSeconds === undefined ? undefined : upstreamSeconds * 1000,
      ingressBytes: number(ctx, 'request_length') ?? 0,
      egressBytes: number(ctx, 'bytes_sent') ?? 0,
    });
    return undefined;
  },
};

export default prometheus;
