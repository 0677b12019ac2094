// bench:quick reads wrk's text summary; pin the parts it relies on.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseWrkOutput } from '../../bench/lib/wrk';

const sample = `Running 5s test @ http://127.0.0.1:8080/hello
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02ms  311.52us   9.87ms   91.30%
    Req/Sec    46.01k     1.52k   48.90k    84.00%
  Latency Distribution
     50%  980.00us
     75%    1.10ms
     90%    1.30ms
     99%    2.15ms
  228881 requests in 5.00s, 35.15MB read
  Non-2xx or 3xx responses: 12
  Socket errors: connect 0, read 3, write 0, timeout 1
Requests/sec:  45776.20
Transfer/sec:      7.03MB
`;

test('parses req/s, percentiles in mixed units, and errors', () => {
  assert.deepEqual(parseWrkOutput(sample), {
    requestsPerSecond: 45776.2,
    p50Ms: 0.98,
    p99Ms: 2.15,
    requests: 228881,
    non2xx: 12,
    socketErrors: 4,
  });
});

test('refuses output it cannot read', () => {
  assert.throws(() => parseWrkOutput('unable to connect to 127.0.0.1:1 Connection refused'), /cannot read wrk output/);
});
