/**
 * Turns the tokens of one JSON message into a value, with QEMU's error
 * texts ("JSON parse error, ..."). Objects are plain objects (keys defined
 * as own data properties, so "__proto__" is an ordinary key), integers that
 * do not fit a double exactly become bigint when they fit int64/uint64, and
 * strings may be single-quoted (a QEMU extension).
 */
import { LivebackupError } from '../errors.js';
import { TokenType, type Token } from './json-lexer.js';

/** A parsed JSON value. */
export type JsonValue = null | boolean | number | bigint | string | JsonValue[] | { [key: string]: JsonValue };

const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

/** A JSON syntax error; the message is QEMU's text. */
export function jsonParseError(detail: string): LivebackupError {
  return new LivebackupError('INVALID_ARGUMENT', `JSON parse error, ${detail}`);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Unicode noncharacters QEMU refuses, as UTF-16: U+FDD0..U+FDEF and U+xxFFFE/U+xxFFFF in every plane. */
const NONCHARACTER = /[\uFDD0-\uFDEF\uFFFE\uFFFF]|[\uD83F\uD87F\uD8BF\uD8FF\uD93F\uD97F\uD9BF\uD9FF\uDA3F\uDA7F\uDABF\uDAFF\uDB3F\uDB7F\uDBBF\uDBFF][\uDFFE\uDFFF]/;

/** A code point QEMU accepts in a string: in range, not a surrogate, not a noncharacter. */
function isValidCodePoint(codePoint: number): boolean {
  if (codePoint > 0x10ffff || (codePoint >= 0xd800 && codePoint <= 0xdfff)) return false;
  if (codePoint >= 0xfdd0 && codePoint <= 0xfdef) return false;
  return (codePoint & 0xfffe) !== 0xfffe;
}

/**
 * Strict UTF-8, one code point at a time; like QEMU it also takes the
 * two-byte form C0 80 for U+0000. Used when the fast path refuses a run.
 */
function decodeUtf8Slowly(bytes: Buffer): string {
  let result = '';
  let i = 0;
  while (i < bytes.length) {
    const lead = bytes[i]!;
    let length: number;
    let codePoint: number;
    if (lead < 0x80) [length, codePoint] = [1, lead];
    else if (lead >= 0xc0 && lead <= 0xdf) [length, codePoint] = [2, lead & 0x1f];
    else if (lead >= 0xe0 && lead <= 0xef) [length, codePoint] = [3, lead & 0x0f];
    else if (lead >= 0xf0 && lead <= 0xf4) [length, codePoint] = [4, lead & 0x07];
    else throw jsonParseError('invalid UTF-8 sequence in string');
    if (i + length > bytes.length) throw jsonParseError('invalid UTF-8 sequence in string');
    for (let k = 1; k < length; k++) {
      const continuation = bytes[i + k]!;
      if ((continuation & 0xc0) !== 0x80) throw jsonParseError('invalid UTF-8 sequence in string');
      codePoint = (codePoint << 6) | (continuation & 0x3f);
    }
    const shortest = length === 1 || codePoint >= [0, 0, 0x80, 0x800, 0x10000][length]!;
    const modifiedNul = length === 2 && codePoint === 0;
    if ((!shortest && !modifiedNul) || !isValidCodePoint(codePoint)) throw jsonParseError('invalid UTF-8 sequence in string');
    result += String.fromCodePoint(codePoint);
    i += length;
  }
  return result;
}

/** Decode raw string bytes (no escapes) with QEMU's rules. */
function decodeUtf8(bytes: Buffer): string {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return decodeUtf8Slowly(bytes);
  }
  if (NONCHARACTER.test(text)) throw jsonParseError('invalid UTF-8 sequence in string');
  return text;
}

/** Decode the body of a string token (quotes included in `text`). */
function decodeString(text: Buffer): string {
  let result = '';
  let runStart = 1;
  const end = text.length - 1;
  const flushRun = (until: number): void => {
    if (until > runStart) result += decodeUtf8(text.subarray(runStart, until));
  };
  let i = 1;
  while (i < end) {
    if (text[i] !== 0x5c) {
      i++;
      continue;
    }
    flushRun(i);
    const escape = text[i + 1]!;
    i += 2;
    switch (escape) {
      case 0x22: result += '"'; break;
      case 0x27: result += "'"; break;
      case 0x5c: result += '\\'; break;
      case 0x2f: result += '/'; break;
      case 0x62: result += '\b'; break;
      case 0x66: result += '\f'; break;
      case 0x6e: result += '\n'; break;
      case 0x72: result += '\r'; break;
      case 0x74: result += '\t'; break;
      case 0x75: {
        result += unicodeEscape(text, i, end);
        i += isSurrogatePairEscape(text, i, end) ? 10 : 4;
        break;
      }
      default:
        throw jsonParseError('invalid escape sequence in string');
    }
    runStart = i;
  }
  flushRun(end);
  return result;
}

/** The 16-bit value of the 4 hex digits at `at`, or -1. */
function hex4(text: Buffer, at: number, end: number): number {
  if (at + 4 > end) return -1;
  const digits = text.toString('latin1', at, at + 4);
  return /^[0-9a-fA-F]{4}$/.test(digits) ? parseInt(digits, 16) : -1;
}

/** Are the hex digits at `at` a high surrogate, followed by an escaped low surrogate? */
function isSurrogatePairEscape(text: Buffer, at: number, end: number): boolean {
  const high = hex4(text, at, end);
  if (high < 0xd800 || high > 0xdbff || text[at + 4] !== 0x5c || text[at + 5] !== 0x75) return false;
  const low = hex4(text, at + 6, end);
  return low >= 0xdc00 && low <= 0xdfff;
}

/** The character of the unicode escape whose hex digits start at `at` (a surrogate pair spans 10 bytes). */
function unicodeEscape(text: Buffer, at: number, end: number): string {
  const invalid = (length: number): LivebackupError =>
    jsonParseError(`\\u${text.toString('utf8', at, Math.min(at + length, text.length))} is not a valid Unicode character`);
  const unit = hex4(text, at, end);
  if (isSurrogatePairEscape(text, at, end)) {
    const codePoint = 0x10000 + ((unit - 0xd800) << 10) + (hex4(text, at + 6, end) - 0xdc00);
    if (!isValidCodePoint(codePoint)) throw invalid(10);
    return String.fromCodePoint(codePoint);
  }
  if (unit < 0 || !isValidCodePoint(unit)) throw invalid(4);
  return String.fromCharCode(unit);
}

/** uint64 has at most 20 digits; longer literals (with sign) are doubles without converting to bigint. */
const MAX_INT64_LITERAL_LENGTH = 21;

function integerValue(text: string): number | bigint {
  const value = Number(text);
  if (Number.isSafeInteger(value)) return value === 0 ? 0 : value;
  if (text.length > MAX_INT64_LITERAL_LENGTH) return value;
  const exact = BigInt(text);
  if (exact >= INT64_MIN && exact <= UINT64_MAX) return exact;
  return value;
}

/**
 * Members (keys or indexes) of parsed objects and arrays that were written
 * as floats but hold integral values (`1.0`, `1e5`): QEMU refuses those
 * where an integer is expected, so the validator asks.
 */
const integralFloats = new WeakMap<object, Set<string | number>>();

function markIntegralFloat(container: object, key: string | number): void {
  let members = integralFloats.get(container);
  if (members === undefined) integralFloats.set(container, (members = new Set()));
  members.add(key);
}

/** Was `container[key]` written as a float literal with an integral value? */
export function isIntegralFloatLiteral(container: object, key: string | number): boolean {
  return integralFloats.get(container)?.has(key) ?? false;
}

/** Set an own enumerable data property, even for keys such as "__proto__". */
export function defineMember(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

class TokenParser {
  private index = 0;
  /** The value just parsed came from a float token. */
  private lastWasFloat = false;
  constructor(private readonly tokens: readonly Token[]) {}

  private next(): Token {
    const token = this.tokens[this.index];
    if (token === undefined) throw jsonParseError('premature EOI');
    this.index++;
    return token;
  }

  private peekType(): TokenType | undefined {
    return this.tokens[this.index]?.type;
  }

  get atEnd(): boolean {
    return this.index >= this.tokens.length;
  }

  value(): JsonValue {
    const token = this.next();
    this.lastWasFloat = token.type === TokenType.Float;
    switch (token.type) {
      case TokenType.LeftCurly:
        return this.object();
      case TokenType.LeftSquare:
        return this.array();
      case TokenType.String:
        return decodeString(token.text!);
      case TokenType.Integer:
        return integerValue(token.text!.toString('latin1'));
      case TokenType.Float:
        return Number(token.text!.toString('latin1'));
      case TokenType.Keyword: {
        const word = token.text!.toString('latin1');
        if (word === 'true') return true;
        if (word === 'false') return false;
        if (word === 'null') return null;
        throw jsonParseError(`invalid keyword '${word}'`);
      }
      default:
        throw jsonParseError('expecting value');
    }
  }

  private object(): JsonValue {
    const result: Record<string, JsonValue> = {};
    if (this.peekType() === TokenType.RightCurly) {
      this.index++;
      return result;
    }
    for (;;) {
      const key = this.value();
      if (typeof key !== 'string') throw jsonParseError('key is not a string in object');
      if (this.next().type !== TokenType.Colon) throw jsonParseError('missing : in object pair');
      const member = this.value();
      if (Object.hasOwn(result, key)) throw jsonParseError('duplicate key');
      defineMember(result, key, member);
      if (this.lastWasFloat && Number.isInteger(member)) markIntegralFloat(result, key);
      const separator = this.next().type;
      if (separator === TokenType.RightCurly) return result;
      if (separator !== TokenType.Comma) throw jsonParseError('expected separator in dict');
    }
  }

  private array(): JsonValue {
    const result: JsonValue[] = [];
    if (this.peekType() === TokenType.RightSquare) {
      this.index++;
      return result;
    }
    for (;;) {
      const item = this.value();
      if (this.lastWasFloat && Number.isInteger(item)) markIntegralFloat(result, result.length);
      result.push(item);
      const separator = this.next().type;
      if (separator === TokenType.RightSquare) return result;
      if (separator !== TokenType.Comma) throw jsonParseError('expected separator in list');
    }
  }
}

/**
 * Parse the tokens of one message into a value. Throws LivebackupError
 * INVALID_ARGUMENT with QEMU's "JSON parse error, ..." text.
 */
export function parseJsonTokens(tokens: readonly Token[]): JsonValue {
  const parser = new TokenParser(tokens);
  const value = parser.value();
  if (!parser.atEnd) throw jsonParseError('expecting value');
  return value;
}
