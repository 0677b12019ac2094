// A stand-in for the Prometheus server that scrapes the gateway: it fetches
// the metrics endpoint once per interval (never two at once) from a process
// of its own. Prometheus runs on another host in production, so what
// receiving ~2 MB of gzip a second costs is not the gateway host's; on a
// 2-core benchmark machine it would take a core from the proxy at the same
// priority. So the scraper runs under SCHED_IDLE by default (`idle: false`
// keeps it at normal priority, to see what that costs). What is left is the
// gateway host's part: the exporter's rendering and its sending.

import { fork } from 'node:child_process';
import { performance } from 'node:perf_hooks';

import { idleThisProcess } from '../../src/core/priority';
import { getCounted } from './net';

export interface ScraperOptions {
  url: string;
  headers: Record<string, string>;
  intervalMs: number;
  /** Run under SCHED_IDLE (default true). */
  idle?: boolean;
  /** The ETag of the last rendering scraped before: a scrape that gets another one caused a rendering. */
  lastEtag?: string;
  /** Scrapes starting in [from, to) seconds after the scraper started count as within the measured window. */
  windowSeconds: [number, number];
}

export interface ScrapeRun {
  /** Time (ms) of each scrape that answered 200. */
  ms: number[];
  /** Of those, the scrapes that got a new rendering (a new ETag), which they waited for. */
  renderMs: number[];
  /** Renderings made within the measured window. */
  rendersMeasured: number;
  /** Scrapes that failed or answered another status: a round full of them measured no scrape at all. */
  failed: number;
  bytes: number;
  lastEtag: string;
}

/** Start the scraper process; stop() ends it after the scrape in flight and resolves with what it saw. */
export function startScraper(options: ScraperOptions): { stop(): Promise<ScrapeRun> } {
  const child = fork(__filename, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const result = new Promise<ScrapeRun>((resolve, reject) => {
    child.once('message', (run: ScrapeRun) => resolve(run));
    child.once('exit', (code, signal) => reject(new Error(`scraper exited (code ${code}, signal ${signal})`)));
  });
  // Rejections are read by stop(); until then they must not count as unhandled.
  result.catch(() => undefined);
  child.send({ type: 'start', options });
  return {
    stop() {
      if (child.connected) child.send({ type: 'stop' });
      return result;
    },
  };
}

async function scrape(options: ScraperOptions, stopped: () => boolean): Promise<ScrapeRun> {
  const run: ScrapeRun = {
    ms: [],
    renderMs: [],
    rendersMeasured: 0,
    failed: 0,
    bytes: 0,
    lastEtag: options.lastEtag ?? '',
  };
  const started = performance.now();
  const [from, to] = options.windowSeconds;
  while (!stopped()) {
    const begin = performance.now();
    const answer = await getCounted(options.url, options.headers).catch(() => undefined);
    if (answer?.status === 200) {
      const took = performance.now() - begin;
      run.ms.push(took);
      run.bytes = answer.bytes;
      if (answer.etag !== run.lastEtag) {
        run.lastEtag = answer.etag;
        run.renderMs.push(took);
        const at = (begin - started) / 1000;
        if (at >= from && at < to) run.rendersMeasured++;
      }
    } else {
      run.failed++;
    }
    const wait = begin + options.intervalMs - performance.now();
    if (wait > 0 && !stopped()) await new Promise((resolve) => setTimeout(resolve, wait));
  }
  return run;
}

if (require.main === module) {
  let stop = false;
  process.on('message', (message: { type: 'start'; options: ScraperOptions } | { type: 'stop' }) => {
    if (message.type === 'stop') {
      stop = true;
      return;
    }
    if (message.options.idle !== false) idleThisProcess();
    scrape(message.options, () => stop).then(
      (run) => process.send?.(run, () => process.exit(0)),
      () => process.exit(1),
    );
  });
}
