/**
 * The table of QMP commands: name, argument type, handler. Front ends
 * register commands here; the session looks them up and validates
 * arguments before calling the handler.
 */
import { LivebackupError } from '../errors.js';
import type { ErrorClassMap } from './qmp-error.js';
import type { ObjectType, QapiType, ValueOf } from './schema.js';

/** What a handler may know about and do with the session that called it. */
export interface QmpCommandContext {
  /** A number identifying the client connection (for logs). */
  readonly sessionId: number;
  /** Capabilities the client enabled with qmp_capabilities. */
  readonly capabilities: ReadonlySet<string>;
  /** Run `callback` once the reply to this command has been written (e.g. quit). */
  afterReply(callback: () => void): void;
}

/**
 * A command. The handler's argument type is inferred from `args`:
 *
 *   server.registerCommand({
 *     name: 'block-job-set-speed',
 *     args: struct('BlockJobSetSpeedArgs', { device: str, speed: int }),
 *     handler: ({ device, speed }) => jobs.setSpeed(device, speed),  // device: string, speed: number
 *   });
 */
export interface QmpCommand<S extends ObjectType = ObjectType> {
  /** The command name as clients send it in `execute`. */
  readonly name: string;
  /** Argument type; omitted means the command takes no arguments. */
  readonly args?: S;
  /**
   * Runs the command with validated arguments. The resolved value is the
   * `return` member (undefined gives `{}`). Thrown errors become error
   * replies (see qmp-error.ts).
   */
  readonly handler: (args: ValueOf<S>, context: QmpCommandContext) => unknown;
  /**
   * Type of the `return` value. Documents the reply; a server created with
   * `checkReplies` (tests) refuses replies that do not match it.
   */
  readonly returns?: QapiType;
  /** Error classes for LivebackupError codes, where QEMU uses one other than GenericError. */
  readonly errorClasses?: ErrorClassMap;
}

/** Commands by name. Filled at startup, read by every session. */
export class CommandTable {
  private readonly commands = new Map<string, QmpCommand>();

  /** Add a command; a name can be registered once (ALREADY_EXISTS otherwise). */
  register<S extends ObjectType>(command: QmpCommand<S>): void {
    if (this.commands.has(command.name)) {
      throw new LivebackupError('ALREADY_EXISTS', `QMP command '${command.name}' is already registered`);
    }
    // Stored without its argument type: the dispatcher validates against `args` before calling.
    this.commands.set(command.name, command as unknown as QmpCommand);
  }

  /** The command of that name, or undefined. */
  get(name: string): QmpCommand | undefined {
    return this.commands.get(name);
  }

  /** All command names, in registration order. */
  names(): string[] {
    return [...this.commands.keys()];
  }
}
