// Builds the optional native SEEK_DATA/SEEK_HOLE helper (native/host-seek.c)
// with node-gyp at install time. Any failure prints one warning line and
// exits 0: livebackup works without the helper, it then reads the holes of
// sparse raw images in full.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The node-gyp entry script: npm's choice when it gives one, else the one bundled with npm next to this node. */
function findNodeGyp() {
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && existsSync(fromNpm)) return fromNpm;
  const prefix = dirname(dirname(process.execPath));
  const candidates = [
    join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    join(dirname(process.execPath), 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  return candidates.find((candidate) => existsSync(candidate));
}

/**
 * node-gyp arguments naming the Node headers: none when npm passes its
 * nodedir setting itself, else the headers installed with this node (so
 * the build needs no download), else none (node-gyp fetches them).
 */
function nodedirArguments() {
  if (process.env.npm_config_nodedir) return [];
  const prefix = dirname(dirname(process.execPath));
  return existsSync(join(prefix, 'include', 'node', 'common.gypi')) ? [`--nodedir=${prefix}`] : [];
}

function warn(reason) {
  console.warn(`livebackup: the native SEEK_DATA helper was not built (${reason}); sparse raw images will be read in full`);
}

function main() {
  if (process.env.LIVEBACKUP_SKIP_NATIVE_BUILD === '1') return warn('LIVEBACKUP_SKIP_NATIVE_BUILD=1');
  const nodeGyp = findNodeGyp();
  if (!nodeGyp) return warn('node-gyp not found');
  const result = spawnSync(process.execPath, [nodeGyp, 'rebuild', ...nodedirArguments()], {
    cwd: packageRoot,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (result.error) return warn(`node-gyp could not be started: ${result.error.message}`);
  if (result.status !== 0) {
    const lines = `${result.stderr}\n${result.stdout}`.split('\n').filter((line) => /error/i.test(line));
    const detail = lines.find((line) => !/gyp ERR! (stack|System|command|cwd|node -v|node-gyp -v|not ok)/.test(line)) ?? `exit code ${result.status}`;
    return warn(`node-gyp rebuild failed: ${detail.trim()}`);
  }
  if (!existsSync(join(packageRoot, 'build', 'Release', 'livebackup_host_seek.node'))) {
    return warn('node-gyp built no livebackup_host_seek.node on this platform');
  }
}

try {
  main();
} catch (error) {
  warn(error instanceof Error ? error.message : String(error));
}
process.exitCode = 0;
