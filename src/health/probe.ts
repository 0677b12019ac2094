// One active check of one node: a TCP connect, or an HTTP(S) GET whose status
// line decides. Bounded by the check's timeout; whatever happens, the socket is
// destroyed and the promise settles once.

import * as net from 'node:net';
import * as tls from 'node:tls';
import type { BalancerNode } from '../dataplane/balancer';
import { StatusClass, type ActiveSettings } from './config';
import { Outcome } from './state';

/** What a probe found; 'ignored' (a status in neither list, or an aborted check) changes nothing. */
export type ProbeResult = Outcome | 'ignored';

/** A status line is short; more than this without one is not HTTP. */
const MAX_STATUS_LINE = 8192;
const STATUS_LINE = /^HTTP\/\d\.\d (\d{3})/;

function requestText(settings: ActiveSettings, node: BalancerNode, port: number): string {
  const host = settings.host ?? (node.host.includes(':') ? `[${node.host}]` : node.host);
  const defaultPort = settings.kind === 'https' ? 443 : 80;
  const hostHeader = port === defaultPort ? host : `${host}:${port}`;
  let text = `GET ${settings.httpPath} HTTP/1.0\r\nHost: ${hostHeader}\r\n`;
  for (const line of settings.requestHeaders) text += `${line}\r\n`;
  return text + 'Connection: close\r\n\r\n';
}

/**
 * Check `node` once. `signal` aborts the check (the checker is stopping); an
 * aborted check reports 'ignored'.
 */
export function probe(settings: ActiveSettings, node: BalancerNode, signal: AbortSignal): Promise<ProbeResult> {
  const port = settings.port ?? node.port;
  return new Promise<ProbeResult>((resolve) => {
    let socket: net.Socket;
    let settled = false;
    let received = '';

    const finish = (result: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(result);
    };
    const onAbort = (): void => finish('ignored');

    if (settings.kind === 'https') {
      const servername = settings.host ?? node.host;
      socket = tls.connect({
        host: node.host,
        port,
        rejectUnauthorized: settings.verifyCertificate,
        // SNI takes host names only.
        servername: net.isIP(servername) === 0 ? servername : undefined,
      });
      socket.once('secureConnect', () => socket.write(requestText(settings, node, port)));
    } else {
      socket = net.connect({ host: node.host, port });
      socket.once('connect', () => {
        if (settings.kind === 'tcp') finish(Outcome.Success);
        else socket.write(requestText(settings, node, port));
      });
    }
    const timer = setTimeout(() => finish(Outcome.Timeout), settings.timeoutMs);
    signal.addEventListener('abort', onAbort);
    if (signal.aborted) onAbort();

    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      received += chunk;
      const lineEnd = received.indexOf('\r\n');
      if (lineEnd < 0) {
        if (received.length > MAX_STATUS_LINE) finish(Outcome.TcpFailure);
        return;
      }
      const match = STATUS_LINE.exec(received.slice(0, lineEnd));
      if (match === null) {
        finish(Outcome.TcpFailure);
        return;
      }
      const status = Number(match[1]);
      const kind = status < settings.statuses.length ? settings.statuses[status] : StatusClass.Ignored;
      finish(
        kind === StatusClass.Success ? Outcome.Success : kind === StatusClass.Failure ? Outcome.HttpFailure : 'ignored',
      );
    });
    // Refused, reset, a TLS failure, or closed before a status line.
    socket.on('error', () => finish(Outcome.TcpFailure));
    socket.on('close', () => finish(Outcome.TcpFailure));
  });
}
