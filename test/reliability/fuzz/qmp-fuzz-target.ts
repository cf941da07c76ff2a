/**
 * Fuzz target (c): the QMP server fed mutated client streams over a real
 * unix socket: negotiation, commands with typed arguments (a `fuzz-echo`
 * command with ints of every width, sizes, enums, optional members, lists,
 * a flat union and `any`), ids of every JSON type, exec-oob, odd literals,
 * escapes and deep nesting. The client sends its bytes, half-closes and
 * waits for the server to close. A case fails on an uncaught exception or
 * unhandled rejection, a connection never closed, a reply that is not
 * JSON, or a server that stops serving a well-behaved client (checked
 * every 250 cases).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QmpServer } from '../../../src/qmp/server.js';
import { any, bool, enumType, int, int8, list, size, str, struct, uint16, uint64, union } from '../../../src/qmp/schema.js';
import type { FuzzSeed, FuzzTarget } from './fuzz-target.js';
import { ProcessFaultWatch } from './process-fault-watch.js';
import { exchange } from './socket-exchange.js';

const CLOSE_TIMEOUT_MS = 10_000;
const HEALTH_EVERY = 250;
const encoder = new TextEncoder();

const Mode = enumType('FuzzMode', ['alpha', 'beta', 'gamma']);
const EchoArgs = struct('FuzzEchoArgs', {
  name: str,
  '*count': int,
  '*small': int8,
  '*port': uint16,
  '*big': uint64,
  '*bytes': size,
  '*flag': bool,
  '*mode': Mode,
  '*tags': list(str),
  '*nested': list(struct('FuzzNested', { key: str, '*value': any })),
  '*target': union('FuzzTarget', {
    base: { kind: enumType('FuzzKind', ['file', 'node']) },
    discriminator: 'kind',
    branches: { file: { filename: str }, node: { 'node-name': str, '*depth': int } },
  }),
});

/** Valid client streams: negotiation then a mix of commands, one per line or packed. */
function qmpSeeds(): FuzzSeed[] {
  const lines = [
    '{"execute":"qmp_capabilities"}',
    '{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}',
    '{"execute":"query-version","id":1}',
    '{"execute":"query-commands","id":"abc"}',
    '{"execute":"fuzz-echo","arguments":{"name":"x","count":-5,"small":-128,"port":65535,"big":18446744073709551615,"bytes":1024}}',
    '{"execute":"fuzz-echo","arguments":{"name":"\\u00e9\\n\\"q\\"","mode":"beta","tags":["a","b"],"flag":true}}',
    '{"execute":"fuzz-echo","arguments":{"name":"n","nested":[{"key":"k","value":{"a":[1,2.5,null,false]}}],"target":{"kind":"node","node-name":"disk0","depth":3}}}',
    '{"execute":"fuzz-echo","arguments":{"name":"f","target":{"kind":"file","filename":"/tmp/x"}},"id":[1,{"x":null}]}',
    '{"exec-oob":"query-version","id":7}',
    '{"execute":"no-such-command","id":{"deep":[[[[1]]]]}}',
    '{"execute":"fuzz-echo"}',
    "{'execute':'query-version','id':'single'}",
    '[1,2,3]',
    '{"execute":"fuzz-echo","arguments":{"name":"e","count":1e3,"extra":1}}',
  ];
  const seeds: FuzzSeed[] = [];
  for (let i = 0; i < lines.length; i++) {
    const stream = [lines[0], ...lines.slice(1).filter((_, index) => (index + i) % 3 !== 0)].join(i % 2 === 0 ? '\n' : ' ');
    seeds.push({ name: `qmp-${i}`, bytes: encoder.encode(stream + '\n'), hints: { maxLength: 64 * 1024 } });
  }
  seeds.push({ name: 'qmp-deep', bytes: encoder.encode('{"execute":"fuzz-echo","arguments":{"name":"d","nested":[{"key":"k","value":' + '['.repeat(200) + ']'.repeat(200) + '}]}}\n') });
  return seeds;
}

/** A QMP server on a private unix socket with the built-in commands and `fuzz-echo`. */
export class QmpFuzzTarget implements FuzzTarget {
  readonly name = 'qmp';
  private server: QmpServer | undefined;
  private dir = '';
  private socketPath = '';
  private cases = 0;
  private readonly watch = new ProcessFaultWatch();

  async seeds(): Promise<FuzzSeed[]> {
    this.dir = await mkdtemp(join(tmpdir(), 'livebackup-fuzz-qmp-'));
    this.socketPath = join(this.dir, 'qmp.sock');
    this.server = new QmpServer({ onQuit: () => undefined, limits: { maxMessageBytes: 1024 * 1024 } });
    this.server.registerCommand({ name: 'fuzz-echo', args: EchoArgs, handler: (args) => ({ name: args.name }) });
    await this.server.listenUnix(this.socketPath);
    this.watch.start();
    return qmpSeeds();
  }

  async run(bytes: Uint8Array): Promise<string | undefined> {
    const outcome = await exchangeLines(this.socketPath, bytes, CLOSE_TIMEOUT_MS);
    if (typeof outcome === 'string') return outcome;
    const fault = this.watch.take();
    if (fault !== undefined) return fault;
    const bad = outcome.find((line) => !isJsonObject(line));
    if (bad !== undefined) return `the server sent a line that is not a JSON object: ${bad.slice(0, 200)}`;
    if (++this.cases % HEALTH_EVERY === 0) return this.checkHealth();
    return undefined;
  }

  async close(): Promise<void> {
    this.watch.stop();
    await this.server?.close();
    await rm(this.dir, { recursive: true, force: true });
  }

  private async checkHealth(): Promise<string | undefined> {
    const outcome = await exchangeLines(this.socketPath, encoder.encode('{"execute":"qmp_capabilities"}\n{"execute":"query-version","id":"health"}\n'), CLOSE_TIMEOUT_MS);
    if (typeof outcome === 'string') return `health check: ${outcome}`;
    if (!outcome.some((line) => line.includes('"id": "health"') || line.includes('"id":"health"'))) {
      return `health check: no reply to query-version: ${outcome.join(' | ').slice(0, 300)}`;
    }
    return undefined;
  }
}

/** Send `bytes`, half-close, and split what the server sent into lines; a text on hang. */
async function exchangeLines(path: string, bytes: Uint8Array, timeoutMs: number): Promise<string[] | string> {
  const outcome = await exchange(path, bytes, timeoutMs);
  if (typeof outcome === 'string') return outcome;
  return outcome.toString('utf8').split('\n').filter((line) => line.trim() !== '');
}

function isJsonObject(line: string): boolean {
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null && !Array.isArray(value);
  } catch {
    return false;
  }
}
