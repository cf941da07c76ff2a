import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JOB_STATUSES, JOB_VERBS, canTransition, checkVerb, verbAllowed } from '../../src/job/job-status.js';
import { errorActionFor, BLOCKDEV_ON_ERROR_VALUES } from '../../src/job/error-policy.js';
import { failureText, strerrorText } from '../../src/job/failure-text.js';
import { LivebackupError } from '../../src/errors.js';

// QEMU 7.2 job.c tables, transcribed as matrices over U,C,R,P,Y,S,W,D,X,E,N.
const TRANSITIONS = [
  '01000000000', // undefined
  '00100000101', // created
  '00011010100', // running
  '00100000000', // paused
  '00000110100', // ready
  '00001000000', // standby
  '00000001100', // waiting
  '00000000110', // pending
  '00000000110', // aborting
  '00000000001', // concluded
  '00000000000', // null
];
const VERBS: Record<string, string> = {
  cancel: '01111111000',
  pause: '01111100000',
  resume: '01111100000',
  'set-speed': '01111100000',
  complete: '00001000000',
  finalize: '00000001000',
  dismiss: '00000000010',
};

test('the transition and verb tables are QEMU 7.2\'s', () => {
  JOB_STATUSES.forEach((from, row) => {
    JOB_STATUSES.forEach((to, column) => {
      assert.equal(canTransition(from, to), TRANSITIONS[row]![column] === '1', `${from} → ${to}`);
    });
  });
  for (const verb of JOB_VERBS) {
    JOB_STATUSES.forEach((status, column) => {
      assert.equal(verbAllowed(verb, status), VERBS[verb]![column] === '1', `${verb} in ${status}`);
    });
  }
  assert.throws(() => checkVerb('x', 'running', 'dismiss'),
    (error: unknown) => error instanceof LivebackupError && error.code === 'INVALID_STATE' && error.message === "Job 'x' in state 'running' cannot accept command verb 'dismiss'");
  assert.doesNotThrow(() => checkVerb('x', 'concluded', 'dismiss'));
});

test('error policies map to QEMU\'s actions', () => {
  const eio = new LivebackupError('IO_ERROR', 'x', { errno: 'EIO' });
  const enospc = new LivebackupError('IO_ERROR', 'x', { errno: 'ENOSPC' });
  const nodeEnospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  const expected: Record<string, [string, string]> = {
    report: ['report', 'report'], ignore: ['ignore', 'ignore'], stop: ['stop', 'stop'], enospc: ['report', 'stop'], auto: ['report', 'stop'],
  };
  for (const policy of BLOCKDEV_ON_ERROR_VALUES) {
    assert.deepEqual([errorActionFor(policy, eio), errorActionFor(policy, enospc)], expected[policy], policy);
  }
  assert.equal(errorActionFor('enospc', nodeEnospc), 'stop');
});

test('failure texts: strerror for I/O errors, the message otherwise', () => {
  assert.equal(failureText(new LivebackupError('IO_ERROR', 'pwrite failed', { errno: 'EIO' })), 'Input/output error');
  assert.equal(failureText(new LivebackupError('IO_ERROR', 'pwrite failed', { errno: 'ENOSPC' })), 'No space left on device');
  assert.equal(failureText(Object.assign(new Error('EPERM: operation not permitted'), { code: 'EPERM' })), 'Operation not permitted');
  assert.equal(failureText(new LivebackupError('CORRUPT_IMAGE', 'bad refcount')), 'bad refcount');
  assert.equal(failureText('plain string'), 'plain string');
  assert.equal(strerrorText('ECANCELED'), 'Operation canceled');
});
