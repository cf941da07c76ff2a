/**
 * Scenario 5: reading a whole export with `nbdcopy ... null:`, livebackup's
 * NBD server against qemu-nbd serving the same qcow2 image. Only the copy
 * is timed (server start and stop are not); nbdcopy skips holes by block
 * status on both sides, so throughput counts the image's data bytes. Each
 * server is fresh, and serves a second copy right after the first: the
 * first shows a just-started server (our JIT compiler is still at work),
 * the second one that has been running, as a daemon usually has.
 */
import { benchImage, describeLayout, type BenchImage } from '../lib/bench-images.js';
import { launchLivebackupDaemon, launchQemuNbd, type DaemonLauncher } from '../lib/exporting-daemon.js';
import { dataBytes } from '../lib/images.js';
import { runRounds, type Contender } from '../lib/pairs.js';
import { runTool } from '../lib/processes.js';
import { compareContenders, readThroughput } from '../lib/report.js';
import type { Scenario, ScenarioContext } from '../lib/scenario.js';

const NAME = 'nbd-read';
const OURS = 'livebackup NBD server';
const PEER = 'qemu-nbd';

function readerContender(context: ScenarioContext, label: string, launch: DaemonLauncher, image: BenchImage): Contender {
  return {
    label,
    async run() {
      const server = await launch({ image, writable: false, scratchDir: context.workspace.dir });
      let seconds: number;
      let secondCopySeconds: number;
      try {
        seconds = await timedCopy(server.uri);
        secondCopySeconds = await timedCopy(server.uri);
      } catch (error) {
        await server.quit().catch(() => undefined);
        throw error;
      }
      const lifetime = await server.quit();
      return { ...lifetime, seconds, extra: { secondCopySeconds } };
    },
  };
}

/** Seconds one `nbdcopy URI null:` takes. */
async function timedCopy(uri: string): Promise<number> {
  const started = performance.now();
  await runTool(['nbdcopy', uri, 'null:']);
  return (performance.now() - started) / 1000;
}

export const nbdRead: Scenario = {
  name: NAME,
  title: 'nbdcopy of a whole export to null:',
  async run(context) {
    const image = await benchImage(context, 'full', 'qcow2');
    const results = await runRounds([readerContender(context, OURS, launchLivebackupDaemon, image), readerContender(context, PEER, launchQemuNbd, image)], {
      rounds: context.scale.rounds,
      warmup: context.scale.warmup,
      log: context.log,
    });
    return {
      name: NAME,
      title: this.title,
      rows: [
        compareContenders(results, {
          scenario: NAME,
          comparison: 'nbdcopy to null: throughput vs qemu-nbd',
          metric: 'throughput',
          ours: OURS,
          peer: PEER,
          read: readThroughput(dataBytes(image.layout)),
          target: { kind: 'at-least', limit: 0.9 },
        }),
        compareContenders(results, {
          scenario: NAME,
          comparison: 'second nbdcopy from the same server (warmed up) vs qemu-nbd',
          metric: 'throughput',
          ours: OURS,
          peer: PEER,
          read: readThroughput(dataBytes(image.layout), 'secondCopySeconds'),
        }),
      ],
      checks: [],
      notes: [`image: qcow2 ${describeLayout(image.layout)}; throughput counts data bytes; peak RSS and CPU are the server's whole lifetime`],
    };
  },
};
