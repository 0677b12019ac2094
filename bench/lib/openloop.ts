// An open-loop HTTP/1.1 load generator: a fixed offered rate over a fixed
// number of keep-alive connections, each request stamped with the time it
// was meant to start. Latency is measured from that intended time, so a slow
// response delays nothing but its own queue, and the wait counts
// (coordinated-omission free, the wrk2 model); an uncorrected histogram,
// from the actual write, is kept beside it. Values are integer µs in
// hdr-histogram-js histograms (3 significant digits). The generator runs in
// its own process (runOpenLoop forks this file), so it never shares an event
// loop with the server it measures.

import { fork } from 'node:child_process';
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import * as hdr from 'hdr-histogram-js';

import { idleThisProcess } from '../../src/core/priority';

export interface OpenLoopOptions {
  host: string;
  port: number;
  path: string;
  /** Extra request header lines, e.g. { 'X-API-KEY': '...' }. */
  headers?: Record<string, string>;
  /** Offered requests per second, spread evenly over time. */
  rate: number;
  connections: number;
  /** Measured seconds, after the warm-up. */
  seconds: number;
  /** Seconds of load at the same rate that are not recorded. */
  warmupSeconds: number;
  /** Several paths to cycle through instead of `path` (e.g. many routes). */
  paths?: string[];
  /**
   * false: sleep on timers between sends (about 1 ms granularity, little CPU) instead of polling with
   * setImmediate when the next send is under 2 ms away (µs precision, one core busy). Default true.
   */
  spin?: boolean;
  /**
   * Run the generator under SCHED_IDLE: for side load that stands in for clients on other hosts, whose CPU on
   * this machine should not be taken from what is measured. Default false.
   */
  idle?: boolean;
}

export interface LatencySummary {
  p50Us: number;
  p90Us: number;
  p99Us: number;
  p999Us: number;
  p9999Us: number;
  maxUs: number;
  meanUs: number;
  count: number;
}

export interface OpenLoopResult {
  offeredRate: number;
  /** Responses completed per second during the measured window. */
  achievedRate: number;
  /** From the intended start time (the figure to quote). */
  corrected: LatencySummary;
  /** From the actual write (what a closed-loop tool would report). */
  uncorrected: LatencySummary;
  /** How late the scheduler wrote a request whose connection was free: the generator's own error. */
  schedulerLag: LatencySummary;
  non2xx: number;
  socketErrors: number;
  /** Requests still unsent or unanswered when the measured window closed. */
  backlog: number;
  /** Base64 histograms, to merge across runs (hdr.decodeFromCompressedBase64). */
  correctedHistogram: string;
  uncorrectedHistogram: string;
}

function newHistogram(): hdr.Histogram {
  return hdr.build({
    bitBucketSize: 32,
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
  });
}

export function summarize(histogram: hdr.Histogram): LatencySummary {
  return {
    p50Us: histogram.getValueAtPercentile(50),
    p90Us: histogram.getValueAtPercentile(90),
    p99Us: histogram.getValueAtPercentile(99),
    p999Us: histogram.getValueAtPercentile(99.9),
    p9999Us: histogram.getValueAtPercentile(99.99),
    maxUs: histogram.maxValue,
    meanUs: Math.round(histogram.mean),
    count: histogram.totalCount,
  };
}

/** Merge base64 histograms (several runs or processes) into one summary; never average percentiles. */
export function mergeHistograms(encoded: string[]): LatencySummary {
  const total = newHistogram();
  for (const text of encoded) total.add(hdr.decodeFromCompressedBase64(text, 32, false));
  return summarize(total);
}

/** Run the generator in a child process and resolve with its result. */
export function runOpenLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  return new Promise((resolve, reject) => {
    const child = fork(__filename, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const limitMs = (options.warmupSeconds + options.seconds + 30) * 1000;
    const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    let settled = false;
    child.on('message', (message: { result?: OpenLoopResult; error?: string }) => {
      settled = true;
      if (message.result) resolve(message.result);
      else reject(new Error(`open-loop generator: ${message.error ?? 'no result'}`));
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (!settled) reject(new Error(`open-loop generator exited (code ${code}, signal ${signal}) without a result`));
    });
    child.send(options);
  });
}

// ---------------------------------------------------------------- generator

const CRLF_CRLF = Buffer.from('\r\n\r\n');

/** One keep-alive connection with a minimal HTTP/1.1 response reader (Content-Length or chunked). */
class Connection {
  readonly socket: net.Socket;
  busy = false;
  /** Intended and actual send times (performance.now() ms) of the request in flight. */
  intendedMs = 0;
  sentMs = 0;
  private buffer: Buffer = Buffer.alloc(0);
  private bodyRemaining = -1;
  private chunked = false;
  private status = 0;

  constructor(
    options: OpenLoopOptions,
    private readonly onResponse: (connection: Connection, status: number) => void,
    private readonly onError: (connection: Connection) => void,
  ) {
    this.socket = net.connect(options.port, options.host);
    this.socket.setNoDelay(true);
    this.socket.on('data', (chunk: Buffer) => this.read(chunk));
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => this.onError(this));
  }

  send(request: Buffer, intendedMs: number, nowMs: number): void {
    this.busy = true;
    this.intendedMs = intendedMs;
    this.sentMs = nowMs;
    this.socket.write(request);
  }

  private read(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    for (;;) {
      if (this.status === 0) {
        const end = this.buffer.indexOf(CRLF_CRLF);
        if (end < 0) return;
        const head = this.buffer.toString('latin1', 0, end);
        this.status = Number(head.slice(9, 12));
        const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        this.chunked = length === null && /\r\ntransfer-encoding:[^\r]*chunked/i.test(head);
        this.bodyRemaining = length ? Number(length[1]) : 0;
        this.buffer = this.buffer.subarray(end + 4);
      }
      if (this.chunked) {
        if (!this.readChunks()) return;
      } else {
        if (this.buffer.length < this.bodyRemaining) return;
        this.buffer = this.buffer.subarray(this.bodyRemaining);
      }
      const status = this.status;
      this.status = 0;
      this.busy = false;
      this.onResponse(this, status);
      if (this.buffer.length === 0) return;
    }
  }

  /** Consume chunks from the buffer; true once the terminating chunk and trailers are read. */
  private readChunks(): boolean {
    for (;;) {
      if (this.bodyRemaining > 0) {
        // bodyRemaining here counts the chunk data plus its trailing CRLF
        if (this.buffer.length < this.bodyRemaining) {
          this.bodyRemaining -= this.buffer.length;
          this.buffer = Buffer.alloc(0);
          return false;
        }
        this.buffer = this.buffer.subarray(this.bodyRemaining);
        this.bodyRemaining = 0;
      }
      const lineEnd = this.buffer.indexOf('\r\n');
      if (lineEnd < 0) return false;
      const size = parseInt(this.buffer.toString('latin1', 0, lineEnd), 16);
      if (size === 0) {
        const trailersEnd = this.buffer.indexOf('\r\n', lineEnd + 2);
        if (trailersEnd < 0) return false;
        // no trailers: "0\r\n\r\n"; trailers are not expected from the servers measured here
        this.buffer = this.buffer.subarray(trailersEnd + 2);
        return true;
      }
      this.buffer = this.buffer.subarray(lineEnd + 2);
      this.bodyRemaining = size + 2;
    }
  }
}

function buildRequests(options: OpenLoopOptions): Buffer[] {
  const extra = Object.entries(options.headers ?? {})
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  const paths = options.paths && options.paths.length > 0 ? options.paths : [options.path];
  return paths.map((p) =>
    Buffer.from(`GET ${p} HTTP/1.1\r\nHost: ${options.host}:${options.port}\r\n${extra}\r\n`, 'latin1'),
  );
}

function generate(options: OpenLoopOptions): Promise<OpenLoopResult> {
  return new Promise((resolve) => {
    const corrected = newHistogram();
    const uncorrected = newHistogram();
    const lag = newHistogram();
    const requests = buildRequests(options);
    const intervalMs = 1000 / options.rate;
    // Set once every connection is open, so connecting is not a burst of late requests.
    let startMs = 0;
    let measureFromMs = 0;
    let measureToMs = 0;
    let sent = 0;
    let next = 0; // index of the next request to schedule
    let completedInWindow = 0;
    let non2xx = 0;
    let socketErrors = 0;
    let finished = false;
    // Requests due but waiting for a free connection: their intended times, oldest first.
    const waiting: number[] = [];
    let waitingHead = 0;
    const idle: Connection[] = [];

    const onResponse = (connection: Connection, status: number): void => {
      const now = performance.now();
      if (connection.intendedMs >= measureFromMs && connection.intendedMs < measureToMs) {
        corrected.recordValue(Math.max(1, Math.round((now - connection.intendedMs) * 1000)));
        uncorrected.recordValue(Math.max(1, Math.round((now - connection.sentMs) * 1000)));
        completedInWindow++;
        if (status < 200 || status > 399) non2xx++;
      }
      dispatch(connection, now);
    };
    const onError = (connection: Connection): void => {
      if (finished) return;
      socketErrors++;
      const at = idle.indexOf(connection);
      if (at >= 0) idle.splice(at, 1);
      const replacement = new Connection(options, onResponse, onError);
      connections.push(replacement);
      replacement.socket.once('connect', () => dispatch(replacement, performance.now()));
    };
    /** Give a free connection the oldest waiting request, or park it. */
    const dispatch = (connection: Connection, now: number): void => {
      if (finished) return;
      if (waitingHead < waiting.length) {
        const intended = waiting[waitingHead++];
        if (waitingHead > 4096 && waitingHead * 2 > waiting.length) {
          waiting.splice(0, waitingHead);
          waitingHead = 0;
        }
        connection.send(requests[sent++ % requests.length], intended, now);
      } else {
        idle.push(connection);
      }
    };

    const tick = (): void => {
      if (finished) return;
      const now = performance.now();
      while (startMs + next * intervalMs <= now && startMs + next * intervalMs < measureToMs) {
        const intended = startMs + next * intervalMs;
        next++;
        const connection = idle.pop();
        if (connection) {
          if (intended >= measureFromMs) lag.recordValue(Math.max(1, Math.round((now - intended) * 1000)));
          connection.send(requests[sent++ % requests.length], intended, now);
        } else {
          waiting.push(intended);
        }
      }
      if (now >= measureToMs) {
        // Give in-flight requests of the window a moment, then stop: anything later is backlog.
        setTimeout(finish, Math.max(1000, options.seconds * 100));
        return;
      }
      const untilNextMs = startMs + next * intervalMs - performance.now();
      // Timers only have 1 ms resolution: sleep when the next request is far, otherwise
      // poll with setImmediate (which still serves socket I/O between polls).
      if (options.spin === false) setTimeout(tick, Math.max(0, untilNextMs));
      else if (untilNextMs > 2) setTimeout(tick, untilNextMs - 1.5);
      else setImmediate(tick);
    };

    const finish = (): void => {
      finished = true;
      let inFlight = 0;
      for (const connection of connections) {
        if (connection.busy && connection.intendedMs < measureToMs && connection.intendedMs >= measureFromMs)
          inFlight++;
        connection.socket.destroy();
      }
      const unsent = waiting.slice(waitingHead).filter((t) => t >= measureFromMs).length;
      resolve({
        offeredRate: options.rate,
        achievedRate: completedInWindow / options.seconds,
        corrected: summarize(corrected),
        uncorrected: summarize(uncorrected),
        schedulerLag: summarize(lag),
        non2xx,
        socketErrors,
        backlog: unsent + inFlight,
        correctedHistogram: hdr.encodeIntoCompressedBase64(corrected),
        uncorrectedHistogram: hdr.encodeIntoCompressedBase64(uncorrected),
      });
    };

    const connections: Connection[] = [];
    let connected = 0;
    for (let i = 0; i < options.connections; i++) {
      const connection = new Connection(options, onResponse, onError);
      connections.push(connection);
      connection.socket.once('connect', () => {
        idle.push(connection);
        if (++connected < options.connections) return;
        startMs = performance.now() + 10;
        measureFromMs = startMs + options.warmupSeconds * 1000;
        measureToMs = measureFromMs + options.seconds * 1000;
        setTimeout(tick, 10);
      });
    }
  });
}

if (require.main === module) {
  process.once('message', (options: OpenLoopOptions) => {
    if (options.idle === true) idleThisProcess();
    generate(options).then(
      (result) => process.send?.({ result }, () => process.exit(0)),
      (err: unknown) => process.send?.({ error: String(err) }, () => process.exit(1)),
    );
  });
}
