/**
 * One command-line option argument (`--blockdev ...`, `--export ...`) as
 * qemu-storage-daemon reads it: JSON when it starts with '{', keyval
 * otherwise, then checked against the option's QAPI type.
 */
import { LivebackupError } from '../errors.js';
import { parseJsonText } from './json-message-stream.js';
import { parseKeyval } from './keyval.js';
import type { QapiType } from './schema.js';
import { validateValue } from './schema-validator.js';

export interface OptionArgumentOptions {
  /** Key of a first keyval parameter given without `key=` (e.g. 'driver'). */
  readonly impliedKey?: string;
}

/**
 * Parse and validate an option argument. Throws LivebackupError
 * INVALID_ARGUMENT with QEMU's text; `help` is refused with
 * "Help is not available for this option".
 */
export function parseOptionArgument<T = Record<string, unknown>>(text: string, type: QapiType, options: OptionArgumentOptions = {}): T {
  if (text.trimStart().startsWith('{')) return validateValue<T>(type, parseJsonText(text), 'qmp');
  const parsed = parseKeyval(text, options.impliedKey);
  if (parsed.help) throw new LivebackupError('INVALID_ARGUMENT', 'Help is not available for this option');
  return validateValue<T>(type, parsed.options, 'keyval');
}
