/**
 * What a subcommand's action needs from the process it runs in: where to
 * print, and how to set the exit code. Keeping this out of the actions lets
 * the whole CLI run inside another program (runCli) without touching
 * process-wide state.
 */
export interface CommandContext {
  /** Write text to standard output (the caller adds newlines). */
  out(text: string): void;
  /** Write text to standard error (the caller adds newlines). */
  err(text: string): void;
  /** Set the code the CLI exits with when the action returns normally; the last call wins. */
  setExitCode(code: number): void;
}
