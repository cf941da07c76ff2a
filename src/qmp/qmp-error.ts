/**
 * QMP error classes and the translation of thrown errors into QMP error
 * replies. This is the only place where LivebackupError codes meet QMP
 * classes.
 */
import { LivebackupError, messageOf, type ErrorCode, type LivebackupErrorOptions } from '../errors.js';

/** The error classes QEMU 7.2 still uses. */
export type QmpErrorClass = 'GenericError' | 'CommandNotFound' | 'DeviceNotActive' | 'DeviceNotFound' | 'KVMMissingCap';

/** The `error` member of a QMP reply. */
export interface QmpErrorBody {
  readonly class: QmpErrorClass;
  readonly desc: string;
}

/** How a command's error codes map to classes (codes not listed give GenericError). */
export type ErrorClassMap = Readonly<Partial<Record<ErrorCode, QmpErrorClass>>>;

/**
 * An error that names its QMP class explicitly. Commands throw it where
 * QEMU uses a class other than GenericError and no code mapping applies.
 */
export class QmpError extends LivebackupError {
  readonly errorClass: QmpErrorClass;

  constructor(errorClass: QmpErrorClass, code: ErrorCode, message: string, options: LivebackupErrorOptions = {}) {
    super(code, message, options);
    this.name = 'QmpError';
    this.errorClass = errorClass;
  }
}

/** The QMP error body for anything a command threw. */
export function toQmpErrorBody(error: unknown, classes: ErrorClassMap = {}): QmpErrorBody {
  if (error instanceof QmpError) return { class: error.errorClass, desc: error.message };
  if (error instanceof LivebackupError) return { class: classes[error.code] ?? 'GenericError', desc: error.message };
  return { class: 'GenericError', desc: messageOf(error) };
}
