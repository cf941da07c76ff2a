/**
 * The `blkdebug` filter driver: passes I/O to its `image` child and injects
 * errors by rules, with QEMU 7.2's BlockdevOptionsBlkdebug option names so
 * QEMU test setups work unchanged.
 *
 * Rule semantics (simplified from QEMU, where format drivers emit events):
 * a rule's `event` selects the request kinds it can fail — 'read_aio' and
 * the other read events fail reads, 'write_aio' and the other write events
 * fail writes/writeZeroes/discard, 'flush_to_disk' fails flushes; `iotype`
 * narrows it further. `sector` (512-byte units, default any) must lie inside
 * the request. `errno` is the Linux errno number (default 5, EIO). `once`
 * removes the rule after it fired. `state`, `set-state` and `immediately`
 * are accepted; states are tracked (set-state rules switch the state when
 * their event's request kind runs).
 */
import type { BlockDriver, ChildLink, DriverBlockStatus, WriteFlags, WriteZeroesFlags } from '../block-driver.js';
import type { BlockNode } from '../block-node.js';
import type { BlockDriverFactory, DriverOpenArgs } from '../driver-factory.js';
import { ERRNO_NUMBERS, LivebackupError } from '../../errors.js';

/** A request kind as blkdebug's iotype names it. */
export type BlkdebugIoType = 'read' | 'write' | 'write-zeroes' | 'discard' | 'flush' | 'block-status';

/** One error injection rule (QAPI BlkdebugInjectErrorOptions). */
export interface BlkdebugRule {
  event: string;
  state?: number;
  iotype?: BlkdebugIoType;
  errno?: number;
  sector?: number;
  once?: boolean;
  immediately?: boolean;
}

interface StateRule {
  event: string;
  state?: number;
  new_state: number;
}

const FLUSH_EVENTS = new Set(['flush_to_os', 'flush_to_disk']);

/** Which request kinds an event name stands for. */
function eventKinds(event: string): ReadonlySet<BlkdebugIoType> {
  if (FLUSH_EVENTS.has(event)) return new Set(['flush']);
  if (event.startsWith('read') || event.endsWith('_load') || event === 'cluster_alloc_space') {
    return new Set(['read']);
  }
  return new Set(['write', 'write-zeroes', 'discard']);
}

const ERRNO_NAMES = new Map(Object.entries(ERRNO_NUMBERS).map(([name, number]) => [number, name]));

export class BlkdebugDriver implements BlockDriver {
  readonly driverName = 'blkdebug';
  readonly isFormat = false;
  readonly isFilter = true;
  readonly supportsBacking = false;
  readonly requestAlignment: number;
  readonly maxTransfer: number;
  /** The active error rules; mutable so tests and tools can add or remove faults at run time. */
  readonly rules: BlkdebugRule[];
  /** Current blkdebug state (starts at 1, as in QEMU). */
  state = 1;
  /** How many errors were injected so far. */
  injected = 0;

  constructor(
    private readonly image: BlockNode,
    private readonly owned: boolean,
    rules: BlkdebugRule[],
    private readonly stateRules: StateRule[],
    align: number | undefined,
    maxTransfer: number | undefined,
  ) {
    this.rules = rules;
    this.requestAlignment = align ?? image.driver.requestAlignment;
    this.maxTransfer = maxTransfer ?? image.driver.maxTransfer;
  }

  async read(offset: number, buf: Uint8Array): Promise<void> {
    this.check('read', offset, buf.length);
    await this.image.read(offset, buf);
  }

  async write(offset: number, buf: Uint8Array, flags: WriteFlags): Promise<void> {
    this.check('write', offset, buf.length);
    await this.image.write(offset, buf, { fua: flags.fua, mayGrow: this.growing(flags, offset + buf.length) });
  }

  async writeZeroes(offset: number, bytes: number, flags: WriteZeroesFlags): Promise<void> {
    this.check('write-zeroes', offset, bytes);
    await this.image.writeZeroes(offset, bytes, {
      fua: flags.fua,
      mayUnmap: flags.mayUnmap,
      noFallback: flags.noFallback,
      mayGrow: this.growing(flags, offset + bytes),
    });
  }

  async discard(offset: number, bytes: number): Promise<void> {
    this.check('discard', offset, bytes);
    await this.image.discard(offset, bytes);
  }

  async flush(): Promise<void> {
    this.check('flush', 0, 0);
    await this.image.flush();
  }

  async blockStatus(offset: number, bytes: number): Promise<DriverBlockStatus> {
    this.check('block-status', offset, bytes);
    const below = await this.image.blockStatus(offset, bytes);
    return {
      bytes: below.bytes,
      state: !below.present ? 'unallocated' : below.zero ? 'zero' : 'data',
      hostOffset: below.hostOffset,
      hostNode: below.hostNode,
    };
  }

  async getLength(): Promise<number> {
    return this.image.length;
  }

  /** Resize the image child (a format above us growing its file). */
  async truncate(length: number): Promise<void> {
    await this.image.truncate(length);
  }

  children(): readonly ChildLink[] {
    return [{ role: 'image', node: this.image, owned: this.owned }];
  }

  async close(): Promise<void> {}

  /**
   * Whether a write ending at `end` must grow the image. Our own length may
   * already cover it (an earlier growing write that failed here left it
   * grown), so compare with the image's.
   */
  private growing(flags: WriteFlags, end: number): boolean {
    return flags.mayGrow === true || end > this.image.length;
  }

  /** Apply state rules and throw the first matching injected error. */
  private check(kind: BlkdebugIoType, offset: number, bytes: number): void {
    for (const rule of this.stateRules) {
      if (eventKinds(rule.event).has(kind) && (rule.state === undefined || rule.state === this.state)) {
        this.state = rule.new_state;
        break;
      }
    }
    const index = this.rules.findIndex((rule) => this.matches(rule, kind, offset, bytes));
    if (index < 0) return;
    const rule = this.rules[index]!;
    if (rule.once) this.rules.splice(index, 1);
    this.injected++;
    const errnoNumber = rule.errno ?? 5;
    const errno = ERRNO_NAMES.get(errnoNumber) ?? 'EIO';
    throw new LivebackupError('IO_ERROR', `blkdebug: injected ${errno} on ${kind} at ${offset}`, { errno });
  }

  private matches(rule: BlkdebugRule, kind: BlkdebugIoType, offset: number, bytes: number): boolean {
    if (rule.state !== undefined && rule.state !== this.state) return false;
    if (rule.iotype !== undefined ? rule.iotype !== kind : !eventKinds(rule.event).has(kind)) return false;
    if (rule.sector === undefined || rule.sector < 0 || kind === 'flush') return true;
    const start = rule.sector * 512;
    return start < offset + bytes && offset < start + 512;
  }
}

const IO_TYPES: readonly BlkdebugIoType[] = ['read', 'write', 'write-zeroes', 'discard', 'flush', 'block-status'];

function parseRule(value: unknown, index: number): BlkdebugRule {
  const where = `inject-error[${index}]`;
  if (typeof value !== 'object' || value === null) throw new LivebackupError('INVALID_ARGUMENT', `Invalid parameter type for '${where}', expected: object`);
  const rule = value as Record<string, unknown>;
  const allowed = new Set(['event', 'state', 'iotype', 'errno', 'sector', 'once', 'immediately']);
  for (const key of Object.keys(rule)) {
    if (!allowed.has(key)) throw new LivebackupError('INVALID_ARGUMENT', `Parameter '${where}.${key}' is unexpected`);
  }
  if (typeof rule.event !== 'string') throw new LivebackupError('INVALID_ARGUMENT', `Parameter '${where}.event' is missing`);
  if (rule.iotype !== undefined && !IO_TYPES.includes(rule.iotype as BlkdebugIoType)) {
    throw new LivebackupError('INVALID_ARGUMENT', `Parameter '${where}.iotype' does not accept value '${String(rule.iotype)}'`);
  }
  for (const key of ['state', 'errno', 'sector'] as const) {
    if (rule[key] !== undefined && !Number.isSafeInteger(rule[key])) {
      throw new LivebackupError('INVALID_ARGUMENT', `Invalid parameter type for '${where}.${key}', expected: integer`);
    }
  }
  return rule as unknown as BlkdebugRule;
}

export const blkdebugDriverFactory: BlockDriverFactory = {
  name: 'blkdebug',
  options: {
    config: { type: 'string' },
    align: { type: 'integer' },
    'max-transfer': { type: 'integer' },
    'opt-write-zero': { type: 'integer' },
    'max-write-zero': { type: 'integer' },
    'opt-discard': { type: 'integer' },
    'max-discard': { type: 'integer' },
    'inject-error': { type: 'array' },
    'set-state': { type: 'array' },
    'take-child-perms': { type: 'array' },
    'unshare-child-perms': { type: 'array' },
  },
  childRoles: ['image'],
  async open(args: DriverOpenArgs): Promise<BlockDriver> {
    const options = args.options;
    if (options.config !== undefined) {
      throw new LivebackupError('UNSUPPORTED', "blkdebug 'config' files are not supported; use 'inject-error' and 'set-state'");
    }
    const align = options.align as number | undefined;
    if (align !== undefined && (align < 1 || (align & (align - 1)) !== 0)) {
      throw new LivebackupError('INVALID_ARGUMENT', 'Cannot meet constraints with align ' + align);
    }
    const rules = ((options['inject-error'] as unknown[] | undefined) ?? []).map(parseRule);
    const stateRules = (options['set-state'] as StateRule[] | undefined) ?? [];
    const reference = options.image;
    if (reference === undefined || reference === null) throw new LivebackupError('INVALID_ARGUMENT', "Parameter 'image' is missing");
    const image = (await args.openChild('image', reference as string | Record<string, unknown>))!;
    return new BlkdebugDriver(image, typeof reference === 'object', rules, stateRules, align, options['max-transfer'] as number | undefined);
  },
};
