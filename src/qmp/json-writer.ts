/**
 * Serialises values the way QEMU writes QMP output: `{"a": 1, "b": [1, 2]}`
 * (a space after ':' and ','), object members in QDict order (see
 * qdict-order.ts), every non-ASCII character and control character
 * escaped as upper-case `\uXXXX`, bigint written exactly. Members whose
 * value is undefined are left out, as JSON.stringify does.
 */
import { qdictOrder } from './qdict-order.js';

function escapeString(text: string): string {
  let out = '"';
  let runStart = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0x20 && code < 0x7f && code !== 0x22 && code !== 0x5c) continue;
    out += text.slice(runStart, i);
    runStart = i + 1;
    switch (code) {
      case 0x22: out += '\\"'; break;
      case 0x5c: out += '\\\\'; break;
      case 0x08: out += '\\b'; break;
      case 0x0c: out += '\\f'; break;
      case 0x0a: out += '\\n'; break;
      case 0x0d: out += '\\r'; break;
      case 0x09: out += '\\t'; break;
      default: out += `\\u${code.toString(16).toUpperCase().padStart(4, '0')}`;
    }
  }
  return `${out}${text.slice(runStart)}"`;
}

/**
 * A number as QEMU prints it: integers in full, other doubles like C's
 * "%.17g" (17 significant digits, trailing zeros dropped, exponent form
 * outside 1e-4..1e17). Non-finite values, which JSON cannot express, are
 * written as null.
 */
function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return 'null';
  if (Object.is(value, -0)) return '-0';
  if (Number.isSafeInteger(value)) return String(value);
  const [mantissa, exponentText] = value.toExponential(16).split('e') as [string, string];
  const exponent = Number(exponentText);
  const trim = (digits: string): string => (digits.includes('.') ? digits.replace(/0+$/, '').replace(/\.$/, '') : digits);
  if (exponent < -4 || exponent >= 17) {
    const magnitude = String(Math.abs(exponent)).padStart(2, '0');
    return `${trim(mantissa)}e${exponent < 0 ? '-' : '+'}${magnitude}`;
  }
  return trim(value.toFixed(16 - exponent));
}

function writeValue(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return escapeString(value);
    case 'number':
      return formatNumber(value);
    case 'bigint':
      return value.toString();
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) return `[${value.map((item) => writeValue(item ?? null)).join(', ')}]`;
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record).filter((key) => record[key] !== undefined);
      const parts = qdictOrder(keys).map((key) => `${escapeString(key)}: ${writeValue(record[key])}`);
      return `{${parts.join(', ')}}`;
    }
    default:
      return 'null';
  }
}

/** One QMP output message as text (without the CRLF that ends each message on the wire). */
export function toQmpJson(value: unknown): string {
  return writeValue(value);
}
