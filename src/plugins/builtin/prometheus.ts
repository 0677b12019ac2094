// prometheus: counts every request of the route in the log phase — status,
// latency (request, upstream, apisix) and bandwidth, with APISIX's metric
// names and labels. Recording is a few array increments on the route's
// RouteMeter in this worker (labels resolved once per route and config
// version); the agent merges and serves the text (see ../lib/metrics.ts), so
// a scrape costs the workers nothing. `prefer_name` labels by route and
// service name instead of id.

import { workerMetrics } from '../lib/metrics';
import type { PluginContext, PluginModule } from '../types';

export interface PrometheusConf {
  readonly prefer_name: boolean;
}

function text(ctx: PluginContext, name: string): string {
  const value = ctx.var(name);
  return value === undefined || value === null ? '' : String(value);
}

function number(ctx: PluginContext, name: string): number {
  const value = ctx.var(name);
  if (typeof value === 'number') return value;
  if (value === undefined || value === null || value === '') return 0;
  const parsed = Number(value);
  return Number.isFinite(parsed) ? parsed : 0;
}

// Most requests of a worker go to the same few nodes: the last address and its host are kept.
let lastAddress = '';
let lastNode = '';

/** The upstream node's address without its port ($upstream_addr is "ip:port"; IPv6 in brackets). */
function nodeOf(ctx: PluginContext): string {
  const address = ctx.var('upstream_addr');
  if (typeof address !== 'string') return '';
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
    const recorder = workerMetrics();
    const routeId = ctx.routeId;
    const serviceId = ctx.serviceId;
    const meter =
      recorder.meter(routeId, serviceId, conf.prefer_name) ??
      recorder.openMeter(routeId, serviceId, conf.prefer_name, (name) => text(ctx, name));
    meter.record(
      ctx.status,
      meter.needsPath ? ctx.uri : '',
      meter.needsHost ? text(ctx, 'host') : '',
      ctx.consumer?.username ?? '',
      nodeOf(ctx),
      requestMs,
      ctx.upstreamTimeMs, // without it (no upstream answer) there is no `upstream` latency
      number(ctx, 'request_length'),
      number(ctx, 'bytes_sent'),
    );
    return undefined;
  },
};

export default prometheus;
