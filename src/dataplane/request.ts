// The per-request state: the only object the data plane allocates per request.
// Every field is assigned in the constructor so all instances share one hidden
// class (a test pins the shape).

import type { VarValue } from '../core/expr';
import type { RequestContext } from '../plugins/context';
import type { BalancerNode } from './balancer';
import type { CompiledRoute, CompiledUpstream } from './route-table';
import type { UpstreamConnection } from './upstream-pool';

export const enum BodyKind {
  None = 0,
  Length = 1,
  Chunked = 2,
}

export const enum ResponseKind {
  NoBody = 0,
  Length = 1,
  Chunked = 2,
  ReadToClose = 3,
}

export const enum ResponsePhase {
  /** Waiting for (the rest of) a response head. */
  Head = 0,
  Body = 1,
  Done = 2,
  /** After a 101: bytes are piped raw both ways. */
  Tunnel = 3,
}

/** Where the client socket is; the fields below describe the connection, not the request. */
export interface ClientEndpoint {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
}

export class RequestState {
  /** The buffer holding the head; every offset in `out` is absolute into it. */
  readonly head: Buffer;
  readonly headStart: number;
  readonly headEnd: number;
  /**
   * The connection's parse results for this head (valid until the next head is parsed), with the
   * normalised path ($uri) in its URI area when the raw path was not already normal (see vars.ts).
   */
  readonly out: Int32Array;
  readonly client: ClientEndpoint;
  readonly method: number;
  readonly version: number;
  /** PAL_F_* of the head; Upgrade is cleared when the route does not enable websockets. */
  flags: number;
  readonly startedAt: number;

  route: CompiledRoute | null;
  upstream: CompiledUpstream | null;
  /** Lazily decoded variables (see vars.ts). */
  varCache: Map<string, VarValue> | null;
  /** The plugin context, for a route with plugins; null on the plain proxy path. */
  plugins: RequestContext | null;

  bodyKind: BodyKind;
  /** Content-Length bytes still to read from the client. */
  bodyRemaining: number;
  /** Body bytes read from the client so far (raw, chunk framing included). */
  bodyBytes: number;
  bodyDone: boolean;
  /** Read the body and throw it away (the request was answered without an upstream). */
  discardBody: boolean;

  /** The head for the current upstream attempt. */
  upstreamHead: Buffer | null;
  /** The head went out; with a body it leaves together with the first validated body bytes. */
  headSent: boolean;
  node: BalancerNode | null;
  tried: Set<BalancerNode> | null;
  conn: UpstreamConnection | null;
  /** The current upstream connection came from the pool. */
  reused: boolean;
  /** Body bytes have been written upstream (a retry would lose them). */
  bodyStreamed: boolean;
  /** When the current upstream attempt started (ms; set when a balancer or a plugin route needs it). */
  attemptStartedAt: number;
  /** When the upstream response was complete (ms), on plugin routes; 0 before (or without plugins). */
  upstreamDoneAt: number;

  responsePhase: ResponsePhase;
  responseKind: ResponseKind;
  responseRemaining: number;
  /** Partial response head bytes waiting for more. */
  responseHead: Buffer | null;
  /** Any response byte arrived on the current upstream connection. */
  responseStarted: boolean;
  /** Any response byte was written to the client. */
  clientResponseStarted: boolean;
  responseStatus: number;
  /** The client connection stays open after this response. */
  clientKeepAlive: boolean;
  /** The upstream connection may be pooled after this response. */
  upstreamKeepAlive: boolean;

  constructor(
    head: Buffer,
    headStart: number,
    headEnd: number,
    out: Int32Array,
    client: ClientEndpoint,
    method: number,
    version: number,
    flags: number,
    now: number,
  ) {
    this.head = head;
    this.headStart = headStart;
    this.headEnd = headEnd;
    this.out = out;
    this.client = client;
    this.method = method;
    this.version = version;
    this.flags = flags;
    this.startedAt = now;
    this.route = null;
    this.upstream = null;
    this.varCache = null;
    this.plugins = null;
    this.bodyKind = BodyKind.None;
    this.bodyRemaining = 0;
    this.bodyBytes = 0;
    this.bodyDone = true;
    this.discardBody = false;
    this.upstreamHead = null;
    this.headSent = false;
    this.node = null;
    this.tried = null;
    this.conn = null;
    this.reused = false;
    this.bodyStreamed = false;
    this.attemptStartedAt = now;
    this.upstreamDoneAt = 0;
    this.responsePhase = ResponsePhase.Head;
    this.responseKind = ResponseKind.NoBody;
    this.responseRemaining = 0;
    this.responseHead = null;
    this.responseStarted = false;
    this.clientResponseStarted = false;
    this.responseStatus = 0;
    this.clientKeepAlive = false;
    this.upstreamKeepAlive = false;
  }
}
