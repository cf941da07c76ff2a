/** `livebackup img`: the qemu-img-like image tools, one subcommand per file. */
import type { Command } from 'commander';
import type { CommandContext } from './command-context.js';
import { registerImgCompare } from './img-compare.js';
import { registerImgCreate } from './img-create.js';
import { registerImgInfo } from './img-info.js';
import { registerImgMap } from './img-map.js';
import { registerImgResize } from './img-resize.js';

const HELP_FOOTER = `
The subcommands take the same options as their qemu-img namesakes. Formats
are probed from the file's content unless given with -f; supported formats
are qcow2 and raw.

Examples:
  livebackup img create -f qcow2 disk.qcow2 10G
  livebackup img info --output=json disk.qcow2
  livebackup img map disk.qcow2
  livebackup img compare disk.qcow2 copy.raw
  livebackup img resize disk.qcow2 +10G

Run 'livebackup img <subcommand> --help' for its arguments and exit codes.
`;

/** Register `img` and its subcommands on the program. */
export function registerImgCommand(program: Command, context: CommandContext): void {
  const img = program
    .command('img')
    .description('Create, inspect, compare and resize image files (like qemu-img).')
    .addHelpText('after', HELP_FOOTER);
  registerImgCreate(img, context);
  registerImgInfo(img, context);
  registerImgMap(img, context);
  registerImgCompare(img, context);
  registerImgResize(img, context);
}
