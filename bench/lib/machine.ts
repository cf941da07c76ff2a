/** Facts about the machine and tools a bench run is measured on. */
import { cpus, freemem, totalmem } from 'node:os';
import { runTool } from './processes.js';
import { rssMethod } from './processes.js';

async function firstLine(argv: readonly string[]): Promise<string> {
  try {
    return (await runTool(argv)).split('\n')[0]!.trim();
  } catch (error) {
    return `unavailable (${(error as Error).message.split('\n')[0]})`;
  }
}

/** One line per fact: CPUs, memory, Node, QEMU, libnbd, how RSS is measured. */
export async function machineFacts(): Promise<string[]> {
  const GiB = 2 ** 30;
  return [
    `nproc: ${cpus().length} (${cpus()[0]?.model ?? 'unknown CPU'})`,
    `memory: ${(totalmem() / GiB).toFixed(1)} GiB total, ${(freemem() / GiB).toFixed(1)} GiB free at start`,
    `node: ${process.version}`,
    `qemu: ${await firstLine(['qemu-storage-daemon', '--version'])}`,
    `libnbd: ${await firstLine(['nbdcopy', '--version'])}`,
    `kernel: ${await firstLine(['uname', '-sr'])}`,
    `peak RSS measured with: ${rssMethod}`,
  ];
}
