/** `livebackup img info`: describe an image file, like `qemu-img info`. */
import type { Command } from 'commander';
import type { BlockNode } from '../block/block-node.js';
import type { CommandContext } from './command-context.js';
import { collectImageInfo, renderImageInfoHuman, renderImageInfoJson, type ImageInfo } from './image-info.js';
import { withImages } from './image-session.js';
import { imageFormatOption, outputFormatOption, type OutputFormat } from './common-options.js';

interface InfoFlags {
  format?: string;
  output: OutputFormat;
  backingChain: boolean;
}

const HELP_FOOTER = `
Prints the format, virtual size, allocated size on the host, cluster size,
backing file and format-specific facts of FILE. Without --backing-chain the
backing file is not opened, so this works even when it is missing.
--output=json prints the same keys as 'qemu-img info --output=json'
(virtual-size, filename, format, cluster-size, actual-size,
backing-filename, backing-filename-format, full-backing-filename,
dirty-flag, format-specific); with --backing-chain, a list of them.

Exit codes: 0 success, 1 the image cannot be read, 2 bad arguments.

Examples:
  livebackup img info disk.qcow2
  livebackup img info --output=json -f raw disk.img
  livebackup img info --backing-chain overlay.qcow2
`;

/** Register `img info` under the `img` command. */
export function registerImgInfo(img: Command, context: CommandContext): void {
  img
    .command('info')
    .description('Show the format, sizes and backing file of an image.')
    .argument('<file>', 'image file')
    .addOption(imageFormatOption())
    .option('--backing-chain', 'also describe every image of the backing chain, top first', false)
    .addOption(outputFormatOption())
    .addHelpText('after', HELP_FOOTER)
    .action(async (file: string, flags: InfoFlags) => {
      const spec = { filename: file, format: flags.format, withoutBacking: !flags.backingChain };
      const infos = await withImages([spec], ([node]) => (flags.backingChain ? describeChain(node!, file) : describeOne(node!, file)));
      if (flags.output === 'json') {
        context.out(renderImageInfoJson(flags.backingChain ? infos : infos[0]!));
      } else {
        context.out(infos.map(renderImageInfoHuman).join('\n'));
      }
    });
}

async function describeOne(node: BlockNode, filename: string): Promise<ImageInfo[]> {
  return [await collectImageInfo(node, filename)];
}

/** The info of `top` and of each backing image below it, named as qemu-img names them. */
async function describeChain(top: BlockNode, filename: string): Promise<ImageInfo[]> {
  const infos: ImageInfo[] = [];
  let name = filename;
  for (let node: BlockNode | undefined = top; node; node = node.backing) {
    const info = await collectImageInfo(node, name);
    infos.push(info);
    const hostFilename = node.backing?.file?.options.filename;
    name = info['full-backing-filename'] ?? (typeof hostFilename === 'string' ? hostFilename : '');
  }
  return infos;
}
