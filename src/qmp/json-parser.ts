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

/** Decode the body of a string token (quotes included in `text`). */
function decodeString(text: Buffer): string {
  let result = '';
  let runStart = 1;
  const end = text.length - 1;
  const flushRun = (until: number): void => {
    if (until <= runStart) return;
    try {
      result += utf8.decode(text.subarray(runStart, until));
    } catch {
      throw jsonParseError('invalid UTF-8 sequence in string');
    }
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
        const unit = readHex4(text, i, end);
        i += 4;
        if (unit >= 0xd800 && unit <= 0xdbff) {
          // A high surrogate must be followed by an escaped low surrogate.
          const low = text[i] === 0x5c && text[i + 1] === 0x75 ? readHex4(text, i + 2, end) : -1;
          if (low < 0xdc00 || low > 0xdfff) throw invalidUnicode(text, i - 4);
          result += String.fromCharCode(unit, low);
          i += 6;
        } else if (unit >= 0xdc00 && unit <= 0xdfff) {
          throw invalidUnicode(text, i - 4);
        } else {
          result += String.fromCharCode(unit);
        }
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

function readHex4(text: Buffer, at: number, end: number): number {
  if (at + 4 > end) throw jsonParseError('invalid hex escape sequence in string');
  const digits = text.toString('latin1', at, at + 4);
  if (!/^[0-9a-fA-F]{4}$/.test(digits)) throw jsonParseError('invalid hex escape sequence in string');
  return parseInt(digits, 16);
}

function invalidUnicode(text: Buffer, hexAt: number): LivebackupError {
  return jsonParseError(`\\u${text.toString('latin1', hexAt, hexAt + 4)} is not a valid Unicode character`);
}

function integerValue(text: string): number | bigint {
  const value = Number(text);
  if (Number.isSafeInteger(value)) return value === 0 ? 0 : value;
  const exact = BigInt(text);
  if (exact >= INT64_MIN && exact <= UINT64_MAX) return exact;
  return value;
}

/** Set an own enumerable data property, even for keys such as "__proto__". */
export function defineMember(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

class TokenParser {
  private index = 0;
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
      result.push(this.value());
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
