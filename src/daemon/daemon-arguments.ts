/**
 * The command line of `livebackup daemon`, qemu-storage-daemon 7.2 style:
 *
 *   --blockdev OPTS      (keyval with dotted keys, or JSON)
 *   --chardev socket,id=ID,path=PATH|host=H,port=P,server=on[,wait=off]
 *   --monitor [chardev=]ID[,mode=control][,pretty=on|off]
 *   --qmp unix:PATH | tcp:HOST:PORT        (livebackup shorthand)
 *   --nbd-server addr.type=unix,addr.path=P | addr.type=inet,addr.host=H,addr.port=N [,max-connections=N]
 *   --export [type=]nbd,id=ID,node-name=N[,name=E][,writable=on]
 *   --pidfile PATH   --daemonize   -h/--help   -V/--version
 *
 * Options are kept in command-line order (qsd processes them in order;
 * run-daemon.ts starts the monitors last) and each argument is checked
 * against its QAPI type here, so a typo is reported before anything is
 * opened. `--opt=value` works as `--opt value`.
 */
import { LivebackupError } from '../errors.js';
import { parseOptionArgument } from '../qmp/command-line-option.js';
import { bool, enumType, str, struct } from '../qmp/schema.js';
import { BlockdevOptions } from '../commands/block-core-schema.js';
import { BlockExportOptions, NbdServerOptions, type BlockExportArgs, type NbdServerArgs } from '../commands/export-commands.js';

/** Where a QMP monitor listens. */
export type MonitorAddress = { readonly type: 'unix'; readonly path: string } | { readonly type: 'inet'; readonly host: string; readonly port: number };

/** Where a startup step came from: the option (`--monitor`, `--qmp`, ...) and its argument text. */
interface StepOrigin {
  readonly option: string;
  readonly text: string;
}

/** One option that does something at startup, in command-line order. */
export type StartupStep = StepOrigin &
  (
    | { readonly kind: 'blockdev'; readonly options: Record<string, unknown> }
    | { readonly kind: 'monitor'; readonly address: MonitorAddress }
    | { readonly kind: 'nbd-server'; readonly options: NbdServerArgs }
    | { readonly kind: 'export'; readonly options: BlockExportArgs }
  );

export interface DaemonArguments {
  readonly steps: readonly StartupStep[];
  readonly pidfile?: string;
  readonly daemonize: boolean;
  /** --no-backing-from-image: images may not open backing files they name themselves. */
  readonly noBackingFromImage: boolean;
  readonly help: boolean;
  readonly version: boolean;
}

/** An option argument that failed to parse; `option` and `text` say which one. */
export class DaemonArgumentError extends LivebackupError {
  constructor(readonly option: string, readonly text: string | undefined, message: string) {
    super('INVALID_ARGUMENT', text === undefined ? `${option}: ${message}` : `${option} ${text}: ${message}`);
    this.name = 'DaemonArgumentError';
  }
}

const ChardevSocketOptions = struct('ChardevSocketOptions', {
  backend: enumType('ChardevBackendKind', ['socket']),
  id: str,
  '*path': str,
  '*host': str,
  '*port': str,
  '*server': bool,
  '*wait': bool,
  '*nodelay': bool,
  '*telnet': bool,
  '*abstract': bool,
  '*tight': bool,
});

const MonitorOptions = struct('MonitorOptions', {
  '*id': str,
  '*mode': enumType('MonitorMode', ['readline', 'control']),
  chardev: str,
  '*pretty': bool,
});

const OPTIONS_WITH_VALUE = new Set(['--blockdev', '--chardev', '--monitor', '--qmp', '--nbd-server', '--export', '--pidfile', '--object', '-T', '--trace']);
const FLAGS = new Set(['--daemonize', '--no-backing-from-image', '-h', '--help', '-V', '--version']);

function parsePort(text: string, option: string, whole: string): number {
  if (!/^[0-9]+$/.test(text) || Number(text) > 65535) throw new DaemonArgumentError(option, whole, `invalid port '${text}'`);
  return Number(text);
}

/**
 * QemuOpts flags written without a value (`server`, `nowait`, `pretty`),
 * after the first parameter, spelled out as keyval parameters.
 */
function expandBareFlags(text: string, flags: Readonly<Record<string, string>>): string {
  return text.replace(/,([a-z]+)(?=,|$)/g, (whole: string, name: string) => (flags[name] === undefined ? whole : `,${flags[name]}`));
}

/** A chardev socket (QemuOpts syntax: bare `server` and `nowait` are accepted) as a listen address. */
function parseChardev(text: string): { id: string; address: MonitorAddress } {
  const normalized = expandBareFlags(text, { server: 'server=on', nowait: 'wait=off' });
  const backend = /^([^,=]*)(,|$)/.exec(normalized)?.[1];
  if (backend !== undefined && backend !== '' && backend !== 'socket') {
    throw new DaemonArgumentError('--chardev', text, `chardev backend '${backend}' is not supported (only 'socket')`);
  }
  let options: Record<string, unknown>;
  try {
    options = parseOptionArgument(normalized, ChardevSocketOptions, { impliedKey: 'backend' });
  } catch (error) {
    throw new DaemonArgumentError('--chardev', text, (error as Error).message);
  }
  if (options.server !== true) throw new DaemonArgumentError('--chardev', text, "only listening sockets are supported: add 'server=on'");
  if (typeof options.path === 'string') return { id: options.id as string, address: { type: 'unix', path: options.path } };
  if (typeof options.port === 'string') {
    const host = typeof options.host === 'string' && options.host !== '' ? options.host : '127.0.0.1';
    return { id: options.id as string, address: { type: 'inet', host, port: parsePort(options.port, '--chardev', text) } };
  }
  throw new DaemonArgumentError('--chardev', text, "a socket chardev needs 'path' or 'port'");
}

/** `--qmp unix:PATH[,server=on,wait=off]` or `--qmp tcp:HOST:PORT[,...]`. */
function parseQmpShorthand(text: string): MonitorAddress {
  const address = text.split(',')[0]!;
  if (address.startsWith('unix:') && address.length > 5) return { type: 'unix', path: address.slice(5) };
  const tcp = /^tcp:(.*):([^:]*)$/.exec(address);
  if (tcp) return { type: 'inet', host: tcp[1] === '' ? '127.0.0.1' : tcp[1]!.replace(/^\[(.*)\]$/, '$1'), port: parsePort(tcp[2]!, '--qmp', text) };
  throw new DaemonArgumentError('--qmp', text, "expected 'unix:PATH' or 'tcp:HOST:PORT'");
}

function typed<T>(option: string, text: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (error instanceof DaemonArgumentError) throw error;
    throw new DaemonArgumentError(option, text, (error as Error).message);
  }
}

/** Parse the daemon's arguments (without the program and subcommand names). Throws DaemonArgumentError. */
export function parseDaemonArguments(argv: readonly string[]): DaemonArguments {
  const steps: StartupStep[] = [];
  const chardevs = new Map<string, MonitorAddress>();
  let pidfile: string | undefined;
  let daemonize = false;
  let noBackingFromImage = false;
  let help = false;
  let version = false;
  for (let i = 0; i < argv.length; i++) {
    const argument = argv[i]!;
    const equals = argument.startsWith('--') ? argument.indexOf('=') : -1;
    const option = equals > 0 ? argument.slice(0, equals) : argument;
    if (FLAGS.has(option)) {
      if (equals > 0) throw new DaemonArgumentError(option, undefined, 'takes no value');
      if (option === '--daemonize') daemonize = true;
      else if (option === '--no-backing-from-image') noBackingFromImage = true;
      else if (option === '-h' || option === '--help') help = true;
      else version = true;
      continue;
    }
    if (!OPTIONS_WITH_VALUE.has(option)) {
      throw new DaemonArgumentError(argument, undefined, option.startsWith('-') ? 'unknown option' : 'unexpected argument (options start with --)');
    }
    let text: string;
    if (equals > 0) {
      text = argument.slice(equals + 1);
    } else {
      if (i + 1 >= argv.length) throw new DaemonArgumentError(option, undefined, 'requires an argument');
      text = argv[++i]!;
    }
    switch (option) {
      case '--blockdev':
        steps.push({ kind: 'blockdev', option, text, options: typed(option, text, () => parseOptionArgument(text, BlockdevOptions, { impliedKey: 'driver' })) });
        break;
      case '--chardev': {
        const { id, address } = parseChardev(text);
        if (chardevs.has(id)) throw new DaemonArgumentError(option, text, `duplicate chardev id '${id}'`);
        chardevs.set(id, address);
        break;
      }
      case '--monitor': {
        const expanded = expandBareFlags(text, { pretty: 'pretty=on' });
        const options = typed(option, text, () => parseOptionArgument<{ chardev: string; mode?: string }>(expanded, MonitorOptions, { impliedKey: 'chardev' }));
        if (options.mode === 'readline') throw new DaemonArgumentError(option, text, "only QMP monitors (mode=control) are supported");
        const address = chardevs.get(options.chardev);
        if (!address) throw new DaemonArgumentError(option, text, `chardev '${options.chardev}' not found`);
        steps.push({ kind: 'monitor', option, text, address });
        break;
      }
      case '--qmp':
        steps.push({ kind: 'monitor', option, text, address: parseQmpShorthand(text) });
        break;
      case '--nbd-server':
        steps.push({ kind: 'nbd-server', option, text, options: typed(option, text, () => parseOptionArgument<NbdServerArgs>(text, NbdServerOptions)) });
        break;
      case '--export':
        steps.push({ kind: 'export', option, text, options: typed(option, text, () => parseOptionArgument<BlockExportArgs>(text, BlockExportOptions, { impliedKey: 'type' })) });
        break;
      case '--pidfile':
        pidfile = text;
        break;
      default:
        throw new DaemonArgumentError(option, text, 'is not supported by livebackup daemon');
    }
  }
  return { steps, pidfile, daemonize, noBackingFromImage, help, version };
}

/** The `livebackup daemon --help` text. */
export const DAEMON_USAGE = `Usage: livebackup daemon [options]
A storage daemon compatible with qemu-storage-daemon 7.2 for backup work:
block nodes, backup jobs, NBD exports and a QMP control socket.

  -h, --help             display this help and exit
  -V, --version          output version information and exit

  --blockdev [driver=]<driver>[,node-name=<N>][,discard=ignore|unmap]
             [,cache.no-flush=on|off][,read-only=on|off]
             [,detect-zeroes=on|off|unmap][,driver specific parameters...]
             or a JSON object {"driver": ...}
                         open a block node (drivers: file, raw, qcow2, null-co,
                         blkdebug, nbd)
  --chardev socket,id=<id>,path=<path>,server=on[,wait=off]
  --chardev socket,id=<id>,host=<host>,port=<port>,server=on[,wait=off]
                         a listening socket for --monitor (TCP: 127.0.0.1 if
                         no host is given)
  --monitor [chardev=]<id>[,mode=control][,pretty=on|off]
                         serve QMP on that chardev (unix sockets get mode 0600)
  --qmp unix:<path> | tcp:<host>:<port>
                         shorthand for --chardev + --monitor
  --nbd-server addr.type=unix,addr.path=<path>[,max-connections=<n>]
  --nbd-server addr.type=inet,addr.host=<host>,addr.port=<port>[,max-connections=<n>]
                         start the NBD server
  --export [type=]nbd,id=<id>,node-name=<node-name>[,name=<export-name>]
           [,writable=on|off][,description=<text>]
                         export a node over NBD (read-only unless writable=on)
  --daemonize            detach once every socket listens; the parent exits 0
  --pidfile <path>       write the process ID to a file after startup
  --no-backing-from-image
                         never open a backing file named inside an image: give
                         'backing' explicitly (node-name, options or null); use it
                         when images come from untrusted users

SIGTERM, SIGINT, SIGHUP and the QMP 'quit' command shut down cleanly: exports
are removed, running jobs cancelled, images flushed and closed.
`;
