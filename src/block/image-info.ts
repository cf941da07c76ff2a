/**
 * QAPI ImageInfo: what `qemu-img info --output=json` prints and what
 * query-named-block-nodes reports under `image`. One type for the CLI and
 * the QMP commands; each fills it in for its own front end.
 */
export interface ImageInfo {
  'virtual-size': number;
  filename: string;
  'cluster-size'?: number;
  format: string;
  /** Bytes allocated on the host for the image file. */
  'actual-size': number;
  'format-specific'?: { type: string; data: Record<string, unknown> };
  /** The backing file name resolved against the image's folder. */
  'full-backing-filename'?: string;
  'backing-filename'?: string;
  'backing-filename-format'?: string;
  /** Absent for drivers that keep no such flag (QEMU: no bdrv_get_info). */
  'dirty-flag'?: boolean;
  /** The backing image's info, when the whole chain is described. */
  'backing-image'?: ImageInfo;
}
