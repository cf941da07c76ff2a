/**
 * Type inference from schema descriptions: these checks run at compile
 * time (a wrong inference fails the build), plus one run-time check that
 * the inferred handler argument is what the handler receives.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { alternate, bool, enumType, int, list, nullType, size, str, struct, union, type ValueOf } from '../../src/qmp/schema.js';
import { CommandTable } from '../../src/qmp/command-table.js';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const assertType = <T extends true>(): T | undefined => undefined;

const Sync = enumType('MirrorSyncMode', ['top', 'full', 'none']);
const Base = struct('Base', { 'job-id': str, '*auto-finalize': bool });
const Backup = struct('Backup', { device: str, sync: Sync, '*speed': int, '*bitmaps': list(str) }, Base);
const Ref = alternate('Ref', [struct('Inline', { driver: str }), str, nullType]);
const Export = union('Export', {
  base: { type: enumType('ExportType', ['nbd', 'fuse', 'vhost-user-blk']), id: str },
  discriminator: 'type',
  branches: { nbd: { '*name': str, '*bitmaps': list(str) }, fuse: struct('Fuse', { mountpoint: str, '*size': size }) },
});

test('value types are inferred from schema descriptions', () => {
  assertType<Equal<ValueOf<typeof Sync>, 'top' | 'full' | 'none'>>();
  assertType<Equal<ValueOf<typeof Backup>, { 'job-id': string; 'auto-finalize'?: boolean; device: string; sync: 'top' | 'full' | 'none'; speed?: number; bitmaps?: string[] }>>();
  assertType<Equal<ValueOf<typeof Ref>, { driver: string } | string | null>>();
  assertType<Equal<ValueOf<typeof Export>,
    | { id: string; type: 'nbd'; name?: string; bitmaps?: string[] }
    | { id: string; type: 'fuse'; mountpoint: string; size?: number }
    | { id: string; type: 'vhost-user-blk' }>>();

  const table = new CommandTable();
  let received: ValueOf<typeof Backup> | undefined;
  table.register({
    name: 'x-backup',
    args: Backup,
    handler: (args) => {
      assertType<Equal<typeof args, ValueOf<typeof Backup>>>();
      received = args;
    },
  });
  const command = table.get('x-backup')!;
  const args = { 'job-id': 'j', device: 'd', sync: 'full' as const };
  command.handler(args, { sessionId: 1, capabilities: new Set(), afterReply: () => undefined });
  assert.equal(received, args);
});
