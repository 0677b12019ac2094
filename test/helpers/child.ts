// Run a script in a child Node process that prints one JSON line when ready,
// and measure it from outside (RSS from /proc). Always stop it in `finally`.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface ChildHandle<T> {
  readonly child: ChildProcess;
  /** The JSON the child printed when it was ready. */
  readonly ready: T;
  /** Resident set size in bytes (Linux /proc). */
  rss(): number;
  stop(): Promise<void>;
}

export async function startChild<T>(
  script: string,
  env: Record<string, string>,
  timeoutMs = 10000,
  nodeArgs: readonly string[] = [],
): Promise<ChildHandle<T>> {
  const child = spawn(process.execPath, [...nodeArgs, script], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const ready = await new Promise<T>((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child did not get ready in ${timeoutMs} ms`));
    }, timeoutMs);
    child.stdout!.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const newline = text.indexOf('\n');
      if (newline < 0) return;
      clearTimeout(timer);
      try {
        resolve(JSON.parse(text.slice(0, newline)) as T);
      } catch (err) {
        reject(err as Error);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`child exited with ${code} before it was ready`));
    });
  });
  return {
    child,
    ready,
    rss() {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const match = /VmRSS:\s+(\d+) kB/.exec(status);
      return match ? Number(match[1]) * 1024 : 0;
    },
    stop() {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill('SIGTERM');
      });
    },
  };
}
