/**
 * The events a job emits, shaped exactly like the QMP events of QEMU 7.2
 * (event name plus `data`; the QMP layer adds the timestamp).
 */
import type { JobStatus } from './job-status.js';

/** QAPI IoOperationType. */
export type IoOperation = 'read' | 'write';

/** QAPI BlockErrorAction: what a job did about an I/O error. */
export type ErrorAction = 'ignore' | 'report' | 'stop';

export type JobEvent =
  | { event: 'JOB_STATUS_CHANGE'; data: { id: string; status: JobStatus } }
  | { event: 'BLOCK_JOB_COMPLETED'; data: { type: string; device: string; len: number; offset: number; speed: number; error?: string } }
  | { event: 'BLOCK_JOB_CANCELLED'; data: { type: string; device: string; len: number; offset: number; speed: number } }
  | { event: 'BLOCK_JOB_ERROR'; data: { device: string; operation: IoOperation; action: ErrorAction } }
  | { event: 'BLOCK_JOB_PENDING'; data: { type: string; id: string } }
  | { event: 'BLOCK_JOB_READY'; data: { type: string; device: string; len: number; offset: number; speed: number } };

/** The names of all job events. */
export type JobEventName = JobEvent['event'];

/**
 * Receives job events synchronously, in the order the job emits them. A
 * listener may call job verbs; events those cause are delivered after the
 * current event has reached every listener. A listener that throws does not
 * disturb the job: the error becomes a process warning.
 */
export type JobEventListener = (event: JobEvent) => void;
