// A PluginContext for unit tests: fixed request data given up front, every
// change a plugin makes recorded for the test to assert on, consumers found by
// scanning a plain list. Plugins' phase functions are called directly with it,
// without a data plane.
//
//   const ctx = testContext({ headers: { apikey: 'k1' }, consumers: [jack] });
//   const exit = await plugin.rewrite!(compilePluginConf(plugin, { header: 'apikey' }), ctx);
//   assert.equal(ctx.upstreamHeader('x-consumer-username'), 'jack');

import Ajv from 'ajv';
import addFormats from 'ajv-formats';

import type { VarValue } from '../../../src/core/expr';
import { headerName, type HeaderName } from '../../../src/dataplane/header-name';
import type { Logger } from '../../../src/core/log';
import type { SharedDict } from '../../../src/native/shdict';
import { formatAjvErrors } from '../../../src/schema/format';
import type { Consumer, Upstream } from '../../../src/schema/types';
import type { AttachedConsumer, PluginContext, PluginEnv, PluginExit, PluginModule } from '../../../src/plugins/types';

export interface TestRequest {
  method?: string;
  /** Path and query as received, e.g. `/get?a=1`. */
  uri?: string;
  remoteAddr?: string;
  routeId?: string;
  serviceId?: string;
  /** Request headers; names are matched case-insensitively, arrays are joined with ", ". */
  headers?: Readonly<Record<string, string | readonly string[]>>;
  body?: string | Buffer;
  /** The consumers findConsumer searches (as in the config snapshot). */
  consumers?: readonly Consumer[];
  /** Variables that override (or add to) the ones derived from the request. */
  vars?: Readonly<Record<string, VarValue>>;
  /** The upstream response status and headers, for response-phase plugins. */
  status?: number;
  responseHeaders?: Readonly<Record<string, string>>;
  /** Shared dictionaries by name for ctx.dict(); a missing name throws. */
  dicts?: Readonly<Record<string, SharedDict>>;
  /** Offload tasks by name, run inline on this thread. */
  tasks?: Readonly<Record<string, (payload: unknown) => unknown>>;
  startTime?: number;
}

export type HeaderEdit =
  | { readonly op: 'set'; readonly name: string; readonly value: string | null }
  | { readonly op: 'add'; readonly name: string; readonly value: string };

export interface LogRecord {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly message: string;
  readonly fields?: Record<string, unknown>;
}

/** A logger that keeps what it is given, for assertions. */
export class RecordingLogger implements Logger {
  readonly records: LogRecord[] = [];
  debug(message: string, fields?: Record<string, unknown>): void {
    this.records.push({ level: 'debug', message, fields });
  }
  info(message: string, fields?: Record<string, unknown>): void {
    this.records.push({ level: 'info', message, fields });
  }
  warn(message: string, fields?: Record<string, unknown>): void {
    this.records.push({ level: 'warn', message, fields });
  }
  error(message: string, fields?: Record<string, unknown>): void {
    this.records.push({ level: 'error', message, fields });
  }
}

function lower(name: string | HeaderName): string {
  return typeof name === 'string' ? name.toLowerCase() : name.lower;
}

function lowerCaseHeaders(headers: TestRequest['headers']): Map<string, string> {
  const map = new Map<string, string>();
  for (const [name, value] of Object.entries(headers ?? {})) {
    map.set(name.toLowerCase(), typeof value === 'string' ? value : value.join(', '));
  }
  return map;
}

function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  if (header === undefined) return cookies;
  for (const pair of header.split(';')) {
    const at = pair.indexOf('=');
    if (at < 0) continue;
    const name = pair.slice(0, at).trim();
    if (!cookies.has(name)) cookies.set(name, pair.slice(at + 1).trim());
  }
  return cookies;
}

export class TestPluginContext implements PluginContext {
  method: string;
  uri: string;
  requestUri: string;
  remoteAddr: string;
  /** Set by setRemoteAddr (real-ip). */
  remotePort: number | undefined;
  readonly routeId: string;
  readonly serviceId: string;
  readonly startTime: number;
  /** $upstream_response_time in ms; tests set it when a plugin reads it. */
  upstreamTimeMs: number | undefined = undefined;
  readonly log = new RecordingLogger();

  /** Request headers as received (lower-case names). */
  readonly requestHeaders: Map<string, string>;
  /** The request as it would go upstream: headers after the plugins' edits (lower-case names). */
  readonly upstreamHeaders: Map<string, string>;
  /** Every setHeader/addHeader call, in order. */
  readonly headerEdits: HeaderEdit[] = [];
  /** Every exit built through ctx.exit(), in order. */
  readonly exits: PluginExit[] = [];
  /** Set by setUri / setMethod / setHost / setUpstream. */
  upstreamUri: string | undefined;
  upstreamMethod: string | undefined;
  upstreamHost: string | undefined;
  upstream: Upstream | string | undefined;
  consumer: AttachedConsumer | undefined;
  status: number;
  readonly responseHeaders: Map<string, string>;
  /** Calls to offload(), in order. */
  readonly offloads: { task: string; payload: unknown }[] = [];

  readonly #body: Buffer | undefined;
  readonly #consumers: readonly Consumer[];
  readonly #vars: Readonly<Record<string, VarValue>>;
  readonly #dicts: Readonly<Record<string, SharedDict>>;
  readonly #tasks: Readonly<Record<string, (payload: unknown) => unknown>>;
  readonly #scratch = new Map<string, Record<string, unknown>>();
  #cookies: Map<string, string> | undefined;

  constructor(request: TestRequest = {}) {
    this.method = request.method ?? 'GET';
    this.requestUri = request.uri ?? '/';
    const query = this.requestUri.indexOf('?');
    this.uri = query < 0 ? this.requestUri : this.requestUri.slice(0, query);
    this.remoteAddr = request.remoteAddr ?? '127.0.0.1';
    this.routeId = request.routeId ?? '1';
    this.serviceId = request.serviceId ?? '';
    this.startTime = request.startTime ?? Date.now();
    this.requestHeaders = lowerCaseHeaders(request.headers);
    this.upstreamHeaders = new Map(this.requestHeaders);
    this.#body = typeof request.body === 'string' ? Buffer.from(request.body) : request.body;
    this.#consumers = request.consumers ?? [];
    this.#vars = request.vars ?? {};
    this.#dicts = request.dicts ?? {};
    this.#tasks = request.tasks ?? {};
    this.status = request.status ?? 200;
    this.responseHeaders = lowerCaseHeaders(request.responseHeaders);
  }

  // ---- the request as received ----

  var(name: string): VarValue {
    if (Object.prototype.hasOwnProperty.call(this.#vars, name)) return this.#vars[name];
    const query = this.requestUri.indexOf('?');
    const args = query < 0 ? '' : this.requestUri.slice(query + 1);
    switch (name) {
      case 'uri':
        return this.uri;
      case 'request_uri':
        return this.requestUri;
      case 'args':
      case 'query_string':
        return args;
      case 'request_method':
        return this.method;
      case 'remote_addr':
        return this.remoteAddr;
      case 'remote_port':
        return this.remotePort;
      case 'host':
        return (this.header('host') ?? '').split(':')[0];
      case 'route_id':
        return this.routeId;
      case 'service_id':
        return this.serviceId;
      case 'consumer_name':
        return this.consumer?.username;
      case 'consumer_group_id':
        return this.consumer?.consumer.group_id;
      case 'status':
        return this.status;
    }
    if (name.startsWith('arg_')) {
      const value = new URLSearchParams(args).get(name.slice(4));
      return value ?? undefined;
    }
    if (name.startsWith('http_')) return this.header(name.slice(5).replace(/_/g, '-'));
    if (name.startsWith('cookie_')) {
      this.#cookies ??= parseCookies(this.header('cookie'));
      return this.#cookies.get(name.slice(7));
    }
    return undefined;
  }

  header(name: string | HeaderName): string | undefined {
    return this.requestHeaders.get(lower(name));
  }

  readBody(maxBytes: number): Promise<Buffer | undefined> {
    if (this.#body !== undefined && this.#body.length > maxBytes) {
      return Promise.reject(new RangeError(`request body larger than ${maxBytes} bytes`));
    }
    return Promise.resolve(this.#body);
  }

  setRemoteAddr(address: string, port?: number): void {
    this.remoteAddr = address;
    this.remotePort = port;
  }

  // ---- changes to the upstream request ----

  setHeader(name: string | HeaderName, header: string | number | null): void {
    const key = headerName(name).lower;
    const value = header === null ? null : String(header);
    this.headerEdits.push({ op: 'set', name: key, value });
    if (value === null) this.upstreamHeaders.delete(key);
    else this.upstreamHeaders.set(key, value);
  }

  addHeader(name: string | HeaderName, header: string | number): void {
    const key = headerName(name).lower;
    const value = String(header);
    this.headerEdits.push({ op: 'add', name: key, value });
    const previous = this.upstreamHeaders.get(key);
    this.upstreamHeaders.set(key, previous === undefined ? value : `${previous}, ${value}`);
  }

  /** A header as it would be sent upstream. */
  upstreamHeader(name: string): string | undefined {
    return this.upstreamHeaders.get(name.toLowerCase());
  }

  setUri(pathAndQuery: string): void {
    this.upstreamUri = pathAndQuery;
  }

  setMethod(method: string): void {
    this.upstreamMethod = method;
  }

  setHost(host: string): void {
    this.upstreamHost = host;
  }

  setUpstream(upstream: Upstream | string): void {
    this.upstream = upstream;
  }

  // ---- consumers ----

  /**
   * Scans the consumers for one whose `plugins[plugin][field]` equals `value`.
   */
  findConsumer(plugin: string, field: string, value: string): Consumer | undefined {
    for (const consumer of this.#consumers) {
      const conf = consumer.plugins?.[plugin] as Record<string, unknown> | undefined;
      if (conf !== undefined && conf !== null && conf[field] === value) return consumer;
    }
    return undefined;
  }

  /** A consumer by username (for anonymous_consumer). */
  findConsumerByName(username: string): Consumer | undefined {
    return this.#consumers.find((consumer) => consumer.username === username);
  }

  attachConsumer(consumer: Consumer, credentialId?: string): void {
    this.consumer = { username: consumer.username, consumer, credentialId };
  }

  // ---- the response ----

  setStatus(status: number): void {
    this.status = status;
  }

  responseHeader(name: string | HeaderName): string | undefined {
    return this.responseHeaders.get(lower(name));
  }

  setResponseHeader(name: string | HeaderName, value: string | number | null): void {
    const key = headerName(name).lower;
    if (value === null) this.responseHeaders.delete(key);
    else this.responseHeaders.set(key, String(value));
  }

  addResponseHeader(name: string | HeaderName, header: string | number): void {
    const key = headerName(name).lower;
    const value = String(header);
    const previous = this.responseHeaders.get(key);
    this.responseHeaders.set(key, previous === undefined ? value : `${previous}, ${value}`);
  }

  // ---- helpers ----

  exit(status: number, body?: PluginExit['body'], headers?: Record<string, string>): PluginExit {
    const exit: PluginExit = { status, body, headers };
    this.exits.push(exit);
    return exit;
  }

  dict(name: string): SharedDict {
    const dict = this.#dicts[name];
    if (dict === undefined) throw new Error(`test context: no shared dict "${name}" was given`);
    return dict;
  }

  async offload<T>(task: string, payload: unknown): Promise<T> {
    this.offloads.push({ task, payload });
    const run = this.#tasks[task];
    if (run === undefined) throw new Error(`test context: no offload task "${task}" was given`);
    return (await run(payload)) as T;
  }

  scratch(plugin: string): Record<string, unknown> {
    let space = this.#scratch.get(plugin);
    if (space === undefined) {
      space = {};
      this.#scratch.set(plugin, space);
    }
    return space;
  }
}

export function testContext(request: TestRequest = {}): TestPluginContext {
  return new TestPluginContext(request);
}

/** A PluginEnv for compile(): a recording logger, given dicts and metadata. */
export function testEnv(
  options: { metadata?: Record<string, unknown>; dicts?: Readonly<Record<string, SharedDict>> } = {},
): PluginEnv & { log: RecordingLogger } {
  const dicts = options.dicts ?? {};
  return {
    log: new RecordingLogger(),
    metadata: options.metadata,
    dict(name: string): SharedDict {
      const dict = dicts[name];
      if (dict === undefined) throw new Error(`test env: no shared dict "${name}" was given`);
      return dict;
    },
  };
}

// The same ajv settings as src/schema: first error only, defaults filled in.
const ajv = new Ajv({ allErrors: false, useDefaults: true, verbose: true, strict: false, unicodeRegExp: false });
addFormats(ajv, ['ipv4', 'ipv6']);

/**
 * Validates a plugin configuration against the plugin's schema for `kind` (filling
 * in defaults, on a copy) and runs its check(); returns the error text APISIX would
 * put after "failed to check the configuration of plugin <name> err: ", or the
 * completed configuration.
 */
export function checkPluginConf<C>(
  plugin: PluginModule<C>,
  conf: unknown,
  kind: 'route' | 'consumer' | 'metadata' = 'route',
): { ok: true; conf: Record<string, unknown> } | { ok: false; error: string } {
  const schema =
    kind === 'consumer' ? plugin.consumerSchema : kind === 'metadata' ? plugin.metadataSchema : plugin.schema;
  const copy = structuredClone(conf) as Record<string, unknown>;
  if (schema !== undefined) {
    const validate = ajv.compile(schema);
    if (!validate(copy)) return { ok: false, error: formatAjvErrors(validate.errors) };
  }
  const error = plugin.check?.(copy, kind);
  if (error !== undefined) return { ok: false, error };
  return { ok: true, conf: copy };
}

/** Validates (throwing on an invalid configuration) and compiles a route configuration as the runtime would. */
export function compilePluginConf<C>(plugin: PluginModule<C>, conf: unknown, env: PluginEnv = testEnv()): C {
  const checked = checkPluginConf(plugin, conf, 'route');
  if (!checked.ok) throw new Error(`failed to check the configuration of plugin ${plugin.name} err: ${checked.error}`);
  return plugin.compile ? plugin.compile(checked.conf, env) : (checked.conf as C);
}

/** A Consumer with these plugins (not validated: run checkPluginConf(..., 'consumer') for that). */
export function testConsumer(
  username: string,
  plugins: Record<string, unknown>,
  extra: Partial<Omit<Consumer, 'username' | 'plugins'>> = {},
): Consumer {
  return { username, plugins, ...extra } as Consumer;
}
