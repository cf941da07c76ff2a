/**
 * QAPI types of QEMU 7.2's block-core (and the socket addresses it uses),
 * written in our schema language: BlockdevOptions for `blockdev-add` and
 * `--blockdev`, with the drivers livebackup implements (file, raw, qcow2,
 * null-co, blkdebug, nbd). Children are BlockdevRef alternates: nested
 * options or the node-name of an existing node; `backing` also takes null.
 */
import {
  alternate, bool, enumType, int, int32, lazy, list, nullType, str, struct, uint16, uint32, uint64, union,
  type EnumType, type StructType, type UnionType,
} from '../qmp/schema.js';

/**
 * QAPI BlockdevDriver, restricted to the drivers livebackup implements, so
 * any other driver is refused up front: "Parameter 'driver' does not
 * accept value 'vmdk'" (QEMU's text for a driver it does not know).
 */
export const BlockdevDriver = enumType('BlockdevDriver', ['blkdebug', 'file', 'nbd', 'null-co', 'qcow2', 'raw']);

const OnOffAuto = enumType('OnOffAuto', ['auto', 'on', 'off']);

/** Nested options or a node-name. */
export const BlockdevRef = alternate('BlockdevRef', [lazy(() => BlockdevOptions), str]);
/** Nested options, a node-name, or null (no child). */
export const BlockdevRefOrNull = alternate('BlockdevRefOrNull', [lazy(() => BlockdevOptions), str, nullType]);

const GenericFormat = struct('BlockdevOptionsGenericFormat', { file: BlockdevRef });
const GenericCowFormat = struct('BlockdevOptionsGenericCOWFormat', { '*backing': BlockdevRefOrNull }, GenericFormat);

/** QAPI InetSocketAddress (the port is a string, as in QEMU). */
export const InetSocketAddress = struct('InetSocketAddress', {
  host: str,
  port: str,
  '*numeric': bool,
  '*to': uint16,
  '*ipv4': bool,
  '*ipv6': bool,
  '*keep-alive': bool,
  '*mptcp': bool,
});

/** QAPI UnixSocketAddress. */
export const UnixSocketAddress = struct('UnixSocketAddress', { path: str, '*abstract': bool, '*tight': bool });

const VsockSocketAddress = struct('VsockSocketAddress', { cid: str, port: str });
const FdSocketAddress = struct('String', { str });

/** QAPI SocketAddressType. */
export const SocketAddressType: EnumType = enumType('SocketAddressType', ['inet', 'unix', 'vsock', 'fd']);

/** QAPI SocketAddress: the flat union (`{type: 'unix', path}`). */
export const SocketAddress: UnionType = union('SocketAddress', {
  base: { type: SocketAddressType },
  discriminator: 'type',
  branches: { inet: InetSocketAddress, unix: UnixSocketAddress, vsock: VsockSocketAddress, fd: FdSocketAddress },
});

/** QAPI SocketAddressLegacy: the simple union with a `data` wrapper (`{type: 'unix', data: {path}}`). */
export const SocketAddressLegacy: UnionType = union('SocketAddressLegacy', {
  base: { type: SocketAddressType },
  discriminator: 'type',
  branches: {
    inet: { data: InetSocketAddress },
    unix: { data: UnixSocketAddress },
    vsock: { data: VsockSocketAddress },
    fd: { data: FdSocketAddress },
  },
});

const BlkdebugEvent = enumType('BlkdebugEvent', [
  'l1_update', 'l1_grow_alloc_table', 'l1_grow_write_table', 'l1_grow_activate_table', 'l2_load', 'l2_update',
  'l2_update_compressed', 'l2_alloc_cow_read', 'l2_alloc_write', 'read_aio', 'read_backing_aio', 'read_compressed',
  'write_aio', 'write_compressed', 'vmstate_load', 'vmstate_save', 'cow_read', 'cow_write', 'reftable_load',
  'reftable_grow', 'reftable_update', 'refblock_load', 'refblock_update', 'refblock_update_part', 'refblock_alloc',
  'refblock_alloc_hookup', 'refblock_alloc_write', 'refblock_alloc_write_blocks', 'refblock_alloc_write_table',
  'refblock_alloc_switch_table', 'cluster_alloc', 'cluster_alloc_bytes', 'cluster_free', 'flush_to_os',
  'flush_to_disk', 'pwritev_rmw_head', 'pwritev_rmw_after_head', 'pwritev_rmw_tail', 'pwritev_rmw_after_tail',
  'pwritev', 'pwritev_zero', 'pwritev_done', 'empty_image_prepare', 'l1_shrink_write_table',
  'l1_shrink_free_l2_clusters', 'cor_write', 'cluster_alloc_space', 'none',
]);

const BlockPermission = enumType('BlockPermission', ['consistent-read', 'write', 'write-unchanged', 'resize']);

const BlockdevOptionsBlkdebug: StructType = struct('BlockdevOptionsBlkdebug', {
  image: BlockdevRef,
  '*config': str,
  '*align': int,
  '*max-transfer': int32,
  '*opt-write-zero': int32,
  '*max-write-zero': int32,
  '*opt-discard': int32,
  '*max-discard': int32,
  '*inject-error': list(struct('BlkdebugInjectErrorOptions', {
    event: BlkdebugEvent,
    '*state': int,
    '*iotype': enumType('BlkdebugIOType', ['read', 'write', 'write-zeroes', 'discard', 'flush', 'block-status']),
    '*errno': int,
    '*sector': int,
    '*once': bool,
    '*immediately': bool,
  })),
  '*set-state': list(struct('BlkdebugSetStateOptions', { event: BlkdebugEvent, '*state': int, new_state: int })),
  '*take-child-perms': list(BlockPermission),
  '*unshare-child-perms': list(BlockPermission),
});

const BlockdevOptionsQcow2: StructType = struct('BlockdevOptionsQcow2', {
  '*lazy-refcounts': bool,
  '*pass-discard-request': bool,
  '*pass-discard-snapshot': bool,
  '*pass-discard-other': bool,
  '*overlap-check': enumType('Qcow2OverlapCheckMode', ['none', 'constant', 'cached', 'all']),
  '*cache-size': int,
  '*l2-cache-size': int,
  '*l2-cache-entry-size': int,
  '*refcount-cache-size': int,
  '*cache-clean-interval': int,
  '*data-file': BlockdevRef,
}, GenericCowFormat);

/** QAPI BlockdevOptions, restricted to the drivers livebackup has. */
export const BlockdevOptions: UnionType = union('BlockdevOptions', {
  base: {
    driver: BlockdevDriver,
    '*node-name': str,
    '*discard': enumType('BlockdevDiscardOptions', ['ignore', 'unmap']),
    '*cache': struct('BlockdevCacheOptions', { '*direct': bool, '*no-flush': bool }),
    '*read-only': bool,
    '*auto-read-only': bool,
    '*force-share': bool,
    '*detect-zeroes': enumType('BlockdevDetectZeroesOptions', ['off', 'on', 'unmap']),
  },
  discriminator: 'driver',
  branches: {
    blkdebug: BlockdevOptionsBlkdebug,
    file: {
      filename: str,
      '*pr-manager': str,
      '*locking': OnOffAuto,
      '*aio': enumType('BlockdevAioOptions', ['threads', 'native', 'io_uring']),
      '*aio-max-batch': int,
      '*drop-cache': bool,
      '*x-check-cache-dropped': bool,
    },
    nbd: {
      server: SocketAddress,
      '*export': str,
      '*tls-creds': str,
      '*tls-hostname': str,
      '*x-dirty-bitmap': str,
      '*reconnect-delay': uint32,
      '*open-timeout': uint32,
    },
    'null-co': { '*size': int, '*latency-ns': uint64, '*read-zeroes': bool },
    qcow2: BlockdevOptionsQcow2,
    raw: struct('BlockdevOptionsRaw', { '*offset': int, '*size': int }, GenericFormat),
  },
});
