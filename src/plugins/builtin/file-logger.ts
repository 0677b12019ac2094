// file-logger: appends log entries, one JSON document per line, to a file.
// Entries go through the batch processor and each batch is one write. The file
// is opened in append mode once per path (shared by every route logging to it)
// and reopened when it was moved or removed (log rotation) or when
// reopenFileLogs() is called.

import { promises as fs } from 'node:fs';

import { compileExpr, type CompiledExpr } from '../../core/expr';
import { SharedBatchQueue, batchProcessorSchemaProperties, type BatchProcessorConf } from '../lib/batch-processor';
import {
  checkLogEntryConf,
  compileLogEntry,
  logBatchOptions,
  logBodyPhases,
  logEntrySchemaProperties,
  logMetadataSchema,
  type LogEntryBuilder,
  type LogEntryConf,
} from '../lib/log-entry';
import type { PluginModule } from '../types';

const NAME = 'file-logger';

export interface FileLoggerConf extends BatchProcessorConf, LogEntryConf {
  readonly path: string;
  /** A vars expression: only matching requests are logged. */
  readonly match?: readonly unknown[];
}

export interface CompiledFileLogger {
  readonly entries: LogEntryBuilder;
  readonly match: CompiledExpr | undefined;
  readonly batches: SharedBatchQueue<Record<string, unknown>>;
}

/** An open log file; writes to one path are serialised through `queue`. */
interface LogFile {
  handle: fs.FileHandle | undefined;
  inode: number;
  queue: Promise<void>;
}

const logFiles = new Map<string, LogFile>();

/** Close every open log file; the next batch reopens (and creates) it. For log rotation. */
export async function reopenFileLogs(): Promise<void> {
  const closing: Promise<void>[] = [];
  for (const file of logFiles.values()) {
    const handle = file.handle;
    file.handle = undefined;
    if (handle !== undefined) closing.push(handle.close().catch(() => undefined));
  }
  await Promise.all(closing);
}

async function openedFile(path: string, file: LogFile): Promise<fs.FileHandle> {
  if (file.handle !== undefined) {
    // Rotated away (renamed or removed): the path no longer names the open file.
    const current = await fs.stat(path).catch(() => undefined);
    if (current !== undefined && current.ino === file.inode) return file.handle;
    await file.handle.close().catch(() => undefined);
    file.handle = undefined;
  }
  const handle = await fs.open(path, 'a');
  file.handle = handle;
  file.inode = (await handle.stat()).ino;
  return handle;
}

/** Append lines to `path`, one write per batch, writes to a path in order. */
export function appendToLogFile(path: string, lines: string): Promise<void> {
  let file = logFiles.get(path);
  if (file === undefined) {
    file = { handle: undefined, inode: -1, queue: Promise.resolve() };
    logFiles.set(path, file);
  }
  const target = file;
  const writing = target.queue.then(async () => {
    const handle = await openedFile(path, target);
    await handle.appendFile(lines);
  });
  target.queue = writing.catch(() => undefined);
  return writing;
}

const fileLogger: PluginModule<CompiledFileLogger> = {
  name: NAME,
  version: '0.1',
  priority: 399,
  schema: {
    type: 'object',
    properties: {
      path: { type: 'string', minLength: 1 },
      match: { type: 'array', maxItems: 20 },
      ...logEntrySchemaProperties,
      ...batchProcessorSchemaProperties,
    },
    required: ['path'],
  },
  metadataSchema: logMetadataSchema,

  check(conf, kind) {
    if (kind !== 'route') return undefined;
    const fileConf = conf as FileLoggerConf;
    if (fileConf.match !== undefined) {
      try {
        compileExpr(fileConf.match);
      } catch (error) {
        return `failed to validate the 'match' expression: ${(error as Error).message}`;
      }
    }
    return checkLogEntryConf(fileConf);
  },

  compile(raw, env) {
    const conf = raw as FileLoggerConf;
    const send = (entries: readonly Record<string, unknown>[]) =>
      appendToLogFile(conf.path, entries.map((entry) => JSON.stringify(entry) + '\n').join(''));
    const entries = compileLogEntry(conf, env.metadata);
    return {
      entries,
      match: conf.match === undefined ? undefined : compileExpr(conf.match),
      batches: new SharedBatchQueue(NAME, conf, () => ({ send }), env.log, logBatchOptions(entries)),
    };
  },

  ...logBodyPhases<CompiledFileLogger>(NAME),

  log(compiled, ctx) {
    if (compiled.match !== undefined && !compiled.match((name) => ctx.var(name))) return;
    compiled.batches.push(compiled.entries.build(ctx, NAME));
  },
};

export default fileLogger;
