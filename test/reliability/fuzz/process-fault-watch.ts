/**
 * ProcessFaultWatch: while started, records uncaught exceptions and
 * unhandled promise rejections of this process (a server crashing on
 * hostile input shows up here) instead of letting them end the run.
 */
export class ProcessFaultWatch {
  private readonly faults: string[] = [];
  private readonly onError = (error: unknown) => {
    this.faults.push(error instanceof Error ? error.stack ?? error.message : String(error));
  };

  start(): void {
    process.on('uncaughtException', this.onError);
    process.on('unhandledRejection', this.onError);
  }

  stop(): void {
    process.off('uncaughtException', this.onError);
    process.off('unhandledRejection', this.onError);
  }

  /** The faults since the last call, as one text, or undefined. */
  take(): string | undefined {
    if (this.faults.length === 0) return undefined;
    return `process fault: ${this.faults.splice(0).join('\n')}`;
  }
}
