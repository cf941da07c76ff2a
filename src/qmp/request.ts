/**
 * The shape of one QMP input object, checked as QEMU's dispatcher does:
 * `execute` (or `exec-oob` once OOB is enabled) naming the command,
 * optional `arguments` object, optional `id` of any type, nothing else.
 */
import { LivebackupError } from '../errors.js';
import { qdictOrder } from './qdict-order.js';

export interface QmpRequest {
  readonly command: string;
  /** True for `exec-oob`. */
  readonly outOfBand: boolean;
  readonly arguments: Record<string, unknown>;
  /** The `id` member when present (echoed verbatim in the reply). */
  readonly id: unknown;
  readonly hasId: boolean;
}

/** A malformed request; `id`/`hasId` say whether the reply can carry the id. */
export class QmpRequestError extends LivebackupError {
  constructor(
    message: string,
    readonly id: unknown,
    readonly hasId: boolean,
  ) {
    super('PROTOCOL_ERROR', message);
    this.name = 'QmpRequestError';
  }
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Check one parsed input value; throws QmpRequestError with QEMU's text. */
export function parseRequest(input: unknown, outOfBandEnabled: boolean): QmpRequest {
  if (!isObject(input)) throw new QmpRequestError('QMP input must be a JSON object', undefined, false);
  const hasId = Object.hasOwn(input, 'id');
  const fail = (message: string): never => {
    throw new QmpRequestError(message, input.id, hasId);
  };
  // QEMU checks the members in QDict order, which decides the error when several are wrong.
  for (const key of qdictOrder(Object.keys(input))) {
    const value = input[key];
    if (key === 'execute' || (key === 'exec-oob' && outOfBandEnabled)) {
      if (typeof value !== 'string') fail(`QMP input member '${key}' must be a string`);
    } else if (key === 'arguments') {
      if (!isObject(value)) fail(`QMP input member 'arguments' must be an object`);
    } else if (key !== 'id') {
      fail(`QMP input member '${key}' is unexpected`);
    }
  }
  const execute = input.execute as string | undefined;
  const execOob = input['exec-oob'] as string | undefined;
  if (execute !== undefined && execOob !== undefined) fail(`QMP input member 'execute' clashes with 'exec-oob'`);
  const command = execute ?? execOob;
  if (command === undefined) fail(`QMP input lacks member 'execute'`);
  return {
    command: command!,
    outOfBand: execOob !== undefined,
    arguments: (input.arguments as Record<string, unknown> | undefined) ?? {},
    id: input.id,
    hasId,
  };
}
