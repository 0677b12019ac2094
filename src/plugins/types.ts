// The plugin authoring API and the seam between the plugin runtime and the
// data plane. A plugin is a small module: name, version, priority, schemas,
// and one function per phase it uses (APISIX's shape). A phase function ends
// the request by returning an exit; returning nothing continues.
//
// Cost model: chains are compiled once per config version into flat arrays per
// phase (PluginChain), so a route whose plugins have no response phases keeps
// the data plane's byte-for-byte response pass-through, and a route without
// plugins runs no plugin code at all.

import type { Logger } from '../core/log';
import type { VarValue } from '../core/expr';
import type { HeaderName } from '../dataplane/header-name';
import type { SharedDict } from '../native/shdict';
import type { Consumer, Upstream } from '../schema/types';

export { HeaderName, headerName, isHeaderName } from '../dataplane/header-name';

/** A JSON Schema object as ajv takes it (draft-07, APISIX's dialect). */
export type JsonSchema = Readonly<Record<string, unknown>>;

export type Phase = 'rewrite' | 'access' | 'before_proxy' | 'header_filter' | 'body_filter' | 'log';

/** Ends the request: APISIX's `return code, body`. A body object is sent as JSON plus "\n". */
export interface PluginExit {
  readonly status: number;
  readonly body?: string | Buffer | Readonly<Record<string, unknown>> | readonly unknown[];
  readonly headers?: Readonly<Record<string, string>>;
}

/** What a phase returns: nothing to go on, an exit to answer now. May be a promise (kept off the sync fast path). */
export type PhaseResult = PluginExit | undefined | void;
export type MaybePromise<T> = T | Promise<T>;

/** The consumer an auth plugin attached, with the plugins the consumer (and its group) configure. */
export interface AttachedConsumer {
  readonly username: string;
  readonly consumer: Consumer;
  /** The auth plugin's credential id (`X-Credential-Identifier`), when it has one. */
  readonly credentialId?: string;
}

/**
 * Everything a plugin sees of one request. One object per request with a fixed
 * shape; every accessor decodes lazily and caches on the request.
 */
export interface PluginContext {
  // ---- the request as received ----
  readonly method: string;
  /** Path without the query string ($uri). */
  readonly uri: string;
  /**
   * $request_uri as APISIX sets it: the normalised path ($uri) and the query.
   * The target exactly as received is the var `real_request_uri`.
   */
  readonly requestUri: string;
  readonly remoteAddr: string;
  /**
   * Replace the client address (and port) that later plugins, vars
   * (remote_addr, remote_port) and logs see (real-ip); optional so contexts may add it later.
   */
  setRemoteAddr?(address: string, port?: number): void;
  readonly routeId: string;
  readonly serviceId: string;
  /** nginx-style variables: uri, args, arg_*, http_*, cookie_*, remote_addr, route_id, consumer_name, ... */
  var(name: string): VarValue;
  /** A request header by lower-case name (several values joined with ", "), decoded only when read. */
  header(name: string | HeaderName): string | undefined;
  /** The request body, read (up to `maxBytes`, else rejects) for plugins that need it; undefined for no body. */
  readBody(maxBytes: number): Promise<Buffer | undefined>;

  // ---- changes to the request sent upstream (rewrite/access/before_proxy) ----
  /**
   * Header edits take a name as a string or, cheaper per request, as a HeaderName
   * made once with headerName() when the configuration compiles. A number is
   * written as its decimal digits. A name that is not a token, or a value holding
   * CR, LF or NUL, throws a TypeError.
   */
  setHeader(name: string | HeaderName, value: string | number | null): void;
  addHeader(name: string | HeaderName, value: string | number): void;
  /** A new path (and query) for the upstream request. */
  setUri(pathAndQuery: string): void;
  setMethod(method: string): void;
  /** Host header sent upstream. */
  setHost(host: string): void;
  /** Send this request to another upstream (traffic-split): an inline upstream or an upstream id. */
  setUpstream(upstream: Upstream | string): void;

  // ---- consumers (auth plugins, rewrite phase) ----
  readonly consumer: AttachedConsumer | undefined;
  /** Look a consumer up by a credential of the calling auth plugin (e.g. key-auth's `key`). */
  findConsumer(plugin: string, field: string, value: string): Consumer | undefined;
  /** A consumer by username (auth plugins' `anonymous_consumer`); optional so contexts may add it later. */
  findConsumerByName?(username: string): Consumer | undefined;
  attachConsumer(consumer: Consumer, credentialId?: string): void;

  // ---- the response (header_filter, body_filter, log) ----
  readonly status: number;
  setStatus(status: number): void;
  responseHeader(name: string | HeaderName): string | undefined;
  setResponseHeader(name: string | HeaderName, value: string | number | null): void;
  addResponseHeader(name: string | HeaderName, value: string | number): void;

  // ---- helpers ----
  /** Convenience for `return ctx.exit(401, {...})`. */
  exit(status: number, body?: PluginExit['body'], headers?: Record<string, string>): PluginExit;
  /** A named shared dictionary (every worker and the agent see the same data on the native backends). */
  dict(name: string): SharedDict;
  /**
   * Run CPU-heavy work on the worker-thread pool: `task` names a function a
   * plugin registered (PluginModule.tasks); Buffers/ArrayBuffers in `transfer`
   * move instead of being copied.
   */
  offload<T>(task: string, payload: unknown, transfer?: readonly ArrayBuffer[]): Promise<T>;
  /** Per-request scratch space for a plugin (shared between its phases of this request). */
  scratch(plugin: string): Record<string, unknown>;
  readonly log: Logger;
  /** Request start, ms since the epoch. */
  readonly startTime: number;
  /** $upstream_response_time in ms, as a number (undefined until the upstream response is complete). */
  readonly upstreamTimeMs: number | undefined;
}

export type PhaseFunction<C> = (conf: C, ctx: PluginContext) => MaybePromise<PhaseResult>;
/**
 * body_filter gets the whole response body (the runtime buffers it, bounded) and returns the new one.
 * The body is the plugin's until the response is written: a large one is then detached, its memory freed
 * on an offload thread, so a plugin that keeps any of it for later (a logger's entry) copies that part.
 */
export type BodyFilterFunction<C> = (conf: C, ctx: PluginContext, body: Buffer) => MaybePromise<Buffer | undefined>;

export interface PluginModule<C = unknown> {
  readonly name: string;
  readonly version: string;
  /** APISIX default priority: higher runs first. */
  readonly priority: number;
  /** Auth plugins run in rewrite, attach consumers, and are skipped when consumer plugins merge in. */
  readonly type?: 'auth';
  readonly schema: JsonSchema;
  readonly consumerSchema?: JsonSchema;
  readonly metadataSchema?: JsonSchema;
  /** Checks beyond the schema; returns an error message (APISIX words it after "failed to check the configuration of plugin X err: "). */
  check?(conf: unknown, kind: 'route' | 'consumer' | 'metadata'): string | undefined;
  /**
   * Turn a validated configuration into what the phase functions take, once per
   * config version (compile regexes, build lookup tables, open clients).
   * Without it the phase functions take the configuration itself.
   */
  compile?(conf: unknown, env: PluginEnv): C;
  /** Release what compile() opened, when a config version is retired. */
  release?(compiled: C): void;
  /**
   * The phases this compiled configuration runs in, out of those the module
   * defines; without it, all of them. Asked once per compiled configuration, so
   * a phase a configuration does not need costs its routes nothing: a logger
   * without include_resp_body leaves body_filter out and its routes keep the
   * streamed pass-through response.
   */
  phases?(compiled: C): readonly Phase[];

  readonly rewrite?: PhaseFunction<C>;
  readonly access?: PhaseFunction<C>;
  readonly before_proxy?: PhaseFunction<C>;
  readonly header_filter?: PhaseFunction<C>;
  readonly body_filter?: BodyFilterFunction<C>;
  /**
   * After the response. The request (headers, vars) is readable while this runs,
   * as ngx.var is in APISIX's log phase; a logger that awaits copies what it
   * needs first (the request's parsed head is reused once the phase returns).
   */
  readonly log?: PhaseFunction<C>;

  /** Functions the offload pool can run for this plugin, by name (pure: payload in, result out). */
  readonly tasks?: Readonly<Record<string, (payload: unknown) => unknown>>;
  /** Module path of `tasks` for the worker threads to load (set by the loader). */
  readonly source?: string;
}

/** What compile() may use. */
export interface PluginEnv {
  readonly log: Logger;
  dict(name: string): SharedDict;
  /** This plugin's metadata (plugin_metadata/<name>), when set. */
  readonly metadata: Readonly<Record<string, unknown>> | undefined;
}

/** One plugin instance in a chain: the module and its compiled configuration. */
export interface ChainEntry {
  readonly plugin: PluginModule<unknown>;
  readonly conf: unknown;
  /** `_meta.filter`: run this entry only when it matches. */
  readonly filter: ((ctx: PluginContext) => boolean) | null;
  /** `_meta.error_response`: replaces the body of an exit this plugin returns. */
  readonly errorResponse: PluginExit['body'] | undefined;
  /** The phases this entry runs in (PluginModule.phases); undefined: every phase its module defines. */
  readonly phases?: readonly Phase[];
}

/**
 * A route's plugins compiled for one config version: per phase, the entries
 * that implement it, in run order (priority descending, `_meta.priority`
 * applied). Global rules come first as APISIX runs them.
 */
export interface PluginChain {
  readonly rewrite: readonly ChainEntry[];
  readonly access: readonly ChainEntry[];
  readonly before_proxy: readonly ChainEntry[];
  readonly header_filter: readonly ChainEntry[];
  readonly body_filter: readonly ChainEntry[];
  readonly log: readonly ChainEntry[];
  /** True when no entry has a response phase: the data plane keeps its pass-through path. */
  readonly passThroughResponse: boolean;
  /** Consumer and consumer-group plugins are merged in after an auth plugin attaches a consumer. */
  readonly mergeConsumer: (consumer: AttachedConsumer) => PluginChain;
}
