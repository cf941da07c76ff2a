/**
 * A subset of QEMU 7.2's blockdev-add argument type, described with our
 * schema language: enough members to provoke every kind of validation
 * error the same way against livebackup and against qemu-storage-daemon.
 */
import { alternate, enumType, int, int32, lazy, list, nullType, str, struct, bool, uint64, union, type UnionType } from '../../src/qmp/schema.js';

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
