// The route table: one ConfigSnapshot compiled into what the data plane needs per
// request (a native router handle plus flat per-route records), built once per
// config version and swapped in atomically by the DataPlane.

import { compileExpr, type CompiledExpr } from '../core/expr';
import { routeUpstreamId, serviceUpstreamId } from '../health/keys';
import { UpstreamHealth, type PassiveReporter } from '../health/upstream-health';
import type { NativeBackend } from '../native/backend';
import type { SharedDict } from '../native/shdict';
import { compileChain, createChainContext, type ChainContext, type PluginRuntime } from '../plugins/chain';
import type { PluginChain } from '../plugins/types';
import { assembleRouterSpec, encodeRouteRecord, type RouteMatchSpec } from '../native/router-spec';
import type { PluginConfig, PluginMap, Route, Service, Upstream, UpstreamTimeout } from '../schema/types';
import type { ConfigSnapshot } from '../store/types';
import { createBalancer, normalizeNodes, type Balancer } from './balancer';
import { UpstreamPool } from './upstream-pool';

const DEFAULT_TIMEOUT_SECONDS = 60;
const DEFAULT_POOL_SIZE = 320;
const DEFAULT_POOL_IDLE_SECONDS = 60;
const DEFAULT_POOL_REQUESTS = 1000;

export const enum PassHost {
  Pass = 0,
  Node = 1,
  Rewrite = 2,
}

/** An upstream with its balancer and connection pool; shared by every route that uses it. */
export interface CompiledUpstream {
  /** Identity across config versions: the upstream's JSON without timestamps. */
  readonly key: string;
  readonly upstream: Upstream;
  readonly balancer: Balancer;
  readonly pool: UpstreamPool;
  /** Extra attempts after the first one on connect failure. */
  readonly retries: number;
  /** 0 = no limit. */
  readonly retryTimeoutMs: number;
  readonly passHost: PassHost;
  readonly upstreamHost: string;
  /** Node health from the shared dictionary, for upstreams with checks (when the DataPlane has a dictionary). */
  readonly health: UpstreamHealth | null;
  /** Takes each attempt's result for passive checks; null without them. */
  readonly passive: PassiveReporter | null;
}

export interface CompiledRoute {
  readonly id: string;
  readonly serviceId: string;
  readonly route: Route;
  /** The route's plugins over its service's (the route wins per plugin name). */
  readonly plugins: PluginMap;
  /**
   * The route's plugins compiled for this config version and plugin registry
   * (src/plugins/chain.ts); null when no plugin applies (not even a global
   * rule) or the table was compiled without a plugin runtime.
   */
  readonly chain: PluginChain | null;
  readonly vars: CompiledExpr | null;
  /** null when neither the route nor its service has an upstream (answered 503). */
  readonly upstream: CompiledUpstream | null;
  /** `Upgrade` is forwarded only when the route (or its service) sets enable_websocket, as in APISIX. */
  readonly enableWebsocket: boolean;
  readonly connectTimeoutMs: number;
  readonly sendTimeoutMs: number;
  readonly readTimeoutMs: number;
  /** Set on RouteTable.unmatched, the stand-in that runs global rules for a request no route matched. */
  readonly unmatched?: true;
}

/** A compiled route and what it was compiled from; reused while those are still the current objects. */
interface CompiledRouteEntry {
  readonly service: Service | undefined;
  readonly upstreamConfig: Upstream | undefined;
  readonly compiled: CompiledRoute;
  /** What the chain was compiled from: the shared chain inputs and the route's plugin_config. */
  readonly chainInputs: ChainContext['shared'] | undefined;
  readonly pluginConfig: PluginConfig | undefined;
  /** The route's record in the router spec (encodeRouteRecord). */
  readonly record: Buffer;
}

/**
 * Compile results kept from one config version to the next. Stores and the
 * workers' config mirror hand unchanged items over as the same objects, so a
 * one-route change recompiles one route, not ten thousand. Keys are the
 * configuration objects themselves: entries of routes that are gone are
 * collected with them.
 */
class CompileCache {
  readonly routes = new WeakMap<Route, CompiledRouteEntry>();
  readonly upstreamKeys = new WeakMap<Upstream, string>();
}

export class RouteTable {
  readonly version: number;
  /** Native router handle; -1 for the empty table that exists before the first config. */
  readonly router: number;
  /** Indexed by the candidate numbers the router writes into out[Out.Routes...]. */
  readonly routes: readonly CompiledRoute[];
  readonly upstreams: ReadonlyMap<string, CompiledUpstream>;
  readonly cache: CompileCache;
  /** The chain inputs of this version; the next compile reuses what did not change. */
  readonly chainContext: ChainContext | undefined;
  /**
   * For requests no route matched, when global rules exist: they run first, as
   * APISIX runs them before its 404, and may answer instead (or log the 404).
   */
  readonly unmatched: CompiledRoute | null;

  constructor(
    version: number,
    router: number,
    routes: readonly CompiledRoute[],
    upstreams: ReadonlyMap<string, CompiledUpstream>,
    cache = new CompileCache(),
    chainContext?: ChainContext,
  ) {
    this.version = version;
    this.router = router;
    this.routes = routes;
    this.upstreams = upstreams;
    this.cache = cache;
    this.chainContext = chainContext;
    this.unmatched = chainContext === undefined ? null : unmatchedRoute(chainContext);
  }

  static empty(): RouteTable {
    return new RouteTable(0, -1, [], new Map());
  }
}

const NO_ROUTE: Route = { uri: '' };

function unmatchedRoute(chainContext: ChainContext): CompiledRoute | null {
  if (chainContext.shared.globalEntries.length === 0) return null;
  return {
    id: '',
    serviceId: '',
    route: NO_ROUTE,
    plugins: {},
    chain: compileChain(NO_ROUTE, chainContext),
    vars: null,
    upstream: null,
    enableWebsocket: false,
    connectTimeoutMs: timeoutMs(undefined, undefined, 'connect'),
    sendTimeoutMs: timeoutMs(undefined, undefined, 'send'),
    readTimeoutMs: timeoutMs(undefined, undefined, 'read'),
    unmatched: true,
  };
}

/** An upstream's identity across config versions: its JSON without timestamps. */
export function upstreamKey(upstream: Upstream): string {
  const { create_time: _created, update_time: _updated, ...rest } = upstream;
  return JSON.stringify(rest);
}

/** Balancer, pool and settings for an upstream; `health` only for upstreams with active checks. */
export function compileUpstream(upstream: Upstream, key: string, health: HealthSource | null): CompiledUpstream {
  const nodes = normalizeNodes(upstream.nodes);
  const pool = upstream.keepalive_pool;
  const nodeHealth = health === null ? null : new UpstreamHealth(health.dict, health.upstreamId, upstream, nodes);
  return {
    key,
    upstream,
    balancer: createBalancer(upstream, nodes, nodeHealth ?? undefined),
    pool: new UpstreamPool({
      size: pool?.size ?? DEFAULT_POOL_SIZE,
      idleTimeoutMs: (pool?.idle_timeout ?? DEFAULT_POOL_IDLE_SECONDS) * 1000,
      maxRequests: pool?.requests ?? DEFAULT_POOL_REQUESTS,
    }),
    retries: upstream.retries ?? Math.max(0, nodes.length - 1),
    retryTimeoutMs: (upstream.retry_timeout ?? 0) * 1000,
    passHost:
      upstream.pass_host === 'node'
        ? PassHost.Node
        : upstream.pass_host === 'rewrite'
          ? PassHost.Rewrite
          : PassHost.Pass,
    upstreamHost: upstream.upstream_host ?? '',
    health: nodeHealth,
    passive: nodeHealth?.passive ?? null,
  };
}

/** Where a checked upstream's health lives: the dictionary and the upstream id its keys use (health/keys.ts). */
export interface HealthSource {
  readonly dict: SharedDict;
  readonly upstreamId: string;
}

/** The id health keys use for the upstream a route resolved to: inline ones are named after their route or service. */
function healthUpstreamId(route: Route, service: Service | undefined, upstream: Upstream): string {
  if (upstream === route.upstream) return routeUpstreamId(route.id ?? '');
  if (service !== undefined && upstream === service.upstream) return serviceUpstreamId(service.id ?? '');
  return upstream.id ?? '';
}

function timeoutMs(
  route: UpstreamTimeout | undefined,
  upstream: UpstreamTimeout | undefined,
  field: keyof UpstreamTimeout,
): number {
  return (route?.[field] ?? upstream?.[field] ?? DEFAULT_TIMEOUT_SECONDS) * 1000;
}

function routeHosts(route: Route, service: Service | undefined): string[] {
  const hosts = route.hosts ?? (route.host !== undefined ? [route.host] : (service?.hosts ?? []));
  return hosts.map((host) => host.toLowerCase());
}

/**
 * Compile a snapshot. Balancers and pools of upstreams that did not change are
 * taken over from `previous`, so least_conn counts and idle connections survive
 * a config change. Throws (leaving `previous` untouched) when a route is invalid.
 * With `sharedDict`, upstreams with `checks.active` skip the nodes it says are unhealthy.
 * With `plugins`, each route gets its plugin chain, compiled against the
 * runtime's current registry; chains whose inputs did not change are reused.
 */
export function compileRouteTable(
  backend: NativeBackend,
  snapshot: ConfigSnapshot,
  previous: RouteTable | undefined,
  sharedDict?: SharedDict,
  plugins?: PluginRuntime,
): RouteTable {
  const services = new Map<string, Service>();
  for (const service of snapshot.services) if (service.id !== undefined) services.set(service.id, service);
  const upstreamsById = new Map<string, Upstream>();
  for (const upstream of snapshot.upstreams) if (upstream.id !== undefined) upstreamsById.set(upstream.id, upstream);

  const cache = previous?.cache ?? new CompileCache();
  const keyOf = (upstream: Upstream): string => {
    let key = cache.upstreamKeys.get(upstream);
    if (key === undefined) {
      key = upstreamKey(upstream);
      cache.upstreamKeys.set(upstream, key);
    }
    return key;
  };
  const upstreams = new Map<string, CompiledUpstream>();
  const resolveUpstream = (
    upstream: Upstream | undefined,
    route: Route,
    service: Service | undefined,
  ): CompiledUpstream | null => {
    if (upstream === undefined) return null;
    let key = keyOf(upstream);
    let health: HealthSource | null = null;
    if (sharedDict !== undefined && upstream.checks?.active !== undefined) {
      // Health state is per upstream id, so equal inline upstreams of two routes stay apart.
      health = { dict: sharedDict, upstreamId: healthUpstreamId(route, service, upstream) };
      key = `${health.upstreamId}\n${key}`;
    }
    let compiled = upstreams.get(key);
    if (compiled === undefined) {
      compiled = previous?.upstreams.get(key) ?? compileUpstream(upstream, key, health);
      upstreams.set(key, compiled);
    }
    return compiled;
  };

  const chainContext =
    plugins === undefined
      ? undefined
      : createChainContext(snapshot, plugins.registry, plugins.env, previous?.chainContext);
  const chainInputs = chainContext?.shared;

  const routes: CompiledRoute[] = [];
  const records: Buffer[] = [];
  for (const route of snapshot.routes) {
    if (route.status === 0) continue;
    const uris = route.uris ?? (route.uri !== undefined ? [route.uri] : []);
    if (uris.length === 0) continue;
    const service = route.service_id !== undefined ? services.get(route.service_id) : undefined;
    const upstreamConfig =
      route.upstream ??
      (route.upstream_id !== undefined ? upstreamsById.get(route.upstream_id) : undefined) ??
      service?.upstream ??
      (service?.upstream_id !== undefined ? upstreamsById.get(service.upstream_id) : undefined);
    const upstream = resolveUpstream(upstreamConfig, route, service);
    const pluginConfig =
      route.plugin_config_id !== undefined
        ? chainContext?.pluginConfigs.get(String(route.plugin_config_id))
        : undefined;
    const cached = cache.routes.get(route);
    if (
      cached !== undefined &&
      cached.service === service &&
      cached.upstreamConfig === upstreamConfig &&
      cached.compiled.upstream === upstream
    ) {
      if (cached.chainInputs === chainInputs && cached.pluginConfig === pluginConfig) {
        routes.push(cached.compiled);
        records.push(cached.record);
        continue;
      }
      // Only the plugins changed (a reload, a global rule, a plugin_config): keep the rest.
      const compiled: CompiledRoute = {
        ...cached.compiled,
        chain: chainContext === undefined ? null : compileChain(route, chainContext),
      };
      cache.routes.set(route, { ...cached, compiled, chainInputs, pluginConfig });
      routes.push(compiled);
      records.push(cached.record);
      continue;
    }
    let vars: CompiledExpr | null = null;
    if (route.vars !== undefined && route.vars.length > 0) {
      try {
        vars = compileExpr(route.vars);
      } catch (err) {
        throw new Error(`route ${route.id ?? '?'}: invalid vars: ${(err as Error).message}`);
      }
    }
    const compiled: CompiledRoute = {
      id: route.id ?? '',
      serviceId: route.service_id ?? '',
      route,
      plugins: service?.plugins ? { ...service.plugins, ...route.plugins } : (route.plugins ?? {}),
      chain: chainContext === undefined ? null : compileChain(route, chainContext),
      vars,
      upstream,
      enableWebsocket: route.enable_websocket ?? service?.enable_websocket ?? false,
      connectTimeoutMs: timeoutMs(route.timeout, upstreamConfig?.timeout, 'connect'),
      sendTimeoutMs: timeoutMs(route.timeout, upstreamConfig?.timeout, 'send'),
      readTimeoutMs: timeoutMs(route.timeout, upstreamConfig?.timeout, 'read'),
    };
    const spec: RouteMatchSpec = {
      priority: route.priority ?? 0,
      methods: route.methods ?? [],
      hosts: routeHosts(route, service),
      uris,
      remoteAddrs: route.remote_addrs ?? (route.remote_addr !== undefined ? [route.remote_addr] : []),
    };
    const record = encodeRouteRecord(spec);
    cache.routes.set(route, { service, upstreamConfig, compiled, chainInputs, pluginConfig, record });
    routes.push(compiled);
    records.push(record);
  }

  const router = backend.routerBuild(assembleRouterSpec(records));
  if (router < 0) throw new Error(`router build failed with code ${router}`);
  return new RouteTable(snapshot.version, router, routes, upstreams, cache, chainContext);
}

/** Free what the old table owns and the new one does not; call right after the swap. */
export function retireRouteTable(backend: NativeBackend, old: RouteTable, current: RouteTable): void {
  if (old.router >= 0) backend.routerFree(old.router);
  for (const [key, upstream] of old.upstreams) {
    if (current.upstreams.get(key) !== upstream) upstream.pool.retire();
  }
}
