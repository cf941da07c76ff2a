/**
 * Format options as qemu-img takes them with -o: "key=value,key=value",
 * where a comma inside a value is written twice (",,").
 */
import { LivebackupError } from '../errors.js';

/**
 * Parse one or more -o arguments into one record (a later key replaces an
 * earlier one). Throws INVALID_ARGUMENT naming a malformed item.
 */
export function parseFormatOptions(args: readonly string[]): Record<string, string> {
  const options: Record<string, string> = {};
  for (const arg of args) {
    for (const item of splitItems(arg)) {
      const equals = item.indexOf('=');
      if (equals <= 0) {
        throw new LivebackupError('INVALID_ARGUMENT', `Invalid format option '${item}': expected key=value (in '-o ${arg}')`);
      }
      options[item.slice(0, equals)] = item.slice(equals + 1);
    }
  }
  return options;
}

/** Split at single commas; ",," stands for a literal comma. Empty items are dropped. */
function splitItems(arg: string): string[] {
  const items: string[] = [];
  let current = '';
  for (let index = 0; index < arg.length; index++) {
    const char = arg[index];
    if (char !== ',') {
      current += char;
    } else if (arg[index + 1] === ',') {
      current += ',';
      index++;
    } else {
      items.push(current);
      current = '';
    }
  }
  items.push(current);
  return items.filter((item) => item !== '');
}
