// Command-line parsing for `palisade`: one command, then options.

export type Command = 'start' | 'stop' | 'reload' | 'status' | 'version' | 'help';

export interface CliArgs {
  command: Command;
  configPath?: string;
  json: boolean;
  /** `stop`: seconds to wait for the gateway to exit. */
  timeoutSeconds?: number;
}

const COMMANDS: readonly Command[] = ['start', 'stop', 'reload', 'status', 'version', 'help'];

export const USAGE = `Usage: palisade <command> [options]

Commands:
  start      run the gateway in the foreground until SIGTERM/SIGINT
  stop       send SIGTERM to the running gateway and wait for it to exit
  reload     send SIGHUP: re-read the config and replace workers gracefully
  status     show whether the gateway runs, its addresses and config version
  version    print the version

Options:
  -c, --config FILE   configuration file (default conf/config.yaml, or PALISADE_CONFIG)
  --json              status: print the status as JSON
  --timeout SECONDS   stop: how long to wait for the exit (default: drain timeout + 10)
  -h, --help          show this help
  -v, --version       print the version
`;

export class UsageError extends Error {}

export function parseArgs(argv: readonly string[]): CliArgs {
  const args: CliArgs = { command: 'help', json: false };
  let command: Command | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = (): string => {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('-')) throw new UsageError(`${arg} needs a value`);
      i += 1;
      return next;
    };
    if (arg === '-h' || arg === '--help') command = 'help';
    else if (arg === '-v' || arg === '--version') command = 'version';
    else if (arg === '-c' || arg === '--config') args.configPath = value();
    else if (arg.startsWith('--config=')) args.configPath = arg.slice('--config='.length);
    else if (arg === '--json') args.json = true;
    else if (arg === '--timeout') {
      const seconds = Number(value());
      if (!Number.isFinite(seconds) || seconds <= 0) throw new UsageError('--timeout must be a positive number');
      args.timeoutSeconds = seconds;
    } else if (arg.startsWith('-')) throw new UsageError(`unknown option ${arg}`);
    else if (command === undefined && (COMMANDS as readonly string[]).includes(arg)) command = arg as Command;
    else if (command === undefined) throw new UsageError(`unknown command "${arg}"`);
    else throw new UsageError(`unexpected argument "${arg}"`);
  }
  args.command = command ?? 'help';
  return args;
}
