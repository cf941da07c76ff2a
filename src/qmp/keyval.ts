/**
 * QEMU's keyval syntax for command-line options (`--blockdev`, `--export`,
 * `--nbd-server`, `--monitor`):
 *
 *   qcow2,node-name=disk,file.driver=file,file.filename=/x,,y.qcow2
 *
 * - parameters are `key=value`, separated by ','; ',,' in a value is a
 *   literal comma;
 * - dotted keys build nested objects (`file.filename=/x` gives
 *   `{file: {filename: '/x'}}`); numeric fragments build lists
 *   (`set-state.0.event=...`), which must be dense;
 * - the first parameter may omit `key=` when the option has an implied key
 *   (`qcow2,...` means `driver=qcow2,...`);
 * - `help` or `?` without '=' asks for help;
 * - a repeated key takes its last value.
 *
 * Every value stays a string; schema-validator.ts (mode 'keyval') converts
 * them by type.
 */
import { LivebackupError } from '../errors.js';
import { defineMember } from './json-parser.js';

/** The parsed tree: strings, nested objects and lists. */
export type KeyvalValue = string | KeyvalObject | KeyvalValue[];
export interface KeyvalObject {
  [key: string]: KeyvalValue;
}

export interface KeyvalResult {
  readonly options: KeyvalObject;
  /** `help` or `?` was given. */
  readonly help: boolean;
}

const MAX_FRAGMENT_LENGTH = 127;
const NAME_FRAGMENT = /^[A-Za-z][A-Za-z0-9_-]*$/;
const INDEX_FRAGMENT = /^[0-9]+$/;

const invalid = (message: string): LivebackupError => new LivebackupError('INVALID_ARGUMENT', message);
const inconsistent = (prefix: string): LivebackupError => invalid(`Parameters '${prefix}.*' used inconsistently`);

/** Read a value up to an unescaped ',' (',,' is a literal comma). Returns the value and the index after its end. */
function readValue(text: string, start: number): { value: string; end: number } {
  let value = '';
  let i = start;
  for (;;) {
    const comma = text.indexOf(',', i);
    if (comma < 0) return { value: value + text.slice(i), end: text.length };
    value += text.slice(i, comma);
    if (text[comma + 1] === ',') {
      value += ',';
      i = comma + 2;
      continue;
    }
    return { value, end: comma };
  }
}

function splitKey(key: string): string[] {
  const fragments = key.split('.');
  fragments.forEach((fragment, index) => {
    if (fragment.length > MAX_FRAGMENT_LENGTH) throw invalid(`Parameter '${fragment}' is too long`);
    const valid = NAME_FRAGMENT.test(fragment) || (index > 0 && INDEX_FRAGMENT.test(fragment));
    if (!valid) throw invalid(`Invalid parameter '${key}'`);
  });
  return fragments;
}

function insert(root: KeyvalObject, fragments: readonly string[], value: string): void {
  let node = root;
  for (let i = 0; i < fragments.length - 1; i++) {
    const fragment = fragments[i]!;
    const existing = Object.hasOwn(node, fragment) ? node[fragment] : undefined;
    if (existing === undefined) {
      const created: KeyvalObject = {};
      defineMember(node, fragment, created);
      node = created;
    } else if (typeof existing === 'string') {
      throw inconsistent(fragments.slice(0, i + 1).join('.'));
    } else {
      node = existing as KeyvalObject;
    }
  }
  const leaf = fragments[fragments.length - 1]!;
  if (Object.hasOwn(node, leaf) && typeof node[leaf] !== 'string') throw inconsistent(fragments.join('.'));
  defineMember(node, leaf, value);
}

/** Turn objects whose keys are all list indexes into dense lists, depth first. */
function listify(node: KeyvalObject, path: string): KeyvalValue {
  for (const [key, child] of Object.entries(node)) {
    if (typeof child !== 'string') defineMember(node, key, listify(child as KeyvalObject, path === '' ? key : `${path}.${key}`));
  }
  const keys = Object.keys(node);
  const indexes = keys.filter((key) => INDEX_FRAGMENT.test(key));
  if (indexes.length === 0) return node;
  if (indexes.length !== keys.length) throw inconsistent(path);
  const items: KeyvalValue[] = [];
  const byIndex = new Map(indexes.map((key) => [Number(key), node[key]!]));
  for (let i = 0; i < keys.length; i++) {
    const item = byIndex.get(i);
    if (item === undefined) throw invalid(`Parameter '${path}.${i}' missing`);
    items.push(item);
  }
  return items;
}

/**
 * Parse one keyval option string. `impliedKey` names the key of a first
 * parameter given without `key=`. Throws LivebackupError INVALID_ARGUMENT
 * with QEMU's texts ("Invalid parameter 'a..b'", "Expected '=' after
 * parameter 'x'", "Parameters 'file.*' used inconsistently", ...).
 */
export function parseKeyval(text: string, impliedKey?: string): KeyvalResult {
  const root: KeyvalObject = {};
  let help = false;
  let position = 0;
  let first = true;
  while (position < text.length) {
    const equals = text.indexOf('=', position);
    const comma = text.indexOf(',', position);
    const keyEnd = equals >= 0 && (comma < 0 || equals < comma) ? equals : -1;
    if (keyEnd < 0) {
      const { value, end } = readValue(text, position);
      if (value === '') {
        throw invalid(`Invalid parameter ''`);
      } else if (value === 'help' || value === '?') {
        help = true;
      } else if (first && impliedKey !== undefined) {
        insert(root, [impliedKey], value);
      } else {
        throw invalid(`Expected '=' after parameter '${value}'`);
      }
      position = end + 1;
    } else {
      const fragments = splitKey(text.slice(position, keyEnd));
      const { value, end } = readValue(text, keyEnd + 1);
      insert(root, fragments, value);
      position = end + 1;
    }
    first = false;
  }
  return { options: listify(root, '') as KeyvalObject, help };
}
