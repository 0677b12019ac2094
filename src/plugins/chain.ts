// Compiles a route's plugins into a PluginChain (types.ts): flat arrays per
// phase, in run order, built once per config version so that a request only
// walks arrays.
//
// Where a route's plugins come from, per plugin name the first wins:
//   consumer > consumer group > route > plugin_config > service
// (consumer and group plugins only after an auth plugin attached a consumer,
// through chain.mergeConsumer). Global rules are separate entries that run
// before the route's in every phase, as APISIX runs them; a plugin configured
// in two global rules runs in neither (APISIX logs and drops it).
//
// An entry is listed under the phases its module defines, narrowed by the
// module's phases(compiled) when it has one: a configuration that does not
// need a response phase (a logger without include_resp_body) keeps the
// route's streamed pass-through response.
//
// `_meta`: `disable` leaves the entry out, `priority` replaces the module's
// priority for ordering, `filter` is a vars expression evaluated on ctx.var,
// `error_response` replaces the body of an exit (the runner applies it).
//
// A plugin the registry does not have (removed by a reload, or not enabled), or
// whose stored configuration no longer passes its schema or compile(), becomes
// an entry that answers 503 in rewrite: the route fails closed and clearly
// instead of running without, say, its auth plugin.
//
// Compiled configurations are cached per raw configuration object and module
// (CompiledConfs) and carried across config versions. Those whose plugin has
// release() are also tracked: the data plane calls releaseUnused() with the
// chains of its current route table after each swap, and a configuration that
// none of them holds (route, global rule or consumer-merged entries) is
// released once a grace period has passed, for requests that started on an
// older table and still run it.

import { compileExpr, type CompiledExpr } from '../core/expr';
import { logger, type Logger } from '../core/log';
import type { SharedDict } from '../native/shdict';
import type { Consumer, ConsumerGroup, PluginConfig, PluginMap, Route, Service } from '../schema/types';
import type { ConfigSnapshot } from '../store/types';
import { checkPluginConf } from './catalog';
import type { PluginRegistry } from './registry';
import type {
  AttachedConsumer,
  ChainEntry,
  Phase,
  PluginChain,
  PluginContext,
  PluginEnv,
  PluginExit,
  PluginModule,
} from './types';

const log = logger('plugins');

const PHASES: readonly Phase[] = ['rewrite', 'access', 'before_proxy', 'header_filter', 'body_filter', 'log'];

/** What compile() gets besides the configuration. */
export interface ChainEnvironment {
  /** A shared dictionary by name (the worker's open dictionaries). */
  dict(name: string): SharedDict;
}

/**
 * What the route table compiles chains with: the current registry (a getter
 * over the loader, so a reload is seen by the next compile) and the
 * environment plugins' compile() gets.
 */
export interface PluginRuntime {
  readonly registry: PluginRegistry;
  readonly env?: ChainEnvironment;
}

const noDictionaries: ChainEnvironment = {
  dict(name: string): SharedDict {
    throw new Error(`no such shared dictionary: ${name}`);
  },
};

type RawConf = Record<string, unknown>;

interface CompiledConf {
  readonly plugin: PluginModule;
  /** The configuration object it was compiled from (its cache key). */
  readonly raw: RawConf;
  readonly metadata: Readonly<Record<string, unknown>> | undefined;
  readonly conf: unknown;
  /** What the plugin's phases() said of `conf`; undefined: every phase the module defines. */
  readonly phases: readonly Phase[] | undefined;
  /** The last sweep (CompiledConfs.releaseUnused) that found a current chain holding it. */
  heldInSweep: number;
  /** When it may be released (ms since the epoch): Infinity while held. */
  releaseAfter: number;
}

/** What a chain holds that needs releasing: its own configurations and those of its consumer-merged chains. */
interface ChainHold {
  readonly confs: CompiledConf[];
  readonly merged: Map<Consumer, readonly CompiledConf[]>;
  /** The chain's memo of merged chains, to forget a consumer that is gone. */
  readonly memo: WeakMap<Consumer, PluginChain>;
}

// Only chains that hold a configuration with release() have an entry.
const chainHolds = new WeakMap<PluginChain, ChainHold>();

/**
 * Compiled configurations by configuration object and plugin module, kept
 * from one config version to the next, and the ledger of those whose plugin
 * has release(): each is released exactly once, after no current chain holds
 * it and a grace period has passed (releaseUnused), or at shutdown
 * (releaseAll).
 */
export class CompiledConfs {
  readonly #cache = new WeakMap<object, Map<PluginModule, CompiledConf>>();
  /** Compiled configurations of plugins with release() that are not released yet. */
  readonly #releasable = new Set<CompiledConf>();
  #sweeps = 0;
  /**
   * Called when a configuration that needs releasing is added, so the data
   * plane can time a sweep: a consumer-merged chain compiles while requests
   * run, possibly on a chain the current table no longer holds.
   */
  onTracked: (() => void) | undefined = undefined;

  /** How many compiled configurations wait for release (in use or not). */
  get unreleased(): number {
    return this.#releasable.size;
  }

  get(raw: RawConf, plugin: PluginModule): CompiledConf | undefined {
    return this.#cache.get(raw)?.get(plugin);
  }

  add(compiled: CompiledConf): void {
    let perPlugin = this.#cache.get(compiled.raw);
    if (perPlugin === undefined) {
      perPlugin = new Map();
      this.#cache.set(compiled.raw, perPlugin);
    }
    perPlugin.set(compiled.plugin, compiled);
    if (compiled.plugin.release !== undefined) {
      this.#releasable.add(compiled);
      this.onTracked?.();
    }
  }

  /**
   * Release what the current route table, compiled under `context` with
   * `chains`, no longer holds, `graceMs` after a sweep first found it unused.
   * Consumer-merged entries count only for consumers in `consumers`. Returns
   * when the next release is due, or undefined when nothing waits.
   */
  releaseUnused(
    context: ChainContext,
    chains: Iterable<PluginChain | null>,
    consumers: ReadonlySet<Consumer>,
    now: number,
    graceMs: number,
  ): number | undefined {
    if (this.#releasable.size === 0) return undefined;
    // A sweep number marks what is held: no Set to build and probe over 10,000 routes on every config change.
    const sweep = ++this.#sweeps;
    // Every chain of the table holds the global entries; they are not repeated in each chain's hold.
    for (const compiled of context.shared.globalReleasable) compiled.heldInSweep = sweep;
    for (const chain of chains) {
      const hold = chain === null ? undefined : chainHolds.get(chain);
      if (hold === undefined) continue;
      for (const compiled of hold.confs) compiled.heldInSweep = sweep;
      if (hold.merged.size === 0) continue; // most chains: no iterator to create
      for (const [consumer, confs] of hold.merged) {
        if (consumers.has(consumer)) {
          for (const compiled of confs) compiled.heldInSweep = sweep;
        } else {
          hold.merged.delete(consumer);
          hold.memo.delete(consumer);
        }
      }
    }
    let nextDue = Infinity;
    for (const compiled of this.#releasable) {
      if (compiled.heldInSweep === sweep) {
        compiled.releaseAfter = Infinity;
        continue;
      }
      if (compiled.releaseAfter === Infinity) compiled.releaseAfter = now + graceMs;
      if (compiled.releaseAfter <= now) this.#release(compiled);
      else nextDue = Math.min(nextDue, compiled.releaseAfter);
    }
    return nextDue === Infinity ? undefined : nextDue;
  }

  /** Release every tracked configuration now (shutdown). */
  releaseAll(): void {
    for (const compiled of this.#releasable) this.#release(compiled);
  }

  #release(compiled: CompiledConf): void {
    this.#releasable.delete(compiled);
    const perPlugin = this.#cache.get(compiled.raw);
    // Never hand a released configuration out again: a later compile makes a new one.
    if (perPlugin?.get(compiled.plugin) === compiled) perPlugin.delete(compiled.plugin);
    try {
      compiled.plugin.release?.(compiled.conf);
    } catch (err) {
      log.error('plugin release() failed', { plugin: compiled.plugin.name, error: (err as Error).message });
    }
  }
}

/**
 * What every chain of one config version shares and what decides whether a
 * chain compiled earlier is still right: the registry, the global rules, the
 * consumer groups and the plugin metadata. createChainContext hands the same
 * object on while none of those changed, so the route table reuses chains.
 */
export interface SharedChainInputs {
  readonly registry: PluginRegistry;
  readonly env: ChainEnvironment;
  /** The global rules' plugins merged (duplicates dropped). */
  readonly globalPlugins: PluginMap;
  readonly globalEntries: readonly ChainEntry[];
  /** The global entries' compiled configurations that need releasing. */
  readonly globalReleasable: readonly CompiledConf[];
  readonly consumerGroups: ReadonlyMap<string, ConsumerGroup>;
  readonly metadata: ReadonlyMap<string, Readonly<Record<string, unknown>>>;
  /** Compiled configurations by configuration object and plugin module; carried across config versions. */
  readonly compiled: CompiledConfs;
  /** What these were built from, to tell whether the next snapshot changed them. */
  readonly sources: {
    readonly globalRules: readonly object[];
    readonly consumerGroups: readonly object[];
    readonly metadata: readonly object[];
  };
}

/** The inputs of compileChain for one config snapshot. */
export interface ChainContext {
  readonly shared: SharedChainInputs;
  readonly services: ReadonlyMap<string, Service>;
  readonly pluginConfigs: ReadonlyMap<string, PluginConfig>;
}

function sameItems(a: readonly object[], b: readonly object[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function byId<T extends { id?: string }>(items: readonly T[]): Map<string, T> {
  const map = new Map<string, T>();
  for (const item of items) if (item.id !== undefined) map.set(String(item.id), item);
  return map;
}

function isConf(value: unknown): value is RawConf {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function mergeGlobalRules(snapshot: ConfigSnapshot): PluginMap {
  const merged: Record<string, unknown> = {};
  const seen = new Set<string>();
  for (const rule of snapshot.global_rules) {
    for (const [name, conf] of Object.entries(rule.plugins ?? {})) {
      if (seen.has(name)) {
        log.error(`Found ${name} configured across different global rules. Removing it from execution list`);
        delete merged[name];
      } else {
        merged[name] = conf;
        seen.add(name);
      }
    }
  }
  return merged as PluginMap;
}

function buildMetadata(
  snapshot: ConfigSnapshot,
  registry: PluginRegistry,
): Map<string, Readonly<Record<string, unknown>>> {
  const metadata = new Map<string, Readonly<Record<string, unknown>>>();
  for (const item of snapshot.plugin_metadata) {
    const { id, ...rest } = item;
    const plugin = registry.get(id);
    if (plugin === undefined) continue;
    const conf = structuredClone(rest);
    const err = checkPluginConf(plugin, conf, 'metadata'); // fills schema defaults
    if (err !== undefined) {
      log.error('plugin metadata does not pass its schema; the plugin runs without it', { plugin: id, error: err });
      continue;
    }
    metadata.set(id, Object.freeze(conf));
  }
  return metadata;
}

/**
 * The chain inputs of `snapshot`. With `previous` (the last version's
 * context) its shared part is reused when the registry, global rules,
 * consumer groups and plugin metadata are the same objects, and compiled
 * configurations are carried over either way.
 */
export function createChainContext(
  snapshot: ConfigSnapshot,
  registry: PluginRegistry,
  env: ChainEnvironment = noDictionaries,
  previous?: ChainContext,
): ChainContext {
  const sources = {
    globalRules: snapshot.global_rules as readonly object[],
    consumerGroups: snapshot.consumer_groups as readonly object[],
    metadata: snapshot.plugin_metadata as readonly object[],
  };
  const old = previous?.shared;
  let shared: SharedChainInputs;
  if (
    old !== undefined &&
    old.registry === registry &&
    old.env === env &&
    sameItems(old.sources.globalRules, sources.globalRules) &&
    sameItems(old.sources.consumerGroups, sources.consumerGroups) &&
    sameItems(old.sources.metadata, sources.metadata)
  ) {
    shared = old;
  } else {
    const partial = {
      registry,
      env,
      globalPlugins: mergeGlobalRules(snapshot),
      globalEntries: [] as ChainEntry[],
      globalReleasable: [] as CompiledConf[],
      consumerGroups: byId(snapshot.consumer_groups),
      metadata: buildMetadata(snapshot, registry),
      compiled: old?.compiled ?? new CompiledConfs(),
      sources,
    };
    partial.globalEntries = entriesOf(partial.globalPlugins, partial, 'global rule', partial.globalReleasable);
    shared = partial;
  }
  return { shared, services: byId(snapshot.services), pluginConfigs: byId(snapshot.plugin_configs) };
}

// ---- entries ----

/** An entry that answers every request with `status` and `message` (rewrite, before any other route plugin). */
function failingEntry(name: string, status: number, message: string): ChainEntry {
  const exit: PluginExit = { status, body: { error_msg: message } };
  const plugin: PluginModule = {
    name,
    version: '0',
    priority: Number.MAX_SAFE_INTEGER,
    schema: {},
    rewrite: () => exit,
  };
  return { plugin, conf: undefined, filter: null, errorResponse: undefined };
}

let filterContext: PluginContext | undefined;
// One lookup function for every filter: the expression is evaluated synchronously, so a
// module-level "current context" spares allocating a closure per request.
const filterLookup = (name: string): ReturnType<PluginContext['var']> => filterContext?.var(name);

function makeFilter(expr: CompiledExpr): (ctx: PluginContext) => boolean {
  return (ctx) => {
    filterContext = ctx;
    try {
      return expr(filterLookup);
    } finally {
      filterContext = undefined;
    }
  };
}

function pluginEnv(name: string, shared: SharedChainInputs, metadata: CompiledConf['metadata']): PluginEnv {
  const pluginLog: Logger = logger(`plugin:${name}`);
  return { log: pluginLog, dict: (dictName) => shared.env.dict(dictName), metadata };
}

/** The compiled configuration of `plugin` for `raw`, or an error text. Cached per configuration object. */
function compiledConf(
  plugin: PluginModule,
  raw: RawConf,
  shared: SharedChainInputs,
): { compiled: CompiledConf } | { error: string } {
  const metadata = shared.metadata.get(plugin.name);
  const cached = shared.compiled.get(raw, plugin);
  if (cached !== undefined && cached.metadata === metadata) return { compiled: cached };
  const conf = structuredClone(raw);
  const err = checkPluginConf(plugin, conf, 'route'); // fills schema defaults
  if (err !== undefined) return { error: err };
  delete conf._meta;
  let compiled: unknown = conf;
  if (plugin.compile !== undefined) {
    try {
      compiled = plugin.compile(conf, pluginEnv(plugin.name, shared, metadata));
    } catch (compileErr) {
      return { error: `compile failed: ${(compileErr as Error).message}` };
    }
  }
  let phases: readonly Phase[] | undefined;
  if (plugin.phases !== undefined) {
    try {
      phases = Object.freeze([...plugin.phases(compiled)]);
    } catch (phasesErr) {
      try {
        plugin.release?.(compiled);
      } catch {
        // The configuration is refused either way; its phases() error is the one to report.
      }
      return { error: `phases failed: ${(phasesErr as Error).message}` };
    }
  }
  // A fresh configuration counts as held until a sweep finds otherwise.
  const entry: CompiledConf = {
    plugin,
    raw,
    metadata,
    conf: compiled,
    phases,
    heldInSweep: 0,
    releaseAfter: Infinity,
  };
  shared.compiled.add(entry);
  return { compiled: entry };
}

interface SortableEntry {
  readonly entry: ChainEntry;
  readonly priority: number;
  readonly name: string;
  /** Set when the plugin has release(). */
  readonly releasable?: CompiledConf;
}

/** One entry for `name`, or null when `_meta.disable` leaves it out. */
function compileEntry(
  name: string,
  raw: unknown,
  shared: Pick<SharedChainInputs, 'registry' | 'env' | 'metadata' | 'compiled'>,
  where: string,
): SortableEntry | null {
  const plugin = shared.registry.get(name);
  if (plugin === undefined) {
    log.error('a configured plugin is not loaded; requests there get 503', { plugin: name, in: where });
    const entry = failingEntry(name, 503, `plugin ${name} is not loaded`);
    return { entry, priority: entry.plugin.priority, name };
  }
  if (!isConf(raw)) {
    const entry = failingEntry(name, 503, `plugin ${name} is misconfigured`);
    return { entry, priority: entry.plugin.priority, name };
  }
  const meta = isConf(raw._meta) ? raw._meta : undefined;
  if (meta?.disable === true) return null;
  const result = compiledConf(plugin, raw, shared as SharedChainInputs);
  let filter: ChainEntry['filter'] = null;
  let error = 'error' in result ? result.error : undefined;
  if (error === undefined && meta?.filter !== undefined) {
    try {
      filter = makeFilter(compileExpr(meta.filter));
    } catch (exprErr) {
      error = `failed to validate the 'vars' expression: ${(exprErr as Error).message}`;
    }
  }
  if (error !== undefined) {
    log.error('a plugin configuration does not check or compile; requests there get 503', {
      plugin: name,
      in: where,
      error,
    });
    const entry = failingEntry(name, 503, `plugin ${name} is misconfigured`);
    return { entry, priority: entry.plugin.priority, name };
  }
  const errorResponse = meta?.error_response as PluginExit['body'] | undefined;
  const compiled = 'compiled' in result ? result.compiled : undefined;
  const entry: ChainEntry = { plugin, conf: compiled?.conf, filter, errorResponse, phases: compiled?.phases };
  const priority = typeof meta?.priority === 'number' ? meta.priority : plugin.priority;
  return { entry, priority, name, releasable: plugin.release !== undefined ? compiled : undefined };
}

function sortEntries(entries: SortableEntry[]): ChainEntry[] {
  entries.sort((a, b) => b.priority - a.priority || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return entries.map((sortable) => sortable.entry);
}

/** The entries of `plugins`; compiled configurations that need releasing are pushed onto `releasable`. */
function entriesOf(
  plugins: Readonly<Record<string, unknown>>,
  shared: Pick<SharedChainInputs, 'registry' | 'env' | 'metadata' | 'compiled'>,
  where: string,
  releasable: CompiledConf[],
): ChainEntry[] {
  const entries: SortableEntry[] = [];
  for (const name of Object.keys(plugins)) {
    const sortable = compileEntry(name, plugins[name], shared, where);
    if (sortable === null) continue;
    entries.push(sortable);
    if (sortable.releasable !== undefined) releasable.push(sortable.releasable);
  }
  return sortEntries(entries);
}

// ---- chains ----

/** Whether `entry` runs in `phase`: its module defines the phase and its configuration did not leave it out. */
function runsIn(entry: ChainEntry, phase: Phase): boolean {
  return entry.plugin[phase] !== undefined && (entry.phases === undefined || entry.phases.includes(phase));
}

function phaseList(entries: readonly ChainEntry[], phase: Phase): ChainEntry[] {
  return entries.filter((entry) => runsIn(entry, phase));
}

function hasResponsePhase(entries: readonly ChainEntry[]): boolean {
  return entries.some((entry) => runsIn(entry, 'header_filter') || runsIn(entry, 'body_filter'));
}

/** The route's plugins before any consumer: service < plugin_config < route. */
export function routePlugins(route: Route, context: ChainContext): Record<string, unknown> {
  const service = route.service_id !== undefined ? context.services.get(String(route.service_id)) : undefined;
  const pluginConfig =
    route.plugin_config_id !== undefined ? context.pluginConfigs.get(String(route.plugin_config_id)) : undefined;
  return { ...service?.plugins, ...pluginConfig?.plugins, ...route.plugins };
}

interface ChainParts {
  readonly global: readonly ChainEntry[];
  /** The route's own entries (consumer ones merged in, for a merged chain). */
  readonly local: readonly ChainEntry[];
  /** Entries whose rewrite still has to run (a merged chain: the consumer's and group's). */
  readonly pendingRewrite: readonly ChainEntry[] | undefined;
}

function buildChain(parts: ChainParts, merge: (consumer: AttachedConsumer) => PluginChain): PluginChain {
  const all = [...parts.global, ...parts.local];
  const chain: Record<Phase, ChainEntry[]> = {
    rewrite: [],
    access: [],
    before_proxy: [],
    header_filter: [],
    body_filter: [],
    log: [],
  };
  for (const phase of PHASES) {
    chain[phase] =
      phase === 'rewrite' && parts.pendingRewrite !== undefined
        ? phaseList(parts.pendingRewrite, phase)
        : [...phaseList(parts.global, phase), ...phaseList(parts.local, phase)];
  }
  return Object.freeze({
    ...chain,
    passThroughResponse: !hasResponsePhase(all),
    mergeConsumer: merge,
  });
}

/**
 * Compile the chain of `route` under `context`; null when neither the route
 * (with its service and plugin_config) nor a global rule configures a plugin,
 * so the data plane runs no plugin code at all.
 *
 * `chain.mergeConsumer(consumer)` returns the chain with the consumer's and
 * its group's plugins merged in (auth plugins of the consumer skipped),
 * memoized per consumer object. In the merged chain every phase list is
 * complete except `rewrite`: it holds only the entries that came from the
 * consumer or its group, the rewrites that are still to run after the route's
 * rewrite phase (APISIX's rewrite_in_consumer).
 */
export function compileChain(route: Route, context: ChainContext): PluginChain | null {
  const shared = context.shared;
  const where = `route ${route.id ?? '?'}`;
  const plugins = routePlugins(route, context);
  const releasable: CompiledConf[] = [];
  const local = entriesOf(plugins, shared, where, releasable);
  if (local.length === 0 && shared.globalEntries.length === 0) return null;
  const merged = new WeakMap<Consumer, PluginChain>();
  const merge = (attached: AttachedConsumer): PluginChain => {
    const consumer = attached.consumer;
    let chain = merged.get(consumer);
    if (chain === undefined) {
      const mergedReleasable: CompiledConf[] = [];
      chain = mergeConsumerChain(plugins, attached, shared, where, self, mergedReleasable);
      merged.set(consumer, chain);
      if (mergedReleasable.length > 0) holdOf(self, merged).merged.set(consumer, mergedReleasable);
    }
    return chain;
  };
  const self = buildChain({ global: shared.globalEntries, local, pendingRewrite: undefined }, merge);
  if (releasable.length > 0) holdOf(self, merged).confs.push(...releasable);
  return self;
}

function holdOf(chain: PluginChain, memo: WeakMap<Consumer, PluginChain>): ChainHold {
  let hold = chainHolds.get(chain);
  if (hold === undefined) {
    hold = { confs: [], merged: new Map(), memo };
    chainHolds.set(chain, hold);
  }
  return hold;
}

function mergeConsumerChain(
  routeConfs: Record<string, unknown>,
  attached: AttachedConsumer,
  shared: SharedChainInputs,
  where: string,
  routeChain: PluginChain,
  releasable: CompiledConf[],
): PluginChain {
  const consumer = attached.consumer;
  const group = consumer.group_id !== undefined ? shared.consumerGroups.get(String(consumer.group_id)) : undefined;
  const fromConsumer: Record<string, unknown> = {};
  for (const source of [group?.plugins, consumer.plugins]) {
    for (const [name, conf] of Object.entries(source ?? {})) {
      // Auth plugins of the consumer hold credentials, not route behaviour.
      if (shared.registry.get(name)?.type === 'auth') continue;
      fromConsumer[name] = conf;
    }
  }
  const names = Object.keys(fromConsumer);
  if (names.length === 0) return routeChain;
  const consumerWhere = `${where}, consumer ${consumer.username}`;
  const local: SortableEntry[] = [];
  const pending: SortableEntry[] = [];
  for (const name of Object.keys({ ...routeConfs, ...fromConsumer })) {
    const fromConsumerSide = name in fromConsumer;
    const sortable = compileEntry(
      name,
      fromConsumerSide ? fromConsumer[name] : routeConfs[name],
      shared,
      fromConsumerSide ? consumerWhere : where,
    );
    if (sortable === null) continue;
    local.push(sortable);
    if (fromConsumerSide) pending.push(sortable);
    if (sortable.releasable !== undefined) releasable.push(sortable.releasable);
  }
  const self: PluginChain = buildChain(
    { global: shared.globalEntries, local: sortEntries(local), pendingRewrite: sortEntries(pending) },
    // A consumer is attached once per request; a second attach merges against the route again.
    (other) => routeChain.mergeConsumer(other),
  );
  return self;
}
