/**
 * Subsets of QEMU 7.2's blockdev-add and block-export-add argument types,
 * described with our schema language: enough members to provoke every kind
 * of validation error the same way against livebackup and against
 * qemu-storage-daemon.
 */
import { alternate, enumType, int, int32, lazy, list, nullType, size, str, struct, bool, uint16, uint64, union, type UnionType } from '../../src/qmp/schema.js';

export const BlockdevDriver = enumType('BlockdevDriver', [
  'blkdebug', 'blklogwrites', 'blkreplay', 'blkverify', 'bochs', 'cloop', 'compress', 'copy-before-write',
  'copy-on-read', 'dmg', 'file', 'snapshot-access', 'ftp', 'ftps', 'gluster', 'host_cdrom', 'host_device',
  'http', 'https', 'iscsi', 'luks', 'nbd', 'nfs', 'null-aio', 'null-co', 'nvme', 'parallels', 'preallocate',
  'qcow', 'qcow2', 'qed', 'quorum', 'raw', 'rbd', 'replication', 'ssh', 'throttle', 'vdi', 'vhdx', 'vmdk', 'vpc', 'vvfat',
]);

const BlockdevRef = alternate('BlockdevRef', [lazy(() => BlockdevOptions), str]);
const BlockdevRefOrNull = alternate('BlockdevRefOrNull', [lazy(() => BlockdevOptions), str, nullType]);

const GenericFormat = struct('BlockdevOptionsGenericFormat', { file: BlockdevRef });
const GenericCowFormat = struct('BlockdevOptionsGenericCOWFormat', { '*backing': BlockdevRefOrNull }, GenericFormat);

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
    'null-co': { '*size': int, '*latency-ns': uint64, '*read-zeroes': bool },
    file: { filename: str, '*aio': enumType('BlockdevAioOptions', ['threads', 'native', 'io_uring']) },
    raw: GenericFormat,
    qcow2: struct('BlockdevOptionsQcow2', { '*lazy-refcounts': bool }, GenericCowFormat),
    blkdebug: {
      image: BlockdevRef,
      '*max-transfer': int32,
      '*set-state': list(struct('BlkdebugSetStateOptions', {
        event: enumType('BlkdebugEvent', ['l1_update', 'read_aio', 'write_aio']),
        '*state': int,
        new_state: int,
      })),
    },
  },
});

/** `--blockdev` arguments qemu-storage-daemon refuses, with the exact message it prints. */
export const BLOCKDEV_OPTION_REFUSALS: ReadonlyArray<readonly [argument: string, message: string]> = [
  ['null-co,node-name=x,size=abc', "Parameter 'size' expects integer"],
  ['null-co,node-name=x,size=1k', "Parameter 'size' expects integer"],
  ['null-co,node-name=x,size=1e3', "Parameter 'size' expects integer"],
  ['null-co,node-name=x,size=', "Parameter 'size' expects integer"],
  ['null-co,node-name=x,latency-ns=abc', "Parameter 'latency-ns' expects integer"],
  ['null-co,node-name=x,read-zeroes=maybe', "Parameter 'read-zeroes' expects 'on' or 'off'"],
  ['null-co,node-name=x,read-zeroes=', "Parameter 'read-zeroes' expects 'on' or 'off'"],
  ['null-co,node-name=x,bogus=1', "Parameter 'bogus' is unexpected"],
  ['null-co,node-name=x,bogus=1,alpha=2,zeta=3', "Parameter 'alpha' is unexpected"],
  ['null-co,zz=1,node-name=x,foo=2,bar=3,size=5', "Parameter 'bar' is unexpected"],
  ['node-name=x', "Parameter 'driver' is missing"],
  ['', "Parameter 'driver' is missing"],
  ['null-co,node-name=x,cache.direct=x', "Parameter 'cache.direct' expects 'on' or 'off'"],
  ['null-co,node-name=x,cache=x', "Invalid parameter type for 'cache', expected: object"],
  ['null-co,node-name=x,cache.direct=on,cache=1', "Parameters 'cache.*' used inconsistently"],
  ['null-co,node-name=x,size=1,,2', "Parameter 'size' expects integer"],
  ['null-co,node-name=x,size', "Expected '=' after parameter 'size'"],
  ['nul,l', "Expected '=' after parameter 'l'"],
  [',null-co', "Invalid parameter ''"],
  ['null-co,node-name=x,a..b=1', "Invalid parameter 'a..b'"],
  ['null-co,node-name=x,_a=1', "Invalid parameter '_a'"],
  ['raw,node-name=r,file.driver=null-co,file.size=1M', "Parameter 'file.size' expects integer"],
  ['blkdebug,node-name=e,image=n0,set-state.0.event=x', "Parameter 'event' does not accept value 'x'"],
  ['blkdebug,node-name=e,image=n0,set-state.1.event=x', "Parameter 'set-state.0' missing"],
  ['blkdebug,node-name=e,image=n0,set-state.0.event=read_aio,set-state.0.new_state=1,set-state.0.state=s', "Parameter 'set-state.0.state' expects integer"],
  ['{"driver":"null-co","node-name":"x","size":"1k"}', "Invalid parameter type for 'size', expected: integer"],
  ['{"driver":"null-co","node-name":"x","bogus":1}', "Parameter 'bogus' is unexpected"],
  ['{"driver":"null-co"', 'JSON parse error, premature EOI'],
  ['{"driver":"null-co"} {}', 'Expecting at most one JSON value'],
  ['null-co,node-name=x,help', 'Help is not available for this option'],
];

const SocketAddress = union('SocketAddress', {
  base: { type: enumType('SocketAddressType', ['inet', 'unix', 'vsock', 'fd']) },
  discriminator: 'type',
  branches: {
    inet: { host: str, port: str, '*numeric': bool, '*to': uint16, '*ipv4': bool, '*ipv6': bool, '*keep-alive': bool, '*mptcp': bool },
    unix: { path: str, '*abstract': bool, '*tight': bool },
    fd: { str },
  },
});

export const BlockExportOptions = union('BlockExportOptions', {
  base: {
    type: enumType('BlockExportType', ['nbd', 'vhost-user-blk', 'fuse', 'vduse-blk']),
    id: str,
    '*fixed-iothread': bool,
    '*iothread': str,
    'node-name': str,
    '*writable': bool,
    '*writethrough': bool,
  },
  discriminator: 'type',
  branches: {
    nbd: {
      '*name': str,
      '*description': str,
      '*bitmaps': list(alternate('BlockDirtyBitmapOrStr', [str, struct('BlockDirtyBitmap', { node: str, name: str })])),
      '*allocation-depth': bool,
    },
    'vhost-user-blk': { addr: SocketAddress, '*logical-block-size': size, '*num-queues': uint16 },
  },
});

/** `--export` arguments qemu-storage-daemon refuses, with the exact message it prints. */
export const EXPORT_OPTION_REFUSALS: ReadonlyArray<readonly [argument: string, message: string]> = [
  ['vhost-user-blk,id=e,node-name=n0,addr.type=unix,addr.path=/nonexistent/vu.sock,logical-block-size=abc', "Parameter 'logical-block-size' expects size"],
  ['vhost-user-blk,id=e,node-name=n0,addr.type=unix,addr.path=/nonexistent/vu.sock,logical-block-size=1.5', "Parameter 'logical-block-size' expects size"],
  ['vhost-user-blk,id=e,node-name=n0,addr.type=unix,addr.path=/nonexistent/vu.sock,logical-block-size=16E', "Parameter 'logical-block-size' expects size"],
  ['vhost-user-blk,id=e,node-name=n0,addr.type=unix,addr.path=/nonexistent/vu.sock,logical-block-size=-1', "Parameter 'logical-block-size' expects size"],
  ['vhost-user-blk,id=e,node-name=n0,addr.type=unix,addr.path=/nonexistent/vu.sock,num-queues=70000', "Parameter 'num-queues' expects uint16_t"],
  ['vhost-user-blk,id=e,node-name=n0,addr.type=unix', "Parameter 'addr.path' is missing"],
  ['vhost-user-blk,id=e,node-name=n0,addr.type=inet,addr.host=localhost', "Parameter 'addr.port' is missing"],
  ['vhost-user-blk,id=e,node-name=n0,addr.type=tcp', "Parameter 'type' does not accept value 'tcp'"],
  ['nbd,id=e', "Parameter 'node-name' is missing"],
  ['nbd,id=e,node-name=n0,writable=maybe', "Parameter 'writable' expects 'on' or 'off'"],
  ['nbd,id=e,node-name=n0,bitmaps.0.node=n0', "Parameter 'bitmaps.0.name' is missing"],
  ['bogus,id=e,node-name=n0', "Parameter 'type' does not accept value 'bogus'"],
];
