// Coverage-guided entry for Jazzer.js (optional; not a dependency of the project):
//   npm install --no-save @jazzer.js/core
//   JAZZER_TARGET=qcow2 npx jazzer fuzz/jazzer-target.mjs fuzz/corpus-qcow2 -- -max_total_time=60
// JAZZER_TARGET picks qcow2, nbd or qmp (the same targets `npm run fuzz` mutates); a case
// that the target reports as failing throws, which Jazzer.js records as a finding.
import { SeededRandom } from '../dist/test/helpers/random.js';

const name = process.env.JAZZER_TARGET ?? 'qcow2';
const modules = {
  qcow2: async () => (await import('../dist/test/reliability/fuzz/qcow2-fuzz-target.js')).qcow2FuzzTarget,
  nbd: async () => new (await import('../dist/test/reliability/fuzz/nbd-fuzz-target.js')).NbdFuzzTarget(),
  qmp: async () => new (await import('../dist/test/reliability/fuzz/qmp-fuzz-target.js')).QmpFuzzTarget(),
};
const target = await modules[name]();
await target.seeds();
let count = 0;

/** One input from the fuzzer. */
export async function fuzz(data) {
  const failure = await target.run(new Uint8Array(data), new SeededRandom(count++));
  if (failure !== undefined) throw new Error(`${name}: ${failure}`);
}
