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
