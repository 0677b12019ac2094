// A fastify + @fastify/http-proxy reverse proxy in one process, as the
// benchmark's "usual Node stack" target. Usage: node fastify-proxy-server.js PORT UPSTREAM_URL
import fastify from 'fastify';
import httpProxy from '@fastify/http-proxy';

async function main(): Promise<void> {
  const [port, upstream] = process.argv.slice(2);
  if (!port || !upstream) throw new Error('usage: fastify-proxy-server PORT UPSTREAM_URL');
  const app = fastify({ logger: false });
  await app.register(httpProxy, { upstream });
  await app.listen({ host: '127.0.0.1', port: Number(port) });
  const shutdown = (): void => void app.close().then(() => process.exit(0));
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main().catch((err: unknown) => {
  process.stderr.write(`fastify proxy: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
