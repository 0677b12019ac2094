// A small leveled logger writing one line per event to stderr. Levels below
// the configured one cost a comparison and nothing else.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

let threshold = rank[(process.env.PALISADE_LOG_LEVEL as LogLevel) ?? 'info'] ?? rank.info;

export function setLogLevel(level: LogLevel): void {
  threshold = rank[level];
}

function write(level: LogLevel, scope: string, message: string, fields?: Record<string, unknown>): void {
  if (rank[level] < threshold) return;
  const extra = fields ? ' ' + JSON.stringify(fields) : '';
  process.stderr.write(`${new Date().toISOString()} [${level}] ${scope}: ${message}${extra}\n`);
}

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export function logger(scope: string): Logger {
  return {
    debug: (m, f) => write('debug', scope, m, f),
    info: (m, f) => write('info', scope, m, f),
    warn: (m, f) => write('warn', scope, m, f),
    error: (m, f) => write('error', scope, m, f),
  };
}
