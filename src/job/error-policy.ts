/**
 * Block job error policies (QAPI BlockdevOnError) and how QEMU 7.2 turns a
 * policy and an error into an action (block_job_error_action).
 */
import { errnoOf } from '../errors.js';
import type { ErrorAction } from './job-events.js';

/** QAPI BlockdevOnError. */
export type BlockdevOnError = 'report' | 'ignore' | 'enospc' | 'stop' | 'auto';

export const BLOCKDEV_ON_ERROR_VALUES: readonly BlockdevOnError[] = ['report', 'ignore', 'enospc', 'stop', 'auto'];

/**
 * The action a block job takes for `error` under `policy`:
 * report → report; ignore → ignore; stop → stop; enospc and auto → stop for
 * ENOSPC (see errnoOf), report otherwise. qemu-storage-daemon 7.2 treats
 * 'auto' exactly like 'enospc' for backup jobs; so do we.
 */
export function errorActionFor(policy: BlockdevOnError, error: unknown): ErrorAction {
  switch (policy) {
    case 'report':
      return 'report';
    case 'ignore':
      return 'ignore';
    case 'stop':
      return 'stop';
    case 'enospc':
    case 'auto':
      return errnoOf(error) === 'ENOSPC' ? 'stop' : 'report';
  }
}
