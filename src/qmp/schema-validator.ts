/**
 * Checks a value against a QAPI type description and returns a cleaned
 * copy, reporting the first problem with QEMU 7.2's exact text:
 *
 *   Parameter 'file.filename' is missing
 *   Parameter 'actions[0].bogus' is unexpected
 *   Invalid parameter type for 'speed', expected: integer
 *   Parameter 'sync' does not accept value 'sideways'
 *   Parameter 'granularity' expects uint32_t
 *
 * Members are visited in schema order; unexpected members are reported
 * after the known ones of the same object, and when there are several,
 * the one QEMU's hash table yields first (see ghashtable-order.ts). Like QEMU, enum
 * and integer-range errors name only the member (or 'null' inside a list),
 * all other errors name the full path.
 *
 * Two input modes: 'qmp' takes JSON values (QMP arguments, JSON
 * command-line options); 'keyval' takes the string tree of a key=value
 * command-line option and converts scalars per type ('on'/'off' booleans,
 * integers in C syntax, sizes with suffixes). In both modes integers are
 * returned as numbers; uint64/size accept negative input as two's
 * complement, as QEMU does.
 */
import { LivebackupError } from '../errors.js';
import { firstUnvisitedKey } from './ghashtable-order.js';
import { defineMember, isIntegralFloatLiteral } from './json-parser.js';
import { qdictOrder } from './qdict-order.js';
import { resolveType, type BuiltinName, type BuiltinType, type EnumType, type ObjectType, type QapiType, type StructMember } from './schema.js';

export type InputMode = 'qmp' | 'keyval';

const TWO_64 = 2n ** 64n;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = TWO_64 - 1n;

/** Range and C type name of the fixed-width integer types. */
const INTEGER_RANGES: Partial<Record<BuiltinName, { min: bigint; max: bigint; cName: string }>> = {
  int8: { min: -128n, max: 127n, cName: 'int8_t' },
  int16: { min: -32768n, max: 32767n, cName: 'int16_t' },
  int32: { min: -(2n ** 31n), max: 2n ** 31n - 1n, cName: 'int32_t' },
  uint8: { min: 0n, max: 255n, cName: 'uint8_t' },
  uint16: { min: 0n, max: 65535n, cName: 'uint16_t' },
  uint32: { min: 0n, max: 2n ** 32n - 1n, cName: 'uint32_t' },
};

const SIGNED: ReadonlySet<BuiltinName> = new Set(['int', 'int8', 'int16', 'int32', 'int64']);

const invalid = (message: string): LivebackupError => new LivebackupError('INVALID_ARGUMENT', message);
const typeError = (path: string | null, expected: string): LivebackupError =>
  invalid(`Invalid parameter type for '${path ?? 'null'}', expected: ${expected}`);

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Where a value sits: its full path (for most errors) and its own name (for enum and range errors). */
interface Place {
  readonly path: string | null;
  readonly name: string | null;
}

const TOP: Place = { path: null, name: null };

/** C-syntax integer (decimal, 0x hex, 0 octal, optional sign, leading blanks) as a bigint, or undefined. */
function parseCInteger(text: string): bigint | undefined {
  const match = /^[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(text);
  if (match === null) return undefined;
  const digits = match[2]!;
  const magnitude = digits.length > 1 && digits[0] === '0' && digits[1] !== 'x' && digits[1] !== 'X' ? BigInt(`0o${digits.slice(1)}`) : BigInt(digits);
  return match[1] === '-' ? -magnitude : magnitude;
}

const SIZE_SUFFIXES = 'bkmgtpe';

/** A byte count with an optional binary suffix (B, k, M, G, T, P, E), or undefined. */
export function parseSize(text: string): number | undefined {
  const match = /^[ \t]*(0[xX][0-9a-fA-F]+|[0-9]+(?:\.[0-9]*)?)[ \t]*([bBkKmMgGtTpPeE]?)$/.exec(text);
  if (match === null) return undefined;
  const mantissa = match[1]!;
  const suffix = match[2]!.toLowerCase();
  const exponent = suffix === '' ? 0 : SIZE_SUFFIXES.indexOf(suffix);
  if (mantissa.includes('.')) {
    if (exponent === 0) return undefined; // fractions need a unit larger than a byte
    const bytes = Math.round(Number(mantissa) * 1024 ** exponent);
    return bytes < 2 ** 64 ? bytes : undefined;
  }
  const bytes = BigInt(mantissa) * 1024n ** BigInt(exponent);
  return bytes <= UINT64_MAX ? Number(bytes) : undefined;
}

const KEYVAL_TRUE: ReadonlySet<string> = new Set(['on', 'yes', 'true', 'y']);
const KEYVAL_FALSE: ReadonlySet<string> = new Set(['off', 'no', 'false', 'n']);

class Validator {
  constructor(private readonly mode: InputMode) {}

  private child(place: Place, name: string): Place {
    return { path: place.path === null ? name : `${place.path}.${name}`, name };
  }

  private element(place: Place, index: number): Place {
    const suffix = this.mode === 'qmp' ? `[${index}]` : `.${index}`;
    return { path: `${place.path ?? ''}${suffix}`, name: null };
  }

  /** `floatLiteral`: the value was written as a float (`1.0`), which integer types refuse. */
  visit(type: QapiType, value: unknown, place: Place, floatLiteral = false): unknown {
    const resolved = resolveType(type);
    switch (resolved.kind) {
      case 'builtin':
        return this.mode === 'qmp' ? this.jsonScalar(resolved, value, place, floatLiteral) : this.keyvalScalar(resolved, value, place);
      case 'enum':
        return this.enumValue(resolved, value, place);
      case 'struct':
      case 'union':
        return this.object(resolved, value, place);
      case 'list': {
        if (!Array.isArray(value)) throw typeError(place.path, 'array');
        return value.map((item, index) => this.visit(resolved.element, item, this.element(place, index), isIntegralFloatLiteral(value, index)));
      }
      case 'alternate': {
        const branch = this.alternateBranch(resolved.branches, value);
        if (branch === undefined) throw typeError(place.path, resolved.name);
        return this.visit(branch, value, place, floatLiteral);
      }
    }
  }

  /**
   * The alternate branch for this value: by JSON type; in keyval mode,
   * where every scalar is a string, a str or enum branch wins over the
   * other scalar branches.
   */
  private alternateBranch(branches: readonly QapiType[], value: unknown): QapiType | undefined {
    if (this.mode === 'keyval' && typeof value === 'string') {
      const textual = branches.find((candidate) => {
        const branch = resolveType(candidate);
        return branch.kind === 'enum' || (branch.kind === 'builtin' && branch.name === 'str');
      });
      if (textual !== undefined) return textual;
    }
    return branches.find((candidate) => this.alternateAccepts(candidate, value));
  }

  /** Does this alternate branch take values of this JSON type? */
  private alternateAccepts(type: QapiType, value: unknown): boolean {
    const branch = resolveType(type);
    const jsonKind = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
    switch (branch.kind) {
      case 'struct':
      case 'union':
        return jsonKind === 'object';
      case 'list':
        return jsonKind === 'array';
      case 'enum':
        return jsonKind === 'string';
      case 'alternate':
        return false;
      case 'builtin':
        if (this.mode === 'keyval') return jsonKind === 'string';
        switch (branch.name) {
          case 'str': return jsonKind === 'string';
          case 'bool': return jsonKind === 'boolean';
          case 'null': return jsonKind === 'null';
          case 'any': return true;
          default: return jsonKind === 'number' || jsonKind === 'bigint';
        }
    }
  }

  private enumValue(type: EnumType, value: unknown, place: Place): string {
    if (typeof value !== 'string') throw typeError(place.path, 'string');
    if (!type.values.includes(value)) throw invalid(`Parameter '${place.name ?? 'null'}' does not accept value '${value}'`);
    return value;
  }

  private object(type: ObjectType, value: unknown, place: Place): Record<string, unknown> {
    if (!isPlainObject(value)) throw typeError(place.path, 'object');
    const result: Record<string, unknown> = {};
    /** Members present in the input, in visit order. */
    const visited: string[] = [];
    const visitMembers = (members: readonly StructMember[]): void => {
      for (const member of members) {
        if (!Object.hasOwn(value, member.name) || value[member.name] === undefined) {
          if (!member.optional) throw invalid(`Parameter '${this.child(place, member.name).path}' is missing`);
          continue;
        }
        visited.push(member.name);
        const memberValue = this.visit(member.type, value[member.name], this.child(place, member.name), isIntegralFloatLiteral(value, member.name));
        defineMember(result, member.name, memberValue);
      }
    };
    if (type.kind === 'struct') {
      visitMembers(type.members);
    } else {
      visitMembers(type.base.members);
      const branch = type.branches[result[type.discriminator] as string];
      if (branch !== undefined) visitMembers(branch.members);
    }
    const keys = Object.keys(value).filter((key) => value[key] !== undefined);
    if (keys.length > visited.length) {
      // Several may be unexpected: name the one QEMU would name.
      const unexpected = firstUnvisitedKey(qdictOrder(keys), visited)!;
      throw invalid(`Parameter '${this.child(place, unexpected).path}' is unexpected`);
    }
    return result;
  }

  private jsonScalar(type: BuiltinType, value: unknown, place: Place, floatLiteral: boolean): unknown {
    switch (type.name) {
      case 'any':
        return value;
      case 'str':
        if (typeof value !== 'string') throw typeError(place.path, 'string');
        return value;
      case 'bool':
        if (typeof value !== 'boolean') throw typeError(place.path, 'boolean');
        return value;
      case 'null':
        if (value !== null) throw typeError(place.path, 'null');
        return null;
      case 'number':
        if (typeof value !== 'number' && typeof value !== 'bigint') throw typeError(place.path, 'number');
        return Number(value);
      default:
        break;
    }
    const integral = typeof value === 'number' && Number.isSafeInteger(value) && !floatLiteral;
    const exact = typeof value === 'bigint' ? value : integral ? BigInt(value) : undefined;
    if (SIGNED.has(type.name)) {
      if (exact === undefined || exact < INT64_MIN || exact > INT64_MAX) throw typeError(place.path, 'integer');
      return this.checkRange(type.name, exact, place);
    }
    // uint64, size and the narrower unsigned types: negative input wraps, as in QEMU.
    if (exact === undefined || exact < INT64_MIN || exact > UINT64_MAX) throw invalid(`Parameter '${place.path ?? 'null'}' expects uint64`);
    return this.checkRange(type.name, exact < 0n ? exact + TWO_64 : exact, place);
  }

  private keyvalScalar(type: BuiltinType, value: unknown, place: Place): unknown {
    if (type.name === 'any') return value;
    if (typeof value !== 'string') throw typeError(place.path, 'string');
    const expects = (what: string): LivebackupError => invalid(`Parameter '${place.path ?? 'null'}' expects ${what}`);
    switch (type.name) {
      case 'str':
        return value;
      case 'bool':
        if (KEYVAL_TRUE.has(value)) return true;
        if (KEYVAL_FALSE.has(value)) return false;
        throw expects("'on' or 'off'");
      case 'null':
        if (value !== '') throw expects('null');
        return null;
      case 'number': {
        const parsed = value.trim() === '' ? NaN : Number(value);
        if (!Number.isFinite(parsed)) throw expects('number');
        return parsed;
      }
      case 'size': {
        const parsed = parseSize(value);
        if (parsed === undefined) throw expects('size');
        return parsed;
      }
      default:
        break;
    }
    const exact = parseCInteger(value);
    if (SIGNED.has(type.name)) {
      if (exact === undefined || exact < INT64_MIN || exact > INT64_MAX) throw expects('integer');
      return this.checkRange(type.name, exact, place);
    }
    if (exact === undefined || exact < -UINT64_MAX || exact > UINT64_MAX) throw expects('integer');
    return this.checkRange(type.name, exact < 0n ? exact + TWO_64 : exact, place);
  }

  private checkRange(name: BuiltinName, value: bigint, place: Place): number {
    const range = INTEGER_RANGES[name];
    if (range !== undefined && (value < range.min || value > range.max)) {
      throw invalid(`Parameter '${place.name ?? 'null'}' expects ${range.cName}`);
    }
    return Number(value);
  }
}

/**
 * Validate `value` against `type` and return the cleaned copy. Throws
 * LivebackupError INVALID_ARGUMENT with QEMU's text on the first problem.
 */
export function validateValue<T = Record<string, unknown>>(type: QapiType, value: unknown, mode: InputMode = 'qmp'): T {
  return new Validator(mode).visit(type, value, TOP) as T;
}

