// nginx as the upstream (`return 200`) and as the reference proxy
// (`proxy_pass` with upstream keep-alive), each one worker, each in its own
// prefix directory so pid, logs and temp files stay in the run's temp dir.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { commandLine, startChild, type Child } from './children';
import { waitForHttp } from './net';

const NGINX = fs.existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';

function commonHead(prefix: string): string {
  return `
user root;
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path ${prefix}/client_body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
`;
}

function startNginx(name: string, prefix: string, conf: string, idle = false): Child {
  fs.mkdirSync(prefix, { recursive: true });
  const file = path.join(prefix, 'nginx.conf');
  fs.writeFileSync(file, conf);
  // `daemon off`: nginx stays our child, so the run can always kill it.
  const args = ['-p', prefix, '-c', file, '-e', path.join(prefix, 'error.log'), '-g', 'daemon off;'];
  return startChild(name, ...commandLine(NGINX, args, idle));
}

/**
 * `name`: the prefix directory (and process name), so a second upstream can run beside the first.
 * `idle`: under SCHED_IDLE, for an upstream of side load (see commandLine).
 */
export async function startNginxUpstream(
  dir: string,
  port: number,
  name = 'nginx-upstream',
  idle = false,
): Promise<Child> {
  const prefix = path.join(dir, name);
  fs.mkdirSync(prefix, { recursive: true });
  // /bytes-1m: a compressible 1 MiB body (repeated JSON-like text), for gzip benchmarks.
  const line = '{"id":12345,"name":"palisade","tags":["a","b","c"],"ok":true}\n';
  fs.writeFileSync(path.join(prefix, 'bytes-1m'), line.repeat(Math.ceil(1_048_576 / line.length)).slice(0, 1_048_576));
  const conf = `${commonHead(prefix)}
  server {
    listen 127.0.0.1:${port} reuseport backlog=4096;
    location / { return 200 "hello world\\n"; }
    location = /bytes-1m { default_type application/json; alias ${prefix}/bytes-1m; }
  }
}
`;
  const child = startNginx(name.replace('-', ' '), prefix, conf, idle);
  await waitForHttp(`http://127.0.0.1:${port}/hello`, 10_000, 200);
  return child;
}

export async function startNginxProxy(dir: string, port: number, upstreamPort: number): Promise<Child> {
  const prefix = path.join(dir, 'nginx-proxy');
  const conf = `${commonHead(prefix)}
  upstream backend {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
  const child = startNginx('nginx proxy', prefix, conf);
  await waitForHttp(`http://127.0.0.1:${port}/hello`, 10_000, 200);
  return child;
}
