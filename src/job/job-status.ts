/**
 * The job lifecycle of QEMU 7.2 (qapi/job.json): the JobStatus and JobVerb
 * enums, which status may follow which, and which verbs each status accepts.
 * The tables are the single source of truth for Job; they are data, so tests
 * and documentation can read them too.
 */
import { LivebackupError } from '../errors.js';

/** QAPI JobStatus, in QAPI order. */
export type JobStatus =
  | 'undefined'
  | 'created'
  | 'running'
  | 'paused'
  | 'ready'
  | 'standby'
  | 'waiting'
  | 'pending'
  | 'aborting'
  | 'concluded'
  | 'null';

/** QAPI JobVerb: the management commands a job may accept. */
export type JobVerb = 'cancel' | 'pause' | 'resume' | 'set-speed' | 'complete' | 'finalize' | 'dismiss';

export const JOB_STATUSES: readonly JobStatus[] = [
  'undefined', 'created', 'running', 'paused', 'ready', 'standby', 'waiting', 'pending', 'aborting', 'concluded', 'null',
];

export const JOB_VERBS: readonly JobVerb[] = ['cancel', 'pause', 'resume', 'set-speed', 'complete', 'finalize', 'dismiss'];

/** For each status, the statuses it may move to (QEMU's job state transition table). */
export const JOB_TRANSITIONS: Readonly<Record<JobStatus, readonly JobStatus[]>> = {
  undefined: ['created'],
  created: ['running', 'aborting', 'null'],
  running: ['paused', 'ready', 'waiting', 'aborting'],
  paused: ['running'],
  ready: ['standby', 'waiting', 'aborting'],
  standby: ['ready'],
  waiting: ['pending', 'aborting'],
  pending: ['aborting', 'concluded'],
  aborting: ['aborting', 'concluded'],
  concluded: ['null'],
  null: [],
};

/** For each verb, the statuses in which it is accepted (QEMU's job verb table). */
export const JOB_VERB_STATUSES: Readonly<Record<JobVerb, readonly JobStatus[]>> = {
  cancel: ['created', 'running', 'paused', 'ready', 'standby', 'waiting', 'pending'],
  pause: ['created', 'running', 'paused', 'ready', 'standby'],
  resume: ['created', 'running', 'paused', 'ready', 'standby'],
  'set-speed': ['created', 'running', 'paused', 'ready', 'standby'],
  complete: ['ready'],
  finalize: ['pending'],
  dismiss: ['concluded'],
};

/** Whether a job in status `from` may move to `to`. */
export function canTransition(from: JobStatus, to: JobStatus): boolean {
  return JOB_TRANSITIONS[from].includes(to);
}

/** Whether a job in `status` accepts `verb`. */
export function verbAllowed(verb: JobVerb, status: JobStatus): boolean {
  return JOB_VERB_STATUSES[verb].includes(status);
}

/**
 * Throw QEMU's uniform refusal, INVALID_STATE
 * "Job 'ID' in state 'STATUS' cannot accept command verb 'VERB'", unless the
 * verb table lets a job in `status` accept `verb`.
 */
export function checkVerb(id: string, status: JobStatus, verb: JobVerb): void {
  if (!verbAllowed(verb, status)) {
    throw new LivebackupError('INVALID_STATE', `Job '${id}' in state '${status}' cannot accept command verb '${verb}'`);
  }
}
