import * as path from 'node:path';
import { startChild, type Child } from './children';
import { waitForHttp } from './net';

export async function startFastifyProxy(port: number, upstreamPort: number): Promise<Child> {
  const script = path.join(__dirname, 'fastify-proxy-server.js');
  const child = startChild('fastify proxy', process.execPath, [
    script,
    String(port),
    `http://127.0.0.1:${upstreamPort}`,
  ]);
  await waitForHttp(`http://127.0.0.1:${port}/hello`, 15_000, 200).catch((err: Error) => {
    throw new Error(`${err.message}\n${child.output()}`);
  });
  return child;
}
