// The PluginContext of one request whose route has plugins: a view over the
// data plane's RequestState that decodes only what a plugin reads and records
// what it changes. Request edits are applied when the upstream head is built
// (dataplane/head.ts); response edits when the response head is rewritten.
// Routes without plugins never create one.

import type { VarValue } from '../core/expr';
import { logger, type Logger } from '../core/log';
import type { ChunkedDecoder } from '../dataplane/chunked';
import { HeaderEdit, HeaderList, type HeaderEdits, type HeaderValue, type RequestEdits } from '../dataplane/head';
import { headerName, isHeaderName, type HeaderName } from '../dataplane/header-name';
import { BodyKind, type RequestState } from '../dataplane/request';
import { headerValue, requestVar, upstreamTimeMs } from '../dataplane/vars';
import type { SharedDict } from '../native/shdict';
import type { Consumer, Upstream } from '../schema/types';
import type { ConsumerIndex } from './consumers';
import type { OffloadPool } from './offload';
import type { AttachedConsumer, ChainEntry, PluginChain, PluginContext, PluginExit } from './types';

/** What the data plane lends every request's context. */
export interface PluginHost {
  /** Consumers of the config version the request started under. */
  readonly consumers: ConsumerIndex;
  readonly offload: OffloadPool;
  dict(name: string): SharedDict;
}

/** The connection side of readBody(): start reading the held request body into the context. */
export interface BodySource {
  readRequestBody(req: RequestState): void;
}

const pluginLog = logger('plugin');

// Values may not carry CR, LF or NUL (header injection).
const BAD_VALUE = /[\r\n\0]/;
const NOT_LATIN1 = /[^\x00-\xff]/;
/** Either of the two above: one test settles the common value. */
const UNUSUAL_VALUE = new RegExp(`${BAD_VALUE.source}|${NOT_LATIN1.source}`);
const NOT_ASCII = /[^\x00-\x7f]/;
const NOT_ASCII_RUNS = /[^\x00-\x7f]+/g;

/**
 * `text` as heads are written: latin1, one byte per code unit. A code unit above
 * 0xFF would lose its high byte on the wire (U+010D would arrive as CR), so text
 * holding one is sent as its UTF-8 bytes instead.
 */
function wireText(text: string): string {
  return NOT_LATIN1.test(text) ? Buffer.from(text, 'utf8').toString('latin1') : text;
}

/** Checks a header value; returns it as it goes on the wire (see HeaderValue). */
function wireValue(name: HeaderName, value: string | number | null): HeaderValue | null {
  if (value === null) return null;
  if (typeof value === 'number') return value >= 0 && Number.isSafeInteger(value) ? value : String(value);
  // The value last written under this name passed here before, as it is on the wire (X-Consumer-Username).
  if (value === name.lastValue) return value;
  // One test for the common case (plain latin1, no CR/LF/NUL); the rare rest looks closer.
  if (!UNUSUAL_VALUE.test(value)) return value;
  const text = wireText(value);
  if (BAD_VALUE.test(text)) throw new TypeError(`invalid value for header ${name.name}`);
  return text;
}

// Plugins read the same few header names on every request: each is lower-cased
// once (a lower-cased copy is a new string each time). Names that are set go
// through headerName(), which caches the same way.
const NAME_CACHE_LIMIT = 1024;
const lowerNames = new Map<string, string>();

function lowerName(name: string | HeaderName): string {
  if (typeof name !== 'string') return name.lower;
  let lower = lowerNames.get(name);
  if (lower === undefined) {
    lower = name.toLowerCase();
    if (lowerNames.size < NAME_CACHE_LIMIT) lowerNames.set(name, lower);
  }
  return lower;
}

/** Header edits as recorded, flat triples (see HeaderEditEntries). */
type EditLog = Array<HeaderEdit | HeaderName | HeaderValue | null>;

const TRANSFER_ENCODING = headerName('Transfer-Encoding');
const CONTENT_LENGTH = headerName('Content-Length');
const HOST = headerName('Host');

function valueText(value: HeaderValue | null): string | null {
  return typeof value === 'number' ? String(value) : value;
}

/** Replay recorded edits of `lower` over `value`. */
function replay(edits: EditLog, lower: string, value: string | undefined): string | undefined {
  for (let i = 0; i < edits.length; i += 3) {
    if ((edits[i + 1] as HeaderName).lower !== lower) continue;
    const edited = valueText(edits[i + 2] as HeaderValue | null);
    if (edits[i] === HeaderEdit.Set) value = edited ?? undefined;
    else value = value === undefined ? (edited as string) : `${value}, ${edited as string}`;
  }
  return value;
}

const NO_HEADER_EDITS: HeaderEdits = { entries: [], droppedLengths: 0 };

/**
 * Recorded edits as head building takes them. In the common case (X-RateLimit-*,
 * X-Consumer-Username) no Set follows another edit of its name, and the log is
 * used as it is; otherwise the edits a later Set undoes are left out.
 */
function resolveHeaderEdits(edits: EditLog): HeaderEdits {
  let droppedLengths = 0;
  let seenLengths = 0;
  let undone = false;
  for (let i = 0; i < edits.length; i += 3) {
    const name = edits[i + 1] as HeaderName;
    if (edits[i] === HeaderEdit.Set) {
      if ((seenLengths & name.lengthBit) !== 0 && !undone) undone = editedBefore(edits, i, name.lower);
      droppedLengths |= name.lengthBit;
    }
    seenLengths |= name.lengthBit;
  }
  return { entries: undone ? withoutUndone(edits) : edits, droppedLengths };
}

/** Whether an edit before triple `end` names `lower`. */
function editedBefore(edits: EditLog, end: number, lower: string): boolean {
  for (let i = 0; i < end; i += 3) if ((edits[i + 1] as HeaderName).lower === lower) return true;
  return false;
}

/** `edits` without those a later Set of the same name replaces. */
function withoutUndone(edits: EditLog): EditLog {
  const kept: EditLog = [];
  for (let i = 0; i < edits.length; i += 3) {
    const lower = (edits[i + 1] as HeaderName).lower;
    let undone = false;
    for (let later = i + 3; later < edits.length && !undone; later += 3) {
      undone = edits[later] === HeaderEdit.Set && (edits[later + 1] as HeaderName).lower === lower;
    }
    if (!undone) kept.push(edits[i], edits[i + 1], edits[i + 2]);
  }
  return kept;
}

export class RequestContext implements PluginContext {
  readonly req: RequestState;
  readonly host: PluginHost;
  readonly startTime: number;
  /** The chain in effect: the route's, then the merged one once a consumer is attached. */
  chain: PluginChain;
  /** The route's chain before any consumer merge (the runner compares the two). */
  readonly routeChain: PluginChain;
  /** The entry whose phase function runs now (offload() resolves the task's module through it). */
  current: ChainEntry | null;
  consumer: AttachedConsumer | undefined;
  /** real-ip's client address (and port), over the socket's; null when unchanged. */
  realAddress: string | null;
  realPort: number;
  /** traffic-split's choice, resolved by the connection before it picks a node. */
  upstreamOverride: Upstream | string | null;

  /** Request header edits, flat triples (kind, name, value); null until the first one. */
  private headerEdits: EditLog | null;
  private methodOverride: string | null;
  private targetOverride: string | null;
  private hostOverride: string | null;

  /** The body as readBody() returned it: null until read, undefined for a request without one. */
  body: Buffer | undefined | null;
  /** readBody()'s limit while the connection reads the body into `bodyParts`; -1 when nobody reads. */
  bodyLimit: number;
  bodyParts: Buffer[] | null;
  /**
   * The raw body bytes (chunk framing included) read before readBody() gave up on a body over its
   * limit: they go upstream first, and the rest of the body streams after them. Null otherwise.
   */
  bodyPrefix: Buffer | null;
  private bodyWaiter: { resolve(body: Buffer | undefined): void; reject(err: Error): void } | null;
  private readonly bodySource: BodySource;

  /** Response header edits made before the response exists, flat triples as headerEdits. */
  private responseEdits: EditLog | null;
  /** The response headers once the response head is known (header_filter onwards). */
  responseHeaders: HeaderList | null;
  /** The upstream's reason phrase, kept while the status is unchanged. */
  responseReason: string | null;
  /** setStatus()'s value; 0 when unchanged. */
  statusOverride: number;
  /** The status an exit answered with (0 when the upstream answered). */
  exitStatus: number;
  /** Response body chunks held for body_filter (raw, framing included); null when streaming. */
  responseParts: Buffer[] | null;
  responseBytes: number;
  /**
   * The whole held body given to body_filter when it is large and owns its
   * ArrayBuffer: freed off the proxying thread once the response is written
   * (see ClientConnection.releaseHeldBody).
   */
  heldBody: Buffer | null;
  /** A held chunked body, decoded read by read (the raw parts stay for a body that outgrows the hold). */
  responseDecoder: ChunkedDecoder | null;
  /**
   * The upstream's Content-Encoding before header_filter (null: none), kept while a body is held:
   * a body that outgrows the hold goes out unfiltered and must not carry a filter's encoding.
   */
  upstreamEncoding: string | null;
  /** Response bytes written to the client, head included (for the log phase). */
  bytesSent: number;
  /** The log phase was scheduled. */
  logged: boolean;
  /** The request's parsed-head array, given back to the pool once the log phase has run (see out-pool.ts). */
  heldOut: Int32Array | null;
  private scratchpad: Map<string, Record<string, unknown>> | null;

  constructor(req: RequestState, chain: PluginChain, host: PluginHost, bodySource: BodySource) {
    this.req = req;
    this.host = host;
    this.startTime = Date.now();
    this.chain = chain;
    this.routeChain = chain;
    this.current = null;
    this.consumer = undefined;
    this.realAddress = null;
    this.realPort = 0;
    this.upstreamOverride = null;
    this.headerEdits = null;
    this.methodOverride = null;
    this.targetOverride = null;
    this.hostOverride = null;
    this.body = null;
    this.bodyLimit = -1;
    this.bodyParts = null;
    this.bodyPrefix = null;
    this.bodyWaiter = null;
    this.bodySource = bodySource;
    this.responseEdits = null;
    this.responseHeaders = null;
    this.responseReason = null;
    this.statusOverride = 0;
    this.exitStatus = 0;
    this.responseParts = null;
    this.heldBody = null;
    this.responseBytes = 0;
    this.responseDecoder = null;
    this.upstreamEncoding = null;
    this.bytesSent = 0;
    this.logged = false;
    this.heldOut = null;
    this.scratchpad = null;
    req.plugins = this; // vars (consumer_name, status, remote_addr) read the context through the request
  }

  // ---- the request as received ----

  get method(): string {
    return requestVar(this.req, 'request_method') as string;
  }

  get uri(): string {
    return requestVar(this.req, 'uri') as string;
  }

  get requestUri(): string {
    return requestVar(this.req, 'request_uri') as string;
  }

  get upstreamTimeMs(): number | undefined {
    return upstreamTimeMs(this.req);
  }

  get remoteAddr(): string {
    return this.realAddress ?? this.req.client.remoteAddress;
  }

  setRemoteAddr(address: string, port?: number): void {
    this.realAddress = address;
    this.realPort = port ?? this.req.client.remotePort;
  }

  get routeId(): string {
    return this.req.route?.id ?? '';
  }

  get serviceId(): string {
    return this.req.route?.serviceId ?? '';
  }

  var(name: string): VarValue {
    return requestVar(this.req, name);
  }

  header(name: string | HeaderName): string | undefined {
    const lower = lowerName(name);
    const value = headerValue(this.req, lower);
    return this.headerEdits === null ? value : replay(this.headerEdits, lower, value);
  }

  readBody(maxBytes: number): Promise<Buffer | undefined> {
    if (this.body !== null) {
      if (this.body !== undefined && this.body.length > maxBytes) return Promise.reject(bodyTooLarge(maxBytes));
      return Promise.resolve(this.body);
    }
    const req = this.req;
    if (req.bodyKind === BodyKind.None) {
      this.body = undefined;
      return Promise.resolve(undefined);
    }
    if (this.bodyWaiter !== null) return Promise.reject(new Error('the request body is being read already'));
    if (req.bodyKind === BodyKind.Length && req.bodyRemaining > maxBytes) return Promise.reject(bodyTooLarge(maxBytes));
    return new Promise<Buffer | undefined>((resolve, reject) => {
      this.bodyWaiter = { resolve, reject };
      this.bodyLimit = maxBytes;
      this.bodyParts = [];
      this.bodySource.readRequestBody(req);
    });
  }

  /** The connection has read the whole body (chunk framing removed). */
  bodyComplete(body: Buffer): void {
    const waiter = this.bodyWaiter;
    this.bodyWaiter = null;
    this.bodyParts = null;
    const limit = this.bodyLimit;
    this.bodyLimit = -1;
    // Kept even when over the reader's limit: the body was read from the client, so it goes upstream from here.
    this.body = body;
    // The body now goes upstream whole, so with a length instead of chunks.
    if (this.req.bodyKind === BodyKind.Chunked) {
      (this.headerEdits ??= []).push(
        HeaderEdit.Set,
        TRANSFER_ENCODING,
        null,
        HeaderEdit.Set,
        CONTENT_LENGTH,
        body.length,
      );
    }
    if (body.length > limit) waiter?.reject(bodyTooLarge(limit));
    else waiter?.resolve(body);
  }

  /** The body cannot be read (client gone, too large, bad framing). */
  bodyFailed(err: Error): void {
    const waiter = this.bodyWaiter;
    this.bodyWaiter = null;
    this.bodyParts = null;
    this.bodyLimit = -1;
    waiter?.reject(err);
  }

  // ---- changes to the request sent upstream ----

  setHeader(name: string | HeaderName, header: string | number | null): void {
    const checked = headerName(name);
    const value = wireValue(checked, header);
    if (checked.lower === 'host') {
      if (value !== null) this.hostOverride = String(value);
      return;
    }
    (this.headerEdits ??= []).push(HeaderEdit.Set, checked, value);
  }

  addHeader(name: string | HeaderName, header: string | number): void {
    const checked = headerName(name);
    (this.headerEdits ??= []).push(HeaderEdit.Add, checked, wireValue(checked, header));
  }

  setUri(pathAndQuery: string): void {
    // Bytes beyond ASCII go percent-encoded (as UTF-8): servers refuse them raw in a request target.
    const target = NOT_ASCII.test(pathAndQuery)
      ? pathAndQuery.replace(NOT_ASCII_RUNS, encodeURIComponent)
      : pathAndQuery;
    if (!target.startsWith('/') || /[\s\0]/.test(target)) {
      throw new TypeError(`invalid upstream uri: ${JSON.stringify(pathAndQuery)}`);
    }
    this.targetOverride = target;
  }

  setMethod(method: string): void {
    if (!isHeaderName(method)) throw new TypeError(`invalid method: ${JSON.stringify(method)}`);
    this.methodOverride = method.toUpperCase();
  }

  setHost(host: string): void {
    this.hostOverride = wireValue(HOST, host) as string;
  }

  setUpstream(upstream: Upstream | string): void {
    this.upstreamOverride = upstream;
  }

  /**
   * What plugins changed, in the form buildUpstreamHead applies; null when
   * nothing did. Header edits resolve to: client lines dropped by name, lines added.
   */
  requestEdits(): RequestEdits | null {
    const edits = this.headerEdits;
    if (
      edits === null &&
      this.methodOverride === null &&
      this.targetOverride === null &&
      this.hostOverride === null &&
      this.realAddress === null
    ) {
      return null;
    }
    const { entries, droppedLengths } = edits === null ? NO_HEADER_EDITS : resolveHeaderEdits(edits);
    return {
      method: this.methodOverride,
      target: this.targetOverride,
      host: this.hostOverride,
      entries,
      droppedLengths,
      clientAddress: this.realAddress,
    };
  }

  // ---- consumers ----

  findConsumer(plugin: string, field: string, value: string): Consumer | undefined {
    return this.host.consumers.find(plugin, field, value);
  }

  findConsumerByName(username: string): Consumer | undefined {
    return this.host.consumers.byName(username);
  }

  attachConsumer(consumer: Consumer, credentialId?: string): void {
    this.consumer = { username: consumer.username, consumer, credentialId };
  }

  // ---- the response ----

  get status(): number {
    if (this.statusOverride !== 0) return this.statusOverride;
    return this.exitStatus !== 0 ? this.exitStatus : this.req.responseStatus;
  }

  setStatus(status: number): void {
    if (!Number.isInteger(status) || status < 100 || status > 999) throw new TypeError(`invalid status: ${status}`);
    this.statusOverride = status;
  }

  responseHeader(name: string | HeaderName): string | undefined {
    if (this.responseHeaders !== null) return this.responseHeaders.get(typeof name === 'string' ? name : name.name);
    return this.responseEdits === null ? undefined : replay(this.responseEdits, lowerName(name), undefined);
  }

  setResponseHeader(name: string | HeaderName, header: string | number | null): void {
    const checked = headerName(name);
    const value = wireValue(checked, header);
    if (this.responseHeaders !== null) this.responseHeaders.set(checked.name, valueText(value));
    else (this.responseEdits ??= []).push(HeaderEdit.Set, checked, value);
  }

  addResponseHeader(name: string | HeaderName, header: string | number): void {
    const checked = headerName(name);
    const value = wireValue(checked, header) as HeaderValue;
    if (this.responseHeaders !== null) this.responseHeaders.add(checked.name, String(value));
    else (this.responseEdits ??= []).push(HeaderEdit.Add, checked, value);
  }

  /** Whether the response head must be rewritten even on a pass-through chain (headers set before it came). */
  get editsResponse(): boolean {
    return this.responseEdits !== null || this.statusOverride !== 0 || !this.chain.passThroughResponse;
  }

  /**
   * Response header edits made before the response, as byte-level head edits,
   * when that is all there is to do to the response (no response phase, status
   * unchanged): the head is then rewritten by copying, without a header list.
   */
  plainResponseEdits(): HeaderEdits | null {
    if (this.responseEdits === null || this.statusOverride !== 0 || !this.chain.passThroughResponse) return null;
    return resolveHeaderEdits(this.responseEdits);
  }

  /** Make `headers` the response's header list, with the edits made before it existed applied. */
  adoptResponseHeaders(headers: HeaderList): void {
    const edits = this.responseEdits;
    this.responseEdits = null;
    this.responseHeaders = headers;
    if (edits === null) return;
    for (let i = 0; i < edits.length; i += 3) {
      const name = (edits[i + 1] as HeaderName).name;
      const value = valueText(edits[i + 2] as HeaderValue | null);
      if (edits[i] === HeaderEdit.Set) headers.set(name, value);
      else headers.add(name, value as string);
    }
  }

  // ---- helpers ----

  exit(status: number, body?: PluginExit['body'], headers?: Record<string, string>): PluginExit {
    return { status, body, headers };
  }

  dict(name: string): SharedDict {
    return this.host.dict(name);
  }

  offload<T>(task: string, payload: unknown, transfer?: readonly ArrayBuffer[]): Promise<T> {
    const plugin = this.current?.plugin;
    if (plugin === undefined) return Promise.reject(new Error('offload() called outside a phase function'));
    if (plugin.source !== undefined) return this.host.offload.run<T>(plugin.source, task, payload, transfer);
    // A plugin not loaded from a file (built in code) has no module for the threads to load: run it here.
    const fn = plugin.tasks?.[task];
    if (fn === undefined) return Promise.reject(new Error(`plugin ${plugin.name} has no offload task "${task}"`));
    try {
      return Promise.resolve(fn(payload) as T);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  scratch(plugin: string): Record<string, unknown> {
    const pad = (this.scratchpad ??= new Map());
    let space = pad.get(plugin);
    if (space === undefined) {
      space = {};
      pad.set(plugin, space);
    }
    return space;
  }

  get log(): Logger {
    return pluginLog;
  }
}

function bodyTooLarge(maxBytes: number): Error {
  return new Error(`request body larger than ${maxBytes} bytes`);
}
