/** `livebackup img compare`: compare the content of two images, like `qemu-img compare`. */
import type { Command } from 'commander';
import type { CommandContext } from './command-context.js';
import { reportError } from './cli-errors.js';
import { compareImages } from './image-compare.js';
import { withImages } from './image-session.js';

/** `img compare` exit codes, as qemu-img's. */
export const COMPARE_IDENTICAL = 0;
export const COMPARE_DIFFERENT = 1;
export const COMPARE_ERROR = 2;

const HELP_FOOTER = `
Compares what a guest would read from FILE1 and FILE2, whatever their
formats and allocation: "Images are identical." or "Content mismatch at
offset N!" with N the first differing byte. When the sizes differ (a warning
says so), the images count as identical only if the longer one reads as
zeroes past the end of the shorter one. With -q nothing is printed (errors
still go to stderr).

Exit codes: 0 identical, 1 different, 2 error (missing file, bad arguments...).

Examples:
  livebackup img compare disk.qcow2 backup.qcow2
  livebackup img compare -f qcow2 -F raw disk.qcow2 disk.raw
  livebackup img compare -q a.qcow2 b.qcow2 && echo same
`;

/** Register `img compare` under the `img` command. */
export function registerImgCompare(img: Command, context: CommandContext): void {
  img
    .command('compare')
    .description('Check whether two images have the same content.')
    .argument('<file1>', 'first image')
    .argument('<file2>', 'second image')
    .option('-f, --format <format>', 'format of file1 (default: probed)')
    .option('-F, --format2 <format>', 'format of file2 (default: probed)')
    .option('-q, --quiet', 'print nothing; only the exit code tells the result', false)
    .addHelpText('after', HELP_FOOTER)
    .action(async (file1: string, file2: string, flags: { format?: string; format2?: string; quiet: boolean }) => {
      const say = (text: string) => {
        if (!flags.quiet) context.out(text);
      };
      try {
        const result = await withImages(
          [
            { filename: file1, format: flags.format },
            { filename: file2, format: flags.format2 },
          ],
          ([a, b]) => compareImages(a!, b!),
        );
        if (result.sizeMismatch) say('Warning: Image size mismatch!\n');
        if (result.identical) {
          say('Images are identical.\n');
          context.setExitCode(COMPARE_IDENTICAL);
        } else {
          say(`Content mismatch at offset ${result.mismatchOffset}!\n`);
          context.setExitCode(COMPARE_DIFFERENT);
        }
      } catch (error) {
        reportError(context, error);
        context.setExitCode(COMPARE_ERROR);
      }
    });
}
