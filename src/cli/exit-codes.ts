/** Exit codes shared by all subcommands (`img compare` documents its own meaning of 1 and 2). */

/** Success. */
export const EXIT_OK = 0;
/** The command failed (I/O error, corrupt image, ...). */
export const EXIT_FAILED = 1;
/** The command line or an argument value is wrong. */
export const EXIT_USAGE = 2;
