/**
 * The shape of one QMP input object, checked as QEMU's dispatcher does:
 * `execute` (or `exec-oob` once OOB is enabled) naming the command,
 * optional `arguments` object, optional `id` of any type, nothing else.
 */
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

/**
 * A malformed request: QEMU's text, and whether the reply can carry the id.
 * A plain value, not an exception: a hostile client can send millions of
 * these, and building an Error (with its stack) for each costs more than
 * the rest of the reply.
 */
export interface MalformedRequest {
  readonly malformed: string;
  readonly id: unknown;
  readonly hasId: boolean;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Check one parsed input value: the request, or what is wrong with it in QEMU's words. */
export function parseRequest(input: unknown, outOfBandEnabled: boolean): QmpRequest | MalformedRequest {
  if (!isObject(input)) return { malformed: 'QMP input must be a JSON object', id: undefined, hasId: false };
  const hasId = Object.hasOwn(input, 'id');
  const malformed = (message: string): MalformedRequest => ({ malformed: message, id: input.id, hasId });
  // QEMU checks the members in QDict order, which decides the error when several are wrong.
  for (const key of qdictOrder(Object.keys(input))) {
    const value = input[key];
    if (key === 'execute' || (key === 'exec-oob' && outOfBandEnabled)) {
      if (typeof value !== 'string') return malformed(`QMP input member '${key}' must be a string`);
    } else if (key === 'arguments') {
      if (!isObject(value)) return malformed(`QMP input member 'arguments' must be an object`);
    } else if (key !== 'id') {
      return malformed(`QMP input member '${key}' is unexpected`);
    }
  }
  const execute = input.execute as string | undefined;
  const execOob = input['exec-oob'] as string | undefined;
  if (execute !== undefined && execOob !== undefined) return malformed(`QMP input member 'execute' clashes with 'exec-oob'`);
  const command = execute ?? execOob;
  if (command === undefined) return malformed(`QMP input lacks member 'execute'`);
  return {
    command,
    outOfBand: execOob !== undefined,
    arguments: (input.arguments as Record<string, unknown> | undefined) ?? {},
    id: input.id,
    hasId,
  };
}
