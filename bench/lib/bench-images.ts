/**
 * The images scenarios share, by role: built on first use in the workspace
 * from seeded data (one seed per layout, so raw and qcow2 forms of a layout
 * hold the same bytes).
 */
import { convertToQcow2, writeRawImage, type ImageLayout } from './images.js';
import type { ScenarioContext } from './scenario.js';

/** Which layout of the scale an image has. */
export type ImageRole = 'full' | 'sparse' | 'sparseRaw' | 'huge';
export type ImageFormat = 'raw' | 'qcow2';

const SEEDS: Readonly<Record<ImageRole, number>> = { full: 1, sparse: 2, sparseRaw: 4, huge: 3 };

export interface BenchImage {
  readonly path: string;
  readonly format: ImageFormat;
  readonly layout: ImageLayout;
}

/** The image of `role` in `format`, built if this run has not built it yet. */
export async function benchImage(context: ScenarioContext, role: ImageRole, format: ImageFormat): Promise<BenchImage> {
  const layout = context.scale[role];
  const { workspace, log } = context;
  const rawPath = await workspace.image(`${role}.raw`, async (path) => {
    log(`  building ${path} (${describeLayout(layout)})`);
    await writeRawImage(path, layout, SEEDS[role]);
  });
  if (format === 'raw') return { path: rawPath, format, layout };
  const path = await workspace.image(`${role}.qcow2`, async (target) => {
    log(`  building ${target}`);
    await convertToQcow2(rawPath, target);
  });
  return { path, format, layout };
}

/** "2 GiB virtual, 1024 MiB data in 64 MiB extents". */
export function describeLayout(layout: ImageLayout): string {
  const gib = layout.virtualBytes / 2 ** 30;
  const mib = (layout.count * layout.extentBytes) / 2 ** 20;
  return `${gib >= 1 ? `${gib} GiB` : `${gib * 1024} MiB`} virtual, ${mib} MiB data in ${layout.extentBytes / 2 ** 20} MiB extents`;
}
