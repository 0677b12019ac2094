// Loopback helpers: free ports and waiting for a server to answer.

import * as http from 'node:http';
import * as net from 'node:net';

/** A port that was free a moment ago on 127.0.0.1 (the kernel picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface HttpResult {
  status: number;
  body: string;
}

export function httpRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      { method: options.method ?? 'GET', headers: options.headers, agent: false, timeout: options.timeoutMs ?? 5000 },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
        response.on('error', reject);
      },
    );
    request.on('timeout', () => request.destroy(new Error(`timeout: ${url}`)));
    request.on('error', reject);
    request.end(options.body);
  });
}

/** A GET whose body is counted, not kept (large bodies: metrics, 1 MiB files): status, encoding, ETag, bytes. */
export function getCounted(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; encoding: string; etag: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { headers, agent: false, timeout: 10_000 }, (response) => {
      let bytes = 0;
      response.on('data', (chunk: Buffer) => (bytes += chunk.length));
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          encoding: String(response.headers['content-encoding'] ?? ''),
          etag: String(response.headers.etag ?? ''),
          bytes,
        }),
      );
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`timeout: ${url}`)));
    request.on('error', reject);
  });
}

/** Poll `url` until it answers with `status` (any status when omitted), or throw after `timeoutMs`. */
export async function waitForHttp(url: string, timeoutMs: number, status?: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    try {
      const result = await httpRequest(url, { timeoutMs: 1000 });
      if (status === undefined || result.status === status) return;
      last = `status ${result.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${url} did not become ready within ${timeoutMs} ms (${last})`);
}
