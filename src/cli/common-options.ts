/** Options several `img` subcommands share, spelled as qemu-img spells them. */
import { Option } from 'commander';

export type OutputFormat = 'human' | 'json';

/** A new `--output <format>` option accepting human (the default) or json. */
export function outputFormatOption(): Option {
  return new Option('--output <format>', 'output format').choices(['human', 'json']).default('human');
}

/** A new `-f, --format <format>` option naming the format of an existing image (probed when absent). */
export function imageFormatOption(): Option {
  return new Option('-f, --format <format>', 'image format (default: probed from the file)');
}
