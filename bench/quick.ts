// `npm run bench:quick`: Palisade against nginx proxy_pass and
// fastify + @fastify/http-proxy, one worker each, all in front of the same
// nginx upstream, measured with wrk in interleaved rounds (A B C A B C ...).
// Only ratios from one run mean anything: everything shares the machine.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { killAllChildrenNow, stopAllChildren } from './lib/children';
import { startFastifyProxy } from './lib/fastify-proxy';
import { freePort } from './lib/net';
import { startNginxProxy, startNginxUpstream } from './lib/nginx';
import { startPalisade } from './lib/palisade';
import { runWrk, type WrkResult } from './lib/wrk';
import { fmt, machineInfo, median, writeReport } from './lib/report';
import { positiveInt } from './lib/settings';

const ROOT = path.resolve(__dirname, '..', '..');
// BENCH_ROUNDS / BENCH_SECONDS override these; on a shared machine more, shorter rounds give a steadier median.
const ROUNDS = positiveInt(process.env.BENCH_ROUNDS, 5);
const ROUND_SECONDS = positiveInt(process.env.BENCH_SECONDS, 4);
const WARMUP_SECONDS = 2;

const CONNECTIONS = 50;

interface Target {
  name: string;
  url: string;
  rounds: WrkResult[];
}

function ensurePackages(): void {
  execFileSync('bash', [path.join(ROOT, 'scripts', 'ensure-packages.sh'), 'nginx-light', 'wrk'], { stdio: 'inherit' });
}

async function main(): Promise<void> {
  ensurePackages();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-bench-'));
  process.on('exit', () => {
    killAllChildrenNow();
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));

  try {
    const [upstreamPort, nginxPort, fastifyPort, palisadePort] = await Promise.all([
      freePort(),
      freePort(),
      freePort(),
      freePort(),
    ]);
    console.log('bench:quick: starting nginx upstream, nginx proxy, fastify proxy and palisade ...');
    await startNginxUpstream(tmp, upstreamPort);
    await startNginxProxy(tmp, nginxPort, upstreamPort);
    await startFastifyProxy(fastifyPort, upstreamPort);
    const palisade = await startPalisade(tmp, palisadePort, upstreamPort);

    const targets: Target[] = [
      { name: 'nginx proxy_pass', url: `http://127.0.0.1:${nginxPort}/hello`, rounds: [] },
      { name: 'fastify + @fastify/http-proxy', url: `http://127.0.0.1:${fastifyPort}/hello`, rounds: [] },
      { name: `palisade (${palisade.backend})`, url: `http://127.0.0.1:${palisadePort}/hello`, rounds: [] },
    ];

    const load = { threads: 1, connections: CONNECTIONS };
    console.log(`bench:quick: warm-up ${WARMUP_SECONDS}s per target`);
    for (const target of targets) await runWrk(target.url, { ...load, seconds: WARMUP_SECONDS });

    for (let round = 1; round <= ROUNDS; round++) {
      for (const target of targets) {
        const result = await runWrk(target.url, { ...load, seconds: ROUND_SECONDS });
        target.rounds.push(result);
        const errors = result.non2xx + result.socketErrors;
        console.log(
          `  round ${round} ${target.name.padEnd(30)} ${fmt(result.requestsPerSecond).padStart(8)} req/s` +
            `  p99 ${fmt(result.p99Ms, 2)} ms${errors > 0 ? `  (${errors} errors)` : ''}`,
        );
      }
    }

    const summary = targets.map((target) => ({
      name: target.name,
      medianRequestsPerSecond: median(target.rounds.map((r) => r.requestsPerSecond)),
      medianP99Ms: median(target.rounds.map((r) => r.p99Ms)),
      errors: target.rounds.reduce((sum, r) => sum + r.non2xx + r.socketErrors, 0),
    }));
    const [nginx, fastifyTarget, palisadeTarget] = summary;
    // Each round runs the targets back to back, so a ratio within a round compares
    // them under the same background load; the median of those is the headline.
    const perRound = (a: Target, b: Target): number =>
      median(a.rounds.map((r, i) => r.requestsPerSecond / b.rounds[i].requestsPerSecond));
    const ratios = {
      palisadeOverNginx: perRound(targets[2], targets[0]),
      palisadeOverFastify: perRound(targets[2], targets[1]),
      ofMedians: {
        palisadeOverNginx: palisadeTarget.medianRequestsPerSecond / nginx.medianRequestsPerSecond,
        palisadeOverFastify: palisadeTarget.medianRequestsPerSecond / fastifyTarget.medianRequestsPerSecond,
      },
    };

    console.log('');
    console.log(`wrk -t1 -c${CONNECTIONS} -d${ROUND_SECONDS}s, median of ${ROUNDS} interleaved rounds`);
    console.log('p99 is from a closed-loop generator: indicative only.');
    console.log('');
    console.log('| target | req/s | vs nginx | p99 (closed-loop, indicative) | errors |');
    console.log('| --- | ---: | ---: | ---: | ---: |');
    for (const row of summary) {
      const vsNginx = row.medianRequestsPerSecond / nginx.medianRequestsPerSecond;
      console.log(
        `| ${row.name} | ${fmt(row.medianRequestsPerSecond)} | ${fmt(vsNginx, 2)} | ${fmt(row.medianP99Ms, 2)} ms | ${row.errors} |`,
      );
    }
    console.log('');
    console.log('median of per-round ratios (each round runs the targets back to back):');
    console.log(`palisade / nginx:   ${fmt(ratios.palisadeOverNginx, 2)}`);
    console.log(`palisade / fastify: ${fmt(ratios.palisadeOverFastify, 2)}`);

    const report = {
      kind: 'bench:quick',
      date: new Date().toISOString(),
      machine: machineInfo(),
      load: { tool: 'wrk', threads: 1, connections: CONNECTIONS, seconds: ROUND_SECONDS, rounds: ROUNDS },
      upstream: 'nginx 1 worker, return 200 "hello world\\n"',
      targets: targets.map((t, i) => ({ ...summary[i], url: t.url, rounds: t.rounds })),
      ratios,
    };
    console.log(`\nreport: ${writeReport('quick', report)}`);
  } finally {
    await stopAllChildren();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`bench:quick failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
