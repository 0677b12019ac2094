// One client connection: a small state machine that parses a request head,
// picks a route and a node, streams the request body upstream and the response
// back, then either waits for the next request (keep-alive, pipelining in
// order) or closes. Bytes are forwarded as they arrive; only heads are parsed.

import type * as net from 'node:net';
import { ownsWholeBuffer } from '../core/buffers';
import type { VarLookup } from '../core/expr';
import {
  PAL_ERR_BAD_GATEWAY,
  PAL_ERR_BAD_REQUEST,
  PAL_ERR_BODY_TOO_LARGE,
  PAL_ERR_GATEWAY_TIMEOUT,
  PAL_ERR_HEAD_TIMEOUT,
  PAL_ERR_HEAD_TOO_LARGE,
  PAL_ERR_URI_TOO_LONG,
  PAL_ERR_ROUTE_NOT_FOUND,
  PAL_ERR_SERVICE_UNAVAILABLE,
  PAL_ERR_VERSION,
  type PalisadeError,
} from '../core/errors';
import { logger } from '../core/log';
import type { NativeBackend } from '../native/backend';
import { Chunk, CHUNK_STATE_SIZE, contentLength, Flag, Method, Out, ParseError } from '../native/layout';
import { RequestContext, type BodySource, type PluginHost } from '../plugins/context';
import {
  exitBody,
  runBeforeProxy,
  runBodyFilters,
  runHeaderFilters,
  runRequestPhases,
  scheduleLogPhase,
} from '../plugins/runner';
import type { PluginChain, PluginExit } from '../plugins/types';
import type { Upstream } from '../schema/types';
import type { BalanceContext } from './balancer';
import { ChunkedDecoder, decodeChunked } from './chunked';
import { DirectWrites } from './direct-write';
import { returnOut, takeOut } from './out-pool';
import {
  buildUpstreamHead,
  copyBytes,
  HeaderList,
  type HeaderEdits,
  insertAfterStatusLine,
  responseHeaderList,
  responseHeadBound,
  responsePassesThrough,
  rewriteResponseHead,
  serializeResponseHead,
  statusLineEnd,
  writeResponseHead,
} from './head';
import { BodyKind, RequestState, ResponseKind, ResponsePhase, type ClientEndpoint } from './request';
import type { CompiledRoute, CompiledUpstream, RouteTable } from './route-table';
import { READ_HEADROOM, type UpstreamConnection, type UpstreamHandler } from './upstream-pool';
import { requestVar } from './vars';

export interface DataPlaneLimits {
  /** Largest request head; past it the client gets 431. */
  maxHeadBytes: number;
  /** 0 = unlimited; else larger bodies get 413. */
  maxBodyBytes: number;
  /** Time to receive a complete head (and between body reads); 408 after it. */
  headTimeoutMs: number;
  /** Keep-alive idle time before the connection is closed silently. */
  idleTimeoutMs: number;
}

/** What connections share with the DataPlane that owns them. */
export interface ProxyContext extends PluginHost {
  readonly backend: NativeBackend;
  readonly limits: DataPlaneLimits;
  /** Parse results of response heads; shared because a head is handled synchronously. */
  readonly responseOut: Int32Array;
  readonly table: RouteTable;
  /** Coarse clock in ms, refreshed by the DataPlane's ticker. */
  readonly now: number;
  readonly closing: boolean;
  connectionClosed(conn: ClientConnection): void;
  /** traffic-split's upstream (an id or an inline one) compiled; null when the id is unknown. */
  resolveUpstream(upstream: Upstream | string): CompiledUpstream | null;
}

const enum Deadline {
  None = 0,
  /** Keep-alive wait for the next request: silent close. */
  Idle = 1,
  /** Waiting for a complete head: 408. */
  Head = 2,
  /** Waiting for more request body bytes: 408. */
  ClientBody = 3,
  Connect = 4,
  Send = 5,
  Read = 6,
  /** Waiting for the client to take response bytes. */
  ClientWrite = 7,
  /** After we sent FIN: read and drop what is still coming, then close. */
  Linger = 8,
  /** An async plugin phase (request phases, header or body filters) has not finished: 504. */
  Plugins = 9,
}

const LINGER_MS = 2000;
/** On graceful close, how long a connection with no request in progress may still start one. */
const DRAIN_IDLE_GRACE_MS = 1000;
/** A request body up to this size is read and dropped to keep the connection after an error answer. */
const DISCARD_LIMIT = 64 * 1024;
/**
 * A rebuilt response head and the body bytes after it are put together here for
 * one write, instead of in fresh buffers per response (whose off-heap memory
 * drove extra GCs). Reused while writes leave at once; a queued write keeps it
 * and the next response gets a new one.
 */
const RESPONSE_SCRATCH_SIZE = 32 * 1024;
let responseScratch = Buffer.allocUnsafeSlow(RESPONSE_SCRATCH_SIZE);
/** The head onResponseHead composed at the start of responseScratch, until writeHeadAndBody sends it. */
let scratchHead: Buffer | null = null;
const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
/** A response body past this size is not held for body_filter: it streams through unfiltered. */
const MAX_FILTERED_BODY = 8 * 1024 * 1024;
/**
 * Held bodies from this size on are freed on a pool thread once written (releaseHeldBody). Smaller ones
 * are left to the GC: a transfer costs a message, and they add to V8's external memory more slowly.
 */
const RELEASE_HELD_BYTES = 64 * 1024;
/** A plugin that threw: the body of the 500 (no detail leaks to the client; the log has it). */
const PLUGIN_FAILURE = Buffer.from(JSON.stringify({ error_msg: 'internal server error' }) + '\n');
const EXIT_CONTENT_TYPE = 'text/plain; charset=utf-8';
const JSON_CONTENT = { 'Content-Type': 'application/json' };

const log = logger('dataplane');

function isPromise<T>(value: unknown): value is Promise<T> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

const REASONS: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  404: 'Not Found',
  408: 'Request Timeout',
  413: 'Request Entity Too Large',
  414: 'Request-URI Too Large',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
};

const PARSE_ERROR_TEXT: Readonly<Record<number, string>> = {
  [ParseError.BadRequest]: 'malformed request',
  [ParseError.BadMethod]: 'invalid method',
  [ParseError.BadTarget]: 'invalid request target',
  [ParseError.BadHeaderName]: 'invalid header name',
  [ParseError.BadHeaderValue]: 'invalid header value',
  [ParseError.ObsFold]: 'obsolete header line folding',
  [ParseError.ContentLengthAndTransferEncoding]: 'both Content-Length and Transfer-Encoding',
  [ParseError.DuplicateContentLength]: 'conflicting Content-Length headers',
  [ParseError.BadContentLength]: 'invalid Content-Length',
  [ParseError.BadTransferEncoding]: 'unsupported Transfer-Encoding',
  [ParseError.MissingHost]: 'missing or repeated Host header',
  [ParseError.BadChunk]: 'invalid chunked body',
  [ParseError.ChunkTooBig]: 'chunk size too large',
};

function parseError(code: number): PalisadeError {
  if (code === ParseError.BadVersion) return PAL_ERR_VERSION('505 HTTP Version Not Supported');
  if (code === ParseError.TooManyHeaders)
    return PAL_ERR_HEAD_TOO_LARGE('431 Request Header Fields Too Large: too many headers');
  // A path that needs normalising and does not fit the parser's URI area (nginx answers 414 too).
  if (code === ParseError.UriTooLong) return PAL_ERR_URI_TOO_LONG('414 Request-URI Too Large');
  return PAL_ERR_BAD_REQUEST(`400 Bad Request: ${PARSE_ERROR_TEXT[code] ?? 'malformed request'}`);
}

function errorResponse(err: PalisadeError, keepAlive: boolean, withBody: boolean): string {
  const body = JSON.stringify(err.body()) + '\n';
  return (
    `HTTP/1.1 ${err.status} ${REASONS[err.status] ?? 'Error'}\r\n` +
    'Content-Type: application/json\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    `Connection: ${keepAlive ? 'keep-alive' : 'close'}\r\n\r\n` +
    (withBody ? body : '')
  );
}

/** The client address as 4 or 16 bytes, as the router's remote_addr check wants it. */
export function addressBytes(address: string): Buffer {
  const v4 = address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
  if (!v4.includes(':')) {
    const bytes = Buffer.alloc(4);
    const parts = v4.split('.');
    for (let i = 0; i < 4; i++) bytes[i] = Number(parts[i]) || 0;
    return bytes;
  }
  const bytes = Buffer.alloc(16);
  const [head, tail] = address.split('::') as [string, string | undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = [
    ...headGroups,
    ...new Array<string>(8 - headGroups.length - tailGroups.length).fill('0'),
    ...tailGroups,
  ];
  for (let i = 0; i < 8; i++) bytes.writeUInt16BE(parseInt(groups[i] ?? '0', 16) || 0, i * 2);
  return bytes;
}

/**
 * Client sockets adopted by the DataPlane read into this one buffer (net's
 * `onread`) instead of a fresh 64 KiB allocation per read. Sharing it is safe
 * because reads run one at a time on the event loop and every byte kept past
 * `onData` (the head, pipelined or held body bytes, bytes handed to a socket
 * write) is copied out first.
 */
export const clientReadBuffer = Buffer.allocUnsafe(64 * 1024);

/** Whether `bytes` is a view of the shared client read buffer (and must be copied to be kept). */
function isSharedRead(bytes: Buffer): boolean {
  return bytes.buffer === clientReadBuffer.buffer;
}

export class ClientConnection implements UpstreamHandler, ClientEndpoint, BodySource {
  readonly socket: net.Socket;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  private readonly ctx: ProxyContext;
  private readonly ip: Buffer;
  /** Where the current request's head is parsed; null while no request is under way (see out-pool.ts). */
  private out: Int32Array | null = null;
  private readonly requestChunks = new Int32Array(CHUNK_STATE_SIZE);
  private readonly responseChunks = new Int32Array(CHUNK_STATE_SIZE);
  private readonly vars: VarLookup;
  private readonly balanceContext: BalanceContext;
  /** Received bytes not consumed yet (the next head, or body bytes held back). */
  private pending: Buffer | null = null;
  /** The request being answered; the next one is parsed only after it is done. */
  request: RequestState | null = null;
  private deadline = 0;
  private deadlineKind = Deadline.None;
  private readingPaused = false;
  /** The upstream socket is paused until the client drains. */
  private waitingClientDrain = false;
  /** Client reading is paused until the upstream socket drains. */
  private waitingUpstreamDrain = false;
  /** The client sent FIN. */
  private clientEnded = false;
  /** We sent FIN (or destroyed): nothing more is processed. */
  private ending = false;
  private processing = false;
  /** Writes to the client: to the socket's handle when nothing is queued (see direct-write.ts). */
  private readonly writes: DirectWrites;

  /** `readsShared`: the socket delivers reads through onRead from clientReadBuffer, not as 'data' events. */
  constructor(socket: net.Socket, ctx: ProxyContext, readsShared = false) {
    this.socket = socket;
    this.ctx = ctx;
    const remote = socket.remoteAddress ?? '';
    // IPv4 clients of a dual-stack listener appear as ::ffff:a.b.c.d; X-Real-IP and remote_addr want a.b.c.d.
    this.remoteAddress = remote.startsWith('::ffff:') && remote.includes('.') ? remote.slice(7) : remote;
    this.remotePort = socket.remotePort ?? 0;
    this.localAddress = socket.localAddress ?? '';
    this.localPort = socket.localPort ?? 0;
    this.ip = addressBytes(this.remoteAddress);
    this.vars = (name) => (this.request === null ? undefined : requestVar(this.request, name));
    this.balanceContext = { remoteAddr: this.remoteAddress, vars: this.vars };
    socket.setNoDelay(true);
    if (!readsShared) socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    // A write through the stream drains with 'drain', a direct one through DirectWrites.
    const drained = () => this.onDrain();
    socket.on('drain', drained);
    this.writes = new DirectWrites(socket, drained);
    socket.on('error', () => {}); // 'close' follows and does the cleanup
    socket.on('close', () => this.onClose());
    this.setDeadline(Deadline.Head, ctx.limits.headTimeoutMs);
  }

  // ---- client socket events ----

  /** net's onread callback for adopted sockets: `length` bytes at the start of clientReadBuffer. */
  onRead(length: number): boolean {
    this.onData(clientReadBuffer.subarray(0, length));
    // What is still pending outlives this call: take it out of the shared buffer.
    const pending = this.pending;
    if (pending !== null && isSharedRead(pending)) this.pending = Buffer.from(pending);
    return true;
  }

  private onData(chunk: Buffer): void {
    if (this.ending) return; // lingering after our FIN: drop
    const req = this.request;
    if (req !== null && req.responsePhase === ResponsePhase.Tunnel) {
      this.tunnelToUpstream(req, chunk);
      return;
    }
    // Zero copy when nothing is pending: the chunk itself is parsed and forwarded.
    this.pending = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    this.process();
  }

  private onEnd(): void {
    this.clientEnded = true;
    const req = this.request;
    if (this.ending) {
      this.socket.destroy();
      return;
    }
    if (req === null) {
      if (this.pending === null) this.endClient();
      else this.process(); // a last pipelined request may be complete
      return;
    }
    if (req.responsePhase === ResponsePhase.Tunnel) {
      req.conn?.socket.end();
      return;
    }
    req.clientKeepAlive = false;
    if (!req.bodyDone) this.abort(); // the body can never complete
  }

  private onDrain(): void {
    if (!this.waitingClientDrain) return;
    this.waitingClientDrain = false;
    const conn = this.request?.conn;
    if (conn != null) {
      conn.socket.resume();
      this.refreshUpstreamDeadline(this.request!);
    }
  }

  private onClose(): void {
    this.ending = true;
    const req = this.request;
    if (req !== null) {
      this.request = null;
      if (req.plugins !== null) this.pluginsDone(req.plugins);
      const conn = req.conn;
      req.conn = null;
      if (conn !== null) {
        this.endAttempt(req, true);
        conn.destroy();
      }
    }
    this.pending = null;
    this.deadlineKind = Deadline.None;
    this.ctx.connectionClosed(this);
  }

  // ---- reading and parsing ----

  private pauseReading(): void {
    if (this.readingPaused) return;
    this.readingPaused = true;
    this.socket.pause();
  }

  private resumeReading(): void {
    if (!this.readingPaused) return;
    this.readingPaused = false;
    this.socket.resume();
  }

  private setDeadline(kind: Deadline, ms: number): void {
    this.deadlineKind = kind;
    // Date.now() rather than the ticker's clock: a clock up to one tick old would make
    // short upstream timeouts fire early. Only the checking is coarse.
    this.deadline = Date.now() + ms;
  }

  /** Work through buffered bytes until blocked; leaves the socket reading only when more bytes are wanted. */
  private process(): void {
    // Re-entry (a request finished while the loop runs) is left to the running loop, which re-reads the state.
    if (this.processing) return;
    this.processing = true;
    try {
      this.processLoop();
    } finally {
      this.processing = false;
    }
  }

  private processLoop(): void {
    while (!this.ending) {
      const req = this.request;
      if (req !== null) {
        if (!req.bodyDone) {
          if (this.consumeBody(req)) continue;
          return;
        }
        // Body read, answer pending: hold later (pipelined) bytes until this one is done.
        if (this.pending !== null) this.pauseReading();
        else this.resumeReading();
        return;
      }
      if (this.pending === null) {
        if (this.clientEnded) this.endClient();
        else this.resumeReading();
        return;
      }
      if (!this.parseHead(this.pending)) return;
    }
  }

  private parseHead(buf: Buffer): boolean {
    const ctx = this.ctx;
    const out = (this.out ??= takeOut());
    const maxHead = ctx.limits.maxHeadBytes;
    const table = ctx.table;
    // One native call parses the head and matches the route table.
    const n = ctx.backend.parseRequest(buf, 0, buf.length, table.router, this.ip, out);
    if (n === 0) {
      if (buf.length >= maxHead) {
        this.failAndClose(PAL_ERR_HEAD_TOO_LARGE('431 Request Header Fields Too Large'));
        return false;
      }
      if (this.clientEnded) {
        this.endClient();
        return false;
      }
      if (this.deadlineKind !== Deadline.Head) this.setDeadline(Deadline.Head, ctx.limits.headTimeoutMs);
      this.resumeReading();
      return false;
    }
    if (n < 0) {
      this.failAndClose(parseError(n));
      return false;
    }
    if (n > maxHead) {
      this.failAndClose(PAL_ERR_HEAD_TOO_LARGE('431 Request Header Fields Too Large'));
      return false;
    }
    this.pending = n === buf.length ? null : buf.subarray(n);
    this.startRequest(buf, n, table);
    return true;
  }

  private startRequest(buf: Buffer, headEnd: number, table: RouteTable): void {
    const ctx = this.ctx;
    const out = this.out!;
    const flags = out[Out.Flags];
    // The request keeps its head for as long as it runs (upstream head, retries, vars): own a copy.
    const head = isSharedRead(buf) ? Buffer.from(buf.subarray(0, headEnd)) : buf;
    const req = new RequestState(head, 0, headEnd, out, this, out[Out.Method], out[Out.Version], flags, ctx.now);
    this.request = req;
    this.deadlineKind = Deadline.None;
    if ((flags & Flag.Chunked) !== 0) {
      req.bodyKind = BodyKind.Chunked;
      req.bodyDone = false;
      this.requestChunks.fill(0);
    } else if ((flags & Flag.ContentLength) !== 0) {
      const length = contentLength(out);
      if (length > 0) {
        req.bodyKind = BodyKind.Length;
        req.bodyRemaining = length;
        req.bodyDone = false;
      }
    }
    req.clientKeepAlive = (flags & Flag.KeepAlive) !== 0 && !this.clientEnded;

    const count = out[Out.RouteCount];
    for (let i = 0; i < count; i++) {
      const candidate = table.routes[out[Out.Routes + i]];
      if (candidate === undefined) continue;
      if (candidate.vars === null || candidate.vars(this.vars)) {
        req.route = candidate;
        break;
      }
    }
    const route = req.route;
    if (route === null) {
      const unmatched = table.unmatched;
      if (unmatched !== null && unmatched.chain !== null) {
        req.route = unmatched; // global rules run, then afterRequestPhases answers the 404
        this.runPlugins(req, unmatched.chain);
        return;
      }
      this.respondError(req, PAL_ERR_ROUTE_NOT_FOUND('404 Route Not Found'));
      return;
    }
    const maxBody = ctx.limits.maxBodyBytes;
    if (maxBody > 0 && req.bodyKind === BodyKind.Length && req.bodyRemaining > maxBody) {
      req.clientKeepAlive = false;
      this.respondError(req, PAL_ERR_BODY_TOO_LARGE('413 Request Entity Too Large'));
      return;
    }
    if (route.chain !== null) {
      this.runPlugins(req, route.chain);
      return;
    }
    this.proxyRequest(req, route, route.upstream);
  }

  /** After the plugins (if any): check the upstream and connect. */
  private proxyRequest(req: RequestState, route: CompiledRoute, upstream: CompiledUpstream | null): void {
    const flags = req.flags;
    if (upstream === null) {
      this.respondError(req, PAL_ERR_SERVICE_UNAVAILABLE('missing upstream configuration in Route or Service'));
      return;
    }
    if (upstream.balancer.nodes.length === 0) {
      this.respondError(req, PAL_ERR_BAD_GATEWAY('502 Bad Gateway'));
      return;
    }
    req.upstream = upstream;
    // Without enable_websocket the request goes upstream as a plain one, Upgrade stripped (APISIX).
    if ((flags & Flag.Upgrade) !== 0 && !route.enableWebsocket) req.flags = flags & ~Flag.Upgrade;
    if ((flags & Flag.ExpectContinue) !== 0 && !req.bodyDone && req.version === 1) this.socket.write(CONTINUE);
    this.connectUpstream(req);
  }

  /** Read body bytes from `pending`; forward them (or drop them). Returns true to keep processing. */
  private consumeBody(req: RequestState): boolean {
    const conn = req.conn;
    // A plugin's readBody(): the body is collected here before anything goes upstream.
    const reader = req.plugins !== null && req.plugins.bodyParts !== null ? req.plugins : null;
    if (!req.discardBody && reader === null && (conn === null || !conn.connected || this.waitingUpstreamDrain)) {
      this.pauseReading(); // hold the body until the upstream can take it (its connect/send deadline runs)
      return false;
    }
    const buf = this.pending;
    if (buf === null) {
      this.setDeadline(Deadline.ClientBody, this.ctx.limits.headTimeoutMs);
      this.resumeReading();
      return false;
    }
    let take: number;
    if (req.bodyKind === BodyKind.Length) {
      take = Math.min(req.bodyRemaining, buf.length);
      req.bodyRemaining -= take;
      req.bodyDone = req.bodyRemaining === 0;
    } else {
      take = this.ctx.backend.chunkedScan(buf, 0, buf.length, this.requestChunks);
      if (take < 0) {
        this.failAndClose(parseError(take));
        return false;
      }
      req.bodyDone = this.requestChunks[Chunk.Done] === 1;
    }
    req.bodyBytes += take;
    this.pending = take === buf.length ? null : buf.subarray(take);
    const maxBody = this.ctx.limits.maxBodyBytes;
    if (maxBody > 0 && req.bodyBytes > maxBody) {
      this.failAndClose(PAL_ERR_BODY_TOO_LARGE('413 Request Entity Too Large'));
      return false;
    }
    if (req.discardBody) {
      if (req.bodyBytes > DISCARD_LIMIT) {
        this.endClient();
        return false;
      }
    } else if (reader !== null) {
      if (take > 0) reader.bodyParts!.push(Buffer.from(buf.subarray(0, take)));
      // Raw bytes include chunk framing: the exact limit is checked on the decoded body.
      if (req.bodyBytes > 2 * reader.bodyLimit + 4096) {
        // What was read goes upstream ahead of the rest: the reader gives up, the request goes on.
        reader.bodyPrefix = Buffer.concat(reader.bodyParts!);
        reader.bodyFailed(new Error(`request body larger than ${reader.bodyLimit} bytes`));
        req.clientKeepAlive = false;
        this.pauseReading();
        return false;
      }
    } else if (take > 0) {
      req.bodyStreamed = true;
      const socket = conn!.socket;
      let slice = take === buf.length ? buf : buf.subarray(0, take);
      // A queued write keeps pointing at its bytes: never queue a view of the shared read buffer.
      if (isSharedRead(slice)) slice = Buffer.from(slice);
      let ok: boolean;
      if (req.headSent) {
        ok = socket.write(slice);
      } else {
        // Head and first body bytes in one writev; the head waited so a body that fails
        // validation (bad chunk) never lets anything reach the upstream.
        req.headSent = true;
        socket.cork();
        socket.write(req.upstreamHead!);
        const prefix = req.plugins === null ? null : req.plugins.bodyPrefix;
        if (prefix !== null) {
          req.plugins!.bodyPrefix = null;
          socket.write(prefix);
        }
        ok = socket.write(slice);
        socket.uncork();
      }
      if (!ok) {
        this.waitingUpstreamDrain = true;
        this.setDeadline(Deadline.Send, req.route!.sendTimeoutMs);
      }
    }
    if (req.bodyDone) {
      if (req.discardBody) {
        this.requestDone(req);
      } else if (reader !== null) {
        this.requestBodyRead(req, reader);
      } else if (req.responsePhase === ResponsePhase.Head && !this.waitingUpstreamDrain) {
        this.setDeadline(Deadline.Read, req.route!.readTimeoutMs);
      }
      return true;
    }
    if (take === 0) {
      this.resumeReading();
      return false;
    }
    return true;
  }

  // ---- upstream side ----

  private connectUpstream(req: RequestState): void {
    const upstream = req.upstream!;
    const node = upstream.balancer.pick(this.balanceContext, req.tried ?? undefined);
    if (node === undefined) {
      this.failUpstream(req, PAL_ERR_BAD_GATEWAY('502 Bad Gateway'));
      return;
    }
    req.node = node;
    const upgrade = (req.flags & Flag.Upgrade) !== 0;
    // Upgraded connections never go back to a pool, so they never come from one either.
    let conn = upgrade ? null : upstream.pool.acquire(node, this);
    req.reused = conn !== null;
    if (conn === null) conn = upstream.pool.connect(node, this);
    this.startAttempt(req, conn);
  }

  private startAttempt(req: RequestState, conn: UpstreamConnection): void {
    req.conn = conn;
    req.responseStarted = false;
    req.responsePhase = ResponsePhase.Head;
    req.responseHead = null;
    const balancer = req.upstream!.balancer;
    // Timed for least_conn/ewma and for the log phase's $upstream_response_time.
    if (balancer.end !== undefined || req.plugins !== null) req.attemptStartedAt = Date.now();
    balancer.begin?.(req.node!);
    if (conn.connected) this.sendHead(req, conn);
    else this.setDeadline(Deadline.Connect, req.route!.connectTimeoutMs);
  }

  private endAttempt(req: RequestState, failed: boolean): void {
    const balancer = req.upstream?.balancer;
    if (balancer?.end !== undefined && req.node !== null) {
      balancer.end(req.node, Date.now() - req.attemptStartedAt, failed);
    }
  }

  private sendHead(req: RequestState, conn: UpstreamConnection): void {
    const plugins = req.plugins;
    const upgrade = (req.flags & Flag.Upgrade) !== 0;
    req.upstreamHead =
      plugins === null
        ? buildUpstreamHead(req, req.upstream!, req.node!, upgrade)
        : buildUpstreamHead(req, req.upstream!, req.node!, upgrade, plugins.requestEdits());
    req.headSent = false;
    if (req.bodyDone) {
      req.headSent = true;
      // A body a plugin read whole, or the bytes read before a plugin's readBody() gave up.
      const body = plugins === null ? null : (plugins.body ?? plugins.bodyPrefix);
      if (body !== null && body !== undefined && body.length > 0) {
        // A body a plugin read: it leaves whole, with the head (kept for a retry, so bodyStreamed stays false).
        conn.socket.cork();
        conn.socket.write(req.upstreamHead);
        if (!conn.socket.write(body)) this.waitingUpstreamDrain = true;
        conn.socket.uncork();
      } else if (!conn.writes.send(req.upstreamHead)) this.waitingUpstreamDrain = true;
      this.setDeadline(Deadline.Read, req.route!.readTimeoutMs);
    } else {
      this.setDeadline(Deadline.ClientBody, this.ctx.limits.headTimeoutMs);
    }
  }

  onUpstreamConnect(conn: UpstreamConnection): void {
    const req = this.request;
    if (req === null || req.conn !== conn) return;
    this.sendHead(req, conn);
    this.process();
  }

  onUpstreamDrain(conn: UpstreamConnection): void {
    const req = this.request;
    if (req === null || req.conn !== conn || !this.waitingUpstreamDrain) return;
    this.waitingUpstreamDrain = false;
    if (req.responsePhase === ResponsePhase.Tunnel) {
      this.resumeReading();
      return;
    }
    if (req.bodyDone && req.responsePhase === ResponsePhase.Head)
      this.setDeadline(Deadline.Read, req.route!.readTimeoutMs);
    this.process();
  }

  onUpstreamData(conn: UpstreamConnection, chunk: Buffer): void {
    const req = this.request;
    if (req === null || req.conn !== conn) {
      conn.destroy();
      return;
    }
    switch (req.responsePhase) {
      case ResponsePhase.Head:
        if (req.responseHead === null) this.onResponseHead(req, conn, chunk, true);
        else this.onResponseHead(req, conn, Buffer.concat([req.responseHead, chunk]), false);
        return;
      case ResponsePhase.Body:
        this.deadline = Date.now() + req.route!.readTimeoutMs;
        this.forwardResponseBody(req, conn, chunk, 0, 0);
        return;
      case ResponsePhase.Tunnel:
        if (!this.socket.write(chunk)) {
          this.waitingClientDrain = true;
          conn.socket.pause();
        }
        this.keepIfQueued(conn);
        return;
      default:
        conn.destroy(); // bytes after a complete response
    }
  }

  /** `inReadBuffer`: buf is the connection's last read, with READ_HEADROOM free bytes in front of it. */
  private onResponseHead(req: RequestState, conn: UpstreamConnection, buf: Buffer, inReadBuffer: boolean): void {
    const ctx = this.ctx;
    const out = ctx.responseOut;
    req.responseStarted = true;
    let start = 0;
    let n: number;
    for (;;) {
      n = ctx.backend.parseResponse(buf, start, buf.length - start, req.method, out);
      if (n === 0) {
        if (buf.length - start > ctx.limits.maxHeadBytes) {
          this.upstreamBroken(req, conn, PAL_ERR_BAD_GATEWAY('502 Bad Gateway'));
          return;
        }
        // A copy: buf may be a view of the connection's read buffer, which the next read overwrites.
        req.responseHead = Buffer.from(buf.subarray(start));
        this.setDeadline(Deadline.Read, req.route!.readTimeoutMs);
        return;
      }
      if (n < 0) {
        this.upstreamBroken(req, conn, PAL_ERR_BAD_GATEWAY('502 Bad Gateway'));
        return;
      }
      const status = out[Out.Method];
      if (status >= 200 || status === 101) break;
      // An interim response (100, 103...): forward it to HTTP/1.1 clients and read on.
      if (req.version === 1) {
        this.socket.write(buf.subarray(start, start + n));
        this.keepIfQueued(conn);
      }
      req.clientResponseStarted = true;
      start += n;
      if (start === buf.length) {
        req.responseHead = null;
        return;
      }
    }
    req.responseHead = null;
    const headEnd = start + n;
    const status = out[Out.Method];
    const flags = out[Out.Flags];
    req.responseStatus = status;
    req.clientResponseStarted = true;
    req.upstream!.passive?.status(req.node!, status);

    if (status === 101) {
      if ((req.flags & Flag.Upgrade) === 0) {
        this.upstreamBroken(req, conn, PAL_ERR_BAD_GATEWAY('502 Bad Gateway'));
        return;
      }
      this.startTunnel(req, buf, start);
      return;
    }

    if ((flags & Flag.NoBody) !== 0) {
      req.responseKind = ResponseKind.NoBody;
    } else if ((flags & Flag.Chunked) !== 0) {
      req.responseKind = ResponseKind.Chunked;
      this.responseChunks.fill(0);
    } else if ((flags & Flag.ContentLength) !== 0) {
      req.responseKind = ResponseKind.Length;
      req.responseRemaining = contentLength(out);
    } else {
      req.responseKind = ResponseKind.ReadToClose;
    }
    const upgrade = (req.flags & Flag.Upgrade) !== 0;
    req.upstreamKeepAlive = (flags & Flag.KeepAlive) !== 0 && req.responseKind !== ResponseKind.ReadToClose && !upgrade;
    req.clientKeepAlive =
      req.clientKeepAlive && req.responseKind !== ResponseKind.ReadToClose && !ctx.closing && !upgrade;
    req.responsePhase = ResponsePhase.Body;
    this.setDeadline(Deadline.Read, req.route!.readTimeoutMs);

    const plugins = req.plugins;
    let headEdits: HeaderEdits | null = null;
    if (plugins !== null && plugins.editsResponse) {
      // Headers set before the response (X-RateLimit-*) and nothing else: copy the head with them applied.
      headEdits = plugins.plainResponseEdits();
      if (headEdits === null) {
        this.startEditedResponse(req, conn, plugins, buf, headEnd);
        return;
      }
    }

    // Pass-through: the upstream's head bytes go out unchanged when no hop-by-hop
    // header needs removing and HTTP/1.1 keep-alive already says what we mean.
    if (req.clientKeepAlive && req.version === 1) {
      if (headEdits === null) {
        if (responsePassesThrough(buf, out)) {
          this.forwardResponseBody(req, conn, buf, headEnd, start);
          return;
        }
      } else if (inReadBuffer && responsePassesThrough(buf, out, headEdits)) {
        // Only lines to add: into the headroom before the read, after the status line; nothing is copied.
        const room = conn.headroomBuffer;
        const statusEnd = READ_HEADROOM + statusLineEnd(buf, out, headEnd);
        const from = insertAfterStatusLine(room, READ_HEADROOM + start, statusEnd, headEdits);
        if (from >= 0) {
          this.forwardResponseBody(req, conn, room, READ_HEADROOM + headEnd, from, null, READ_HEADROOM + buf.length);
          return;
        }
      }
    }
    let head: Buffer;
    if (responseHeadBound(start, headEnd, headEdits) <= responseScratch.length) {
      const length = writeResponseHead(responseScratch, buf, start, headEnd, out, req.clientKeepAlive, headEdits);
      head = scratchHead = responseScratch.subarray(0, length);
    } else {
      head = rewriteResponseHead(buf, start, headEnd, out, req.clientKeepAlive, headEdits);
    }
    if (plugins !== null) plugins.bytesSent += head.length;
    this.forwardResponseBody(req, conn, buf, headEnd, headEnd, head);
  }

  /**
   * After writing bytes that may be a view of `conn`'s read buffer: if they did
   * not all leave at once, the queued write still points into that buffer, so
   * the connection's next read must go elsewhere. (Releasing `conn` to the pool
   * before this check is fine: nothing is read until this call stack returns.)
   */
  private keepIfQueued(conn: UpstreamConnection): void {
    if (this.writes.queued) conn.keepReadBuffer();
  }

  /**
   * Forward response bytes buf[writeFrom, end of body part) to the client, where
   * the body part starts at bodyStart (writeFrom < bodyStart when head bytes go
   * out in the same write). `head`, a rebuilt response head, goes out first.
   * The bytes read end at `bufEnd`, the end of `buf` unless buf is a whole read
   * buffer (a head grown into the headroom before the read).
   */
  private forwardResponseBody(
    req: RequestState,
    conn: UpstreamConnection,
    buf: Buffer,
    bodyStart: number,
    writeFrom: number,
    head: Buffer | null = null,
    bufEnd = buf.length,
  ): void {
    let end = bufEnd;
    let done = false;
    switch (req.responseKind) {
      case ResponseKind.NoBody:
        end = bodyStart;
        done = true;
        break;
      case ResponseKind.Length: {
        const take = Math.min(req.responseRemaining, bufEnd - bodyStart);
        req.responseRemaining -= take;
        end = bodyStart + take;
        done = req.responseRemaining === 0;
        break;
      }
      case ResponseKind.Chunked: {
        const scanned = this.ctx.backend.chunkedScan(buf, bodyStart, bufEnd - bodyStart, this.responseChunks);
        if (scanned < 0) {
          this.upstreamBroken(req, conn, PAL_ERR_BAD_GATEWAY('502 Bad Gateway'));
          return;
        }
        end = bodyStart + scanned;
        done = this.responseChunks[Chunk.Done] === 1;
        break;
      }
      default:
        break;
    }
    if (end < bufEnd) req.upstreamKeepAlive = false; // the upstream sent more than the response: do not trust it
    const plugins = req.plugins;
    if (plugins !== null && end > writeFrom) {
      if (plugins.responseParts !== null) {
        this.holdResponseBytes(req, conn, plugins, buf.subarray(writeFrom, end));
        writeFrom = end; // held, not written
      } else {
        plugins.bytesSent += end - writeFrom;
      }
    }
    if (head !== null || end > writeFrom) {
      const ok =
        head !== null
          ? this.writeHeadAndBody(head, buf, writeFrom, end)
          : this.writes.send(writeFrom === 0 && end === buf.length ? buf : buf.subarray(writeFrom, end));
      this.keepIfQueued(conn);
      if (!ok && !done) {
        this.waitingClientDrain = true;
        conn.socket.pause();
        this.setDeadline(Deadline.ClientWrite, this.ctx.limits.idleTimeoutMs);
      }
    }
    if (done) this.finishResponse(req, conn);
  }

  /**
   * A rebuilt response head and the body bytes after it, in one write when the
   * head sits in the scratch buffer and the body fits behind it (one write costs
   * less than a corked writev through the stream machinery); else a writev.
   */
  private writeHeadAndBody(head: Buffer, buf: Buffer, from: number, end: number): boolean {
    const length = end - from;
    const scratch = responseScratch;
    // Identity, not head.buffer: reading a view's ArrayBuffer costs more than the whole comparison should.
    const inScratch = head === scratchHead;
    scratchHead = null;
    let ok: boolean;
    if (inScratch && head.length + length <= scratch.length) {
      if (length > 0) copyBytes(scratch, head.length, buf, from, end);
      ok = this.writes.send(scratch.subarray(0, head.length + length));
    } else if (length <= 0) {
      ok = this.writes.send(head);
    } else {
      this.socket.cork();
      this.socket.write(head);
      ok = this.socket.write(buf.subarray(from, end));
      this.socket.uncork();
    }
    // A write still queued points into the scratch buffer: the next response needs another.
    if (inScratch && this.writes.queued) {
      responseScratch = Buffer.allocUnsafeSlow(RESPONSE_SCRATCH_SIZE);
    }
    return ok;
  }

  private finishResponse(req: RequestState, conn: UpstreamConnection): void {
    req.responsePhase = ResponsePhase.Done;
    req.conn = null;
    if (req.plugins !== null) req.upstreamDoneAt = Date.now();
    this.endAttempt(req, false);
    if (this.waitingClientDrain) {
      this.waitingClientDrain = false;
      conn.socket.resume();
    }
    const reusable = req.upstreamKeepAlive && req.bodyDone && !this.waitingUpstreamDrain;
    if (reusable) req.upstream!.pool.release(conn, this.ctx.now);
    else conn.destroy();
    // A body the upstream did not wait for leaves us unable to find the next request.
    if (!req.bodyDone) req.clientKeepAlive = false;
    const plugins = req.plugins;
    if (plugins !== null && plugins.responseParts !== null) {
      this.sendHeldResponse(req, plugins);
      return;
    }
    this.requestDone(req);
  }

  /** Both the body and the answer are complete: keep the connection for the next request or close it. */
  private requestDone(req: RequestState): void {
    // A second call for a request already done would hand the next request's out[] to the pool.
    if (this.request !== req || !req.bodyDone || req.responsePhase !== ResponsePhase.Done) return;
    this.request = null;
    if (req.plugins !== null) this.pluginsDone(req.plugins);
    // The parsed head goes back to the pool, or, while a log phase is to run, stays with its request.
    const out = this.out;
    this.out = null;
    if (out !== null) {
      // pluginsDone has just queued the log phase, which gives the array back after it ran.
      if (req.plugins !== null && req.plugins.chain.log.length > 0) req.plugins.heldOut = out;
      else returnOut(out);
    }
    this.waitingUpstreamDrain = false;
    if (!req.clientKeepAlive || this.ctx.closing) {
      this.endClient();
      return;
    }
    this.setDeadline(Deadline.Idle, this.ctx.limits.idleTimeoutMs);
    this.process();
  }

  onUpstreamClose(conn: UpstreamConnection, _error: Error | undefined): void {
    const req = this.request;
    if (req === null || req.conn !== conn) return;
    req.conn = null;
    this.endAttempt(req, true);
    switch (req.responsePhase) {
      case ResponsePhase.Tunnel:
        this.endClient();
        return;
      case ResponsePhase.Body:
        if (req.responseKind === ResponseKind.ReadToClose) {
          req.clientKeepAlive = false;
          req.responsePhase = ResponsePhase.Done;
          if (!req.bodyDone) {
            this.endClient();
            return;
          }
          if (req.plugins !== null && req.plugins.responseParts !== null) {
            this.sendHeldResponse(req, req.plugins);
            return;
          }
          this.requestDone(req);
        } else {
          this.socket.destroy(); // truncated response: the client must see the connection fail
        }
        return;
      case ResponsePhase.Head:
        break;
      default:
        return;
    }
    if (req.responseStarted) {
      req.upstream!.passive?.tcpFailure(req.node!);
      this.failUpstream(req, PAL_ERR_BAD_GATEWAY('502 Bad Gateway'));
      return;
    }
    if (!conn.connected) {
      req.upstream!.passive?.tcpFailure(req.node!);
      this.retryOrFail(req);
      return;
    }
    if (req.reused && !req.bodyStreamed) {
      // A pooled socket closed by the upstream just as we reused it: one fresh attempt on the same node.
      req.reused = false;
      this.waitingUpstreamDrain = false;
      this.startAttempt(req, req.upstream!.pool.connect(req.node!, this));
      return;
    }
    req.upstream!.passive?.tcpFailure(req.node!);
    this.failUpstream(req, PAL_ERR_BAD_GATEWAY('502 Bad Gateway'));
  }

  /** After a connect failure: the next node while retries and retry_timeout allow, else 502. */
  private retryOrFail(req: RequestState): void {
    const upstream = req.upstream!;
    const tried = req.tried ?? new Set();
    req.tried = tried;
    tried.add(req.node!);
    const timedOut = upstream.retryTimeoutMs > 0 && this.ctx.now - req.startedAt >= upstream.retryTimeoutMs;
    if (tried.size > upstream.retries || timedOut) {
      this.failUpstream(req, PAL_ERR_BAD_GATEWAY('502 Bad Gateway'));
      return;
    }
    this.waitingUpstreamDrain = false;
    const plugins = req.plugins;
    if (plugins !== null && plugins.chain.before_proxy.length > 0) {
      this.retryAfterBeforeProxy(req, plugins);
      return;
    }
    this.connectUpstream(req);
    this.process(); // a pooled connection is ready at once: send the held body
  }

  /** A retry on a route with before_proxy plugins: they run again first, and may end the request. */
  private retryAfterBeforeProxy(req: RequestState, plugins: RequestContext): void {
    const proceed = (exit: PluginExit | undefined): void => {
      if (exit !== undefined) {
        this.respondExit(req, plugins, exit);
        return;
      }
      this.connectUpstream(req);
    };
    let result: PluginExit | undefined | Promise<PluginExit | undefined>;
    try {
      result = runBeforeProxy(plugins);
    } catch (err) {
      this.pluginFailed(req, err);
      return;
    }
    if (!isPromise<PluginExit | undefined>(result)) {
      proceed(result);
      this.process();
      return;
    }
    this.setDeadline(Deadline.Plugins, req.route!.readTimeoutMs);
    result.then(
      (exit) => {
        if (!this.ownsRequest(req)) return;
        if (this.deadlineKind === Deadline.Plugins) this.deadlineKind = Deadline.None;
        proceed(exit);
        this.process();
      },
      (err: unknown) => {
        if (!this.ownsRequest(req)) return;
        this.pluginFailed(req, err);
        this.process();
      },
    );
  }

  /** The upstream sent something we cannot forward: drop it and answer (or close) the client. */
  private upstreamBroken(req: RequestState, conn: UpstreamConnection, err: PalisadeError): void {
    // A head we cannot use counts as a failed attempt (nginx's "invalid header"); a broken body does not.
    if (req.responsePhase === ResponsePhase.Head) req.upstream!.passive?.tcpFailure(req.node!);
    req.conn = null;
    this.endAttempt(req, true);
    conn.destroy();
    this.failUpstream(req, err);
  }

  /** Answer an upstream failure: an error response if nothing was sent yet, else a closed connection. */
  private failUpstream(req: RequestState, err: PalisadeError): void {
    const conn = req.conn;
    if (conn !== null) {
      req.conn = null;
      this.endAttempt(req, true);
      conn.destroy();
    }
    this.waitingUpstreamDrain = false;
    if (req.clientResponseStarted) {
      this.socket.destroy();
      return;
    }
    if (req.bodyStreamed && !req.bodyDone) req.clientKeepAlive = false;
    this.respondError(req, err);
  }

  // ---- plugins ----

  /** Run the route's request phases; proxy, answer an exit, or answer 500 when a plugin threw. */
  private runPlugins(req: RequestState, chain: PluginChain): void {
    const plugins = new RequestContext(req, chain, this.ctx, this); // sets req.plugins
    let result: PluginExit | undefined | Promise<PluginExit | undefined>;
    try {
      result = runRequestPhases(plugins);
    } catch (err) {
      this.pluginFailed(req, err);
      return;
    }
    if (!isPromise<PluginExit | undefined>(result)) {
      this.afterRequestPhases(req, plugins, result);
      return;
    }
    // Bounded like an upstream read: a plugin promise that never settles answers 504.
    this.setDeadline(Deadline.Plugins, req.route!.readTimeoutMs);
    result.then(
      (exit) => {
        if (!this.ownsRequest(req)) return;
        if (this.deadlineKind === Deadline.Plugins) this.deadlineKind = Deadline.None;
        this.afterRequestPhases(req, plugins, exit);
        this.process(); // body bytes held while the phases ran go upstream now (or are dropped after an exit)
      },
      (err: unknown) => {
        if (!this.ownsRequest(req)) return;
        this.pluginFailed(req, err);
        this.process();
      },
    );
  }

  /** Whether `req` is still this connection's request and nothing has answered it yet. */
  private ownsRequest(req: RequestState): boolean {
    return this.request === req && !this.ending && !req.clientResponseStarted;
  }

  private afterRequestPhases(req: RequestState, plugins: RequestContext, exit: PluginExit | undefined): void {
    if (exit !== undefined) {
      this.respondExit(req, plugins, exit);
      return;
    }
    const route = req.route!;
    if (route.unmatched === true) {
      // The 404 as an exit, so the global rules' response phases see it as they would in APISIX.
      const notFound = PAL_ERR_ROUTE_NOT_FOUND('404 Route Not Found');
      this.respondExit(req, plugins, { status: notFound.status, body: notFound.body(), headers: JSON_CONTENT });
      return;
    }
    let upstream = route.upstream;
    const override = plugins.upstreamOverride;
    if (override !== null) {
      upstream = this.ctx.resolveUpstream(override);
      if (upstream === null) {
        const id = typeof override === 'string' ? override : (override.id ?? '');
        this.respondError(req, PAL_ERR_SERVICE_UNAVAILABLE(`failed to find upstream by id: ${id}`));
        return;
      }
    }
    this.proxyRequest(req, route, upstream);
  }

  /** A plugin threw or rejected: log it, answer 500 if nothing was sent yet, else close. */
  private pluginFailed(req: RequestState, err: unknown): void {
    const plugins = req.plugins;
    log.error('plugin failed', {
      plugin: plugins?.current?.plugin.name,
      route: req.route?.id,
      message: err instanceof Error ? err.message : String(err),
    });
    if (this.request !== req || this.ending) return;
    if (req.clientResponseStarted) {
      this.socket.destroy();
      return;
    }
    if (plugins === null) {
      this.respondError(req, PAL_ERR_BAD_GATEWAY('502 Bad Gateway'));
      return;
    }
    // The response headers plugins set (and their filters) do not apply to a failure answer.
    plugins.exitStatus = 500;
    plugins.statusOverride = 0;
    const headers = new HeaderList();
    headers.add('Content-Type', 'application/json');
    plugins.responseHeaders = headers;
    this.writeWholeResponse(req, plugins, null, PLUGIN_FAILURE, true);
  }

  /** BodySource: a plugin called readBody(); collect the held body (consumeBody sees bodyParts). */
  readRequestBody(req: RequestState): void {
    if ((req.flags & Flag.ExpectContinue) !== 0 && req.version === 1) this.socket.write(CONTINUE);
    this.process();
  }

  /** The body a plugin asked for is in: decode chunked framing and hand it over. */
  private requestBodyRead(req: RequestState, plugins: RequestContext): void {
    const raw = Buffer.concat(plugins.bodyParts!);
    let body: Buffer;
    try {
      body = req.bodyKind === BodyKind.Chunked ? decodeChunked(raw) : raw;
    } catch (err) {
      req.clientKeepAlive = false;
      plugins.bodyFailed(err as Error);
      return;
    }
    plugins.bodyComplete(body);
    // A plugin that did not wait for its readBody(): the request went on to an upstream
    // whose head is still held for the first body bytes. It leaves now, with the body.
    const conn = req.conn;
    if (conn !== null && conn.connected && !req.headSent) this.sendHead(req, conn);
  }

  /** Answer a plugin's exit: its status, body and headers, with the response filters run over it. */
  private respondExit(req: RequestState, plugins: RequestContext, exit: PluginExit): void {
    plugins.exitStatus = exit.status;
    const body = exitBody(exit);
    const headers = new HeaderList();
    if (body !== undefined) headers.add('Content-Type', EXIT_CONTENT_TYPE);
    plugins.adoptResponseHeaders(headers);
    if (exit.headers !== undefined) {
      try {
        // Through the context, so exit headers get the same checks as set ones (a Location built from $uri may hold CR LF).
        for (const name in exit.headers) plugins.setResponseHeader(name, exit.headers[name]);
      } catch (err) {
        this.pluginFailed(req, err);
        return;
      }
    }
    req.clientResponseStarted = true; // from here the answer is ours: an upstream or a timeout cannot start another
    this.filterWholeResponse(req, plugins, null, body, true);
  }

  /**
   * The upstream's response head on a route whose plugins touch the response:
   * an editable header list, header_filter over it, then either the head goes
   * out and the body streams, or (with body_filter) the body is held whole.
   */
  private startEditedResponse(
    req: RequestState,
    conn: UpstreamConnection,
    plugins: RequestContext,
    buf: Buffer,
    headEnd: number,
  ): void {
    const out = this.ctx.responseOut;
    const reason =
      out[Out.TargetEnd] > out[Out.TargetStart]
        ? buf.toString('latin1', out[Out.TargetStart], out[Out.TargetEnd])
        : null;
    plugins.responseReason = reason;
    plugins.adoptResponseHeaders(responseHeaderList(buf, out));
    if (plugins.chain.body_filter.length > 0 && req.responseKind !== ResponseKind.NoBody) {
      if (req.responseKind === ResponseKind.Length && req.responseRemaining > MAX_FILTERED_BODY) {
        log.warn('response body too large for body_filter, sent unfiltered', { route: req.route?.id });
      } else {
        plugins.responseParts = [];
        // A chunked body is decoded as it comes, so its end needs no pass over all of it in one turn.
        if (req.responseKind === ResponseKind.Chunked) plugins.responseDecoder = new ChunkedDecoder();
        plugins.upstreamEncoding = plugins.responseHeaders!.get('content-encoding') ?? null;
      }
    }
    let filtered: void | Promise<void>;
    try {
      filtered = runHeaderFilters(plugins);
    } catch (err) {
      this.responsePluginFailed(req, conn, err);
      return;
    }
    if (!isPromise<void>(filtered)) {
      this.continueEditedResponse(req, conn, plugins, buf, headEnd);
      return;
    }
    // Hold what came after the head until the filters are done.
    const rest = Buffer.from(buf.subarray(headEnd));
    conn.socket.pause();
    this.setDeadline(Deadline.Plugins, req.route!.readTimeoutMs);
    filtered.then(
      () => {
        if (this.request !== req || req.conn !== conn) return;
        this.setDeadline(Deadline.Read, req.route!.readTimeoutMs);
        conn.socket.resume();
        this.continueEditedResponse(req, conn, plugins, rest, 0);
      },
      (err: unknown) => {
        if (this.request !== req || req.conn !== conn) return;
        this.responsePluginFailed(req, conn, err);
      },
    );
  }

  private continueEditedResponse(
    req: RequestState,
    conn: UpstreamConnection,
    plugins: RequestContext,
    buf: Buffer,
    bodyStart: number,
  ): void {
    if (plugins.responseParts !== null) {
      this.forwardResponseBody(req, conn, buf, bodyStart, bodyStart); // held until complete
      return;
    }
    const head = serializeResponseHead(
      plugins.status,
      plugins.status === req.responseStatus ? plugins.responseReason : null,
      plugins.responseHeaders!,
      -1,
      req.clientKeepAlive,
    );
    plugins.bytesSent += head.length;
    this.forwardResponseBody(req, conn, buf, bodyStart, bodyStart, head);
  }

  /** A response filter threw: 500 while nothing went out (the upstream connection is dropped). */
  private responsePluginFailed(req: RequestState, conn: UpstreamConnection, err: unknown): void {
    req.conn = null;
    this.endAttempt(req, false);
    conn.destroy();
    req.clientResponseStarted = false; // only the upstream's head arrived; the client has seen nothing
    req.upstreamKeepAlive = false;
    this.pluginFailed(req, err);
  }

  /** Response body bytes for body_filter; past MAX_FILTERED_BODY the response streams through unfiltered. */
  private holdResponseBytes(req: RequestState, conn: UpstreamConnection, plugins: RequestContext, bytes: Buffer): void {
    const parts = plugins.responseParts!;
    if (req.responseKind === ResponseKind.Length) {
      // One buffer for the whole body, known in length and bounded by MAX_FILTERED_BODY at the head:
      // a copy per read plus a concat left twice the body in short-lived garbage, and major GCs on
      // this thread stalled every other request. Unpooled, so gzip can transfer it to a pool thread.
      const first = parts.length === 0;
      if (first) parts.push(Buffer.allocUnsafeSlow(bytes.length + req.responseRemaining));
      const body = parts[0];
      // After the first bytes, reads land in the body itself (readInto): nothing to copy.
      if (bytes.buffer !== body.buffer) bytes.copy(body, plugins.responseBytes);
      plugins.responseBytes += bytes.length;
      // Once: the connection moves the target past each read itself until the body is full.
      if (first) conn.readInto(body.subarray(plugins.responseBytes));
      return;
    }
    parts.push(Buffer.from(bytes)); // a copy: bytes is a view of the upstream read buffer
    plugins.responseBytes += bytes.length;
    plugins.responseDecoder?.push(bytes);
    if (plugins.responseBytes <= MAX_FILTERED_BODY) return;
    plugins.responseDecoder = null;
    log.warn('response body too large for body_filter, sent unfiltered', {
      route: req.route?.id,
      limit: MAX_FILTERED_BODY,
    });
    plugins.responseParts = null;
    // The body goes out as the upstream sent it: a header_filter's encoding (gzip) would be a lie.
    plugins.responseHeaders!.set('Content-Encoding', plugins.upstreamEncoding);
    const head = serializeResponseHead(
      plugins.status,
      plugins.status === req.responseStatus ? plugins.responseReason : null,
      plugins.responseHeaders!,
      -1,
      req.clientKeepAlive,
    );
    plugins.bytesSent += head.length + plugins.responseBytes;
    this.socket.cork();
    this.socket.write(head);
    for (const part of parts) this.socket.write(part);
    this.socket.uncork();
  }

  /** The held response body is complete: de-chunk it, run body_filter, send it with a length. */
  private sendHeldResponse(req: RequestState, plugins: RequestContext): void {
    const held = plugins.responseParts!;
    const decoder = plugins.responseDecoder;
    plugins.responseParts = null;
    plugins.responseDecoder = null;
    let body: Buffer;
    if (decoder !== null) {
      try {
        body = decoder.finish();
      } catch {
        this.socket.destroy();
        return;
      }
    } else {
      body =
        held.length === 1 && held[0].length === plugins.responseBytes
          ? held[0]
          : Buffer.concat(held, plugins.responseBytes);
    }
    this.deadlineKind = Deadline.None;
    plugins.heldBody = ownsWholeBuffer(body) && body.length >= RELEASE_HELD_BYTES ? body : null;
    this.filterWholeBody(req, plugins, plugins.responseReason, body, false);
  }

  /**
   * A large body held for body_filter is garbage once its response is on its
   * way: its memory goes to a pool thread to be freed (OffloadPool.release), so
   * it never builds up in V8's external memory here and starts the full GCs that
   * stalled every other request. Only when the write is complete: bytes still
   * queued may be its own. A filter that moved the body to the pool (gzip) left
   * it detached, and there is nothing to do.
   */
  private releaseHeldBody(plugins: RequestContext): void {
    const held = plugins.heldBody;
    if (held === null) return;
    plugins.heldBody = null;
    if (!this.writes.queued) this.ctx.offload.release(held.buffer as ArrayBuffer);
  }

  /** header_filter, then body_filter, then send: for answers whose body is known whole (exits). */
  private filterWholeResponse(
    req: RequestState,
    plugins: RequestContext,
    reason: string | null,
    body: Buffer | undefined,
    isExit: boolean,
  ): void {
    this.wholeResponseStep(
      req,
      () => runHeaderFilters(plugins),
      () => this.filterWholeBody(req, plugins, reason, body, isExit),
    );
  }

  private filterWholeBody(
    req: RequestState,
    plugins: RequestContext,
    reason: string | null,
    body: Buffer | undefined,
    isExit: boolean,
  ): void {
    if (body === undefined || plugins.chain.body_filter.length === 0) {
      this.writeWholeResponse(req, plugins, reason, body, isExit);
      return;
    }
    this.wholeResponseStep(
      req,
      () => runBodyFilters(plugins, body),
      (filtered) => this.writeWholeResponse(req, plugins, reason, filtered, isExit),
    );
  }

  /**
   * One filter step over a response held whole: `next` with its result now, or
   * once its promise settles (under the Plugins deadline) if the request is still
   * ours; a throw or a rejection answers 500.
   */
  private wholeResponseStep<T>(req: RequestState, step: () => T | Promise<T>, next: (result: T) => void): void {
    let result: T | Promise<T>;
    try {
      result = step();
    } catch (err) {
      this.wholeResponseFailed(req, err);
      return;
    }
    if (!isPromise<T>(result)) {
      next(result);
      return;
    }
    this.setDeadline(Deadline.Plugins, req.route!.readTimeoutMs);
    result.then(
      (settled) => {
        if (this.request === req && !this.ending) next(settled);
      },
      (err: unknown) => this.wholeResponseFailed(req, err),
    );
  }

  /** A filter failed over a response held whole: nothing went out yet, so a 500 can still be sent. */
  private wholeResponseFailed(req: RequestState, err: unknown): void {
    if (this.request !== req || this.ending) return;
    req.clientResponseStarted = false;
    this.pluginFailed(req, err);
  }

  /**
   * Send a response held whole with a Content-Length (an exit, a filtered
   * body, a 500 for a failed plugin), then finish the request as respondError
   * does: keep the connection if the rest of the request body can be dropped.
   */
  private writeWholeResponse(
    req: RequestState,
    plugins: RequestContext,
    reason: string | null,
    body: Buffer | undefined,
    isExit: boolean,
  ): void {
    if (this.deadlineKind === Deadline.Plugins) this.deadlineKind = Deadline.None;
    if (isExit) {
      let keepAlive = req.clientKeepAlive && !this.ctx.closing && (req.flags & Flag.Upgrade) === 0;
      if (keepAlive && !req.bodyDone) {
        keepAlive = req.bodyKind === BodyKind.Chunked || req.bodyRemaining <= DISCARD_LIMIT;
        req.discardBody = true;
      }
      req.clientKeepAlive = keepAlive;
    }
    const headers = plugins.responseHeaders!;
    headers.remove('content-length');
    headers.remove('transfer-encoding');
    const status = plugins.status;
    const length = body === undefined ? 0 : body.length;
    const head = serializeResponseHead(
      status,
      status === req.responseStatus ? reason : null,
      headers,
      length,
      req.clientKeepAlive,
    );
    req.clientResponseStarted = true;
    req.responsePhase = ResponsePhase.Done;
    const withBody = body !== undefined && length > 0 && req.method !== Method.HEAD;
    plugins.bytesSent += head.length + (withBody ? length : 0);
    if (withBody) {
      this.socket.cork();
      this.socket.write(head);
      this.socket.write(body);
      this.socket.uncork();
    } else {
      this.socket.write(head);
    }
    this.releaseHeldBody(plugins);
    if (!req.clientKeepAlive) {
      this.endClient();
      return;
    }
    if (req.bodyDone) this.requestDone(req);
    // else: process() reads and drops the body, then requestDone runs
  }

  /** The request is over (answered, or its connection gone): the log phase, and no reader left waiting. */
  private pluginsDone(plugins: RequestContext): void {
    if (plugins.bodyParts !== null) plugins.bodyFailed(new Error('the client connection closed'));
    scheduleLogPhase(plugins);
  }

  // ---- WebSocket and other upgrades ----

  private startTunnel(req: RequestState, buf: Buffer, start: number): void {
    req.responsePhase = ResponsePhase.Tunnel;
    req.clientKeepAlive = false;
    req.bodyDone = true;
    this.deadlineKind = Deadline.None;
    this.socket.write(buf.subarray(start)); // the 101 head and whatever the upstream sent after it
    if (req.conn !== null) this.keepIfQueued(req.conn);
    const early = this.pending;
    this.pending = null;
    if (early !== null) this.tunnelToUpstream(req, early);
    this.resumeReading();
  }

  private tunnelToUpstream(req: RequestState, chunk: Buffer): void {
    const conn = req.conn;
    if (conn === null) return;
    if (isSharedRead(chunk)) chunk = Buffer.from(chunk);
    if (!conn.socket.write(chunk)) {
      this.waitingUpstreamDrain = true;
      this.pauseReading();
    }
  }

  // ---- answering and closing ----

  /** Answer `req` with a JSON error; keep the connection when its body can be skipped. */
  private respondError(req: RequestState, err: PalisadeError): void {
    let keepAlive = req.clientKeepAlive && !this.ctx.closing && (req.flags & Flag.Upgrade) === 0;
    if (keepAlive && !req.bodyDone) {
      keepAlive = req.bodyKind === BodyKind.Chunked || req.bodyRemaining <= DISCARD_LIMIT;
      req.discardBody = true;
    }
    req.clientKeepAlive = keepAlive;
    req.responsePhase = ResponsePhase.Done;
    req.clientResponseStarted = true;
    const answer = errorResponse(err, keepAlive, req.method !== Method.HEAD);
    if (req.plugins !== null) {
      // What the log phase reports.
      req.plugins.exitStatus = err.status;
      req.plugins.bytesSent += answer.length;
    }
    this.socket.write(answer);
    if (!keepAlive) {
      this.endClient();
      return;
    }
    if (req.bodyDone) this.requestDone(req);
    // else: process() reads and drops the body, then requestDone runs
  }

  /** Answer a client error that leaves the stream unusable, then close. */
  private failAndClose(err: PalisadeError): void {
    const req = this.request;
    if (req !== null) {
      const conn = req.conn;
      req.conn = null;
      if (conn !== null) {
        this.endAttempt(req, true);
        conn.destroy();
      }
      if (req.clientResponseStarted) {
        this.socket.destroy();
        return;
      }
    }
    this.socket.write(errorResponse(err, false, true));
    this.endClient();
  }

  /** Send FIN after what is queued, then read and drop until the client closes (or the linger time ends). */
  endClient(): void {
    if (this.ending) return;
    this.ending = true;
    this.pending = null;
    const req = this.request;
    if (req !== null && req.plugins !== null) this.pluginsDone(req.plugins);
    if (req !== null && req.conn !== null) {
      const conn = req.conn;
      req.conn = null;
      this.endAttempt(req, true);
      conn.destroy();
    }
    this.socket.end();
    this.setDeadline(Deadline.Linger, LINGER_MS);
    this.resumeReading();
  }

  /** Tear down both sides at once. */
  private abort(): void {
    const req = this.request;
    if (req !== null && req.conn !== null) {
      const conn = req.conn;
      req.conn = null;
      this.endAttempt(req, true);
      conn.destroy();
    }
    this.socket.destroy();
  }

  private refreshUpstreamDeadline(req: RequestState): void {
    if (req.responsePhase === ResponsePhase.Tunnel) this.deadlineKind = Deadline.None;
    else this.setDeadline(Deadline.Read, req.route!.readTimeoutMs);
  }

  /** Called by the DataPlane's ticker with the coarse clock. */
  tick(now: number): void {
    if (this.deadlineKind === Deadline.None || now < this.deadline) return;
    const kind = this.deadlineKind;
    this.deadlineKind = Deadline.None;
    const req = this.request;
    switch (kind) {
      case Deadline.Idle:
      case Deadline.Linger:
      case Deadline.ClientWrite:
        this.socket.destroy();
        return;
      case Deadline.Head:
        if (req === null) this.failAndClose(PAL_ERR_HEAD_TIMEOUT('408 Request Timeout'));
        return;
      case Deadline.ClientBody:
        if (req !== null && !req.clientResponseStarted) this.failAndClose(PAL_ERR_HEAD_TIMEOUT('408 Request Timeout'));
        else this.abort();
        return;
      case Deadline.Connect:
        if (req !== null && req.conn !== null) {
          const conn = req.conn;
          req.conn = null;
          req.upstream!.passive?.timeout(req.node!);
          this.endAttempt(req, true);
          conn.destroy();
          this.retryOrFail(req);
        }
        return;
      case Deadline.Plugins:
        if (req !== null) this.failUpstream(req, PAL_ERR_GATEWAY_TIMEOUT('504 Gateway Timeout'));
        return;
      case Deadline.Send:
      case Deadline.Read:
        if (req !== null) {
          // Only a wait for the head counts: once a status is in, it was reported.
          if (req.responsePhase === ResponsePhase.Head && req.conn !== null) req.upstream!.passive?.timeout(req.node!);
          this.failUpstream(req, PAL_ERR_GATEWAY_TIMEOUT('504 Gateway Timeout'));
        }
        return;
      default:
        return;
    }
  }

  /** Close now if nothing is in progress (graceful shutdown); otherwise close after the current answer. */
  closeIfIdle(): void {
    // Not at once: a request may be on its way on a connection that looks idle
    // (just accepted, or keep-alive between requests). Such a connection gets a
    // short grace; a request arriving in it is answered with `Connection: close`
    // (ctx.closing), and a silent one is closed when the grace ends.
    if (this.request === null && !this.ending) this.setDeadline(Deadline.Idle, DRAIN_IDLE_GRACE_MS);
  }

  destroy(): void {
    this.socket.destroy();
  }
}
