/** The `--output=human|json` option that `img info` and `img map` share, as qemu-img spells it. */
import { Option } from 'commander';

export type OutputFormat = 'human' | 'json';

/** A new `--output <format>` option accepting human (the default) or json. */
export function outputFormatOption(): Option {
  return new Option('--output <format>', 'output format').choices(['human', 'json']).default('human');
}
