// The `resweep` command line: parses argv, runs one command, returns the exit code.
//
// Exit codes (docs/cli.md):
//   0  success
//   1  the coordinator or the database refused or failed the request
//   2  bad usage or bad input (unknown command or option, a sweep file's error)
//   3  `wait`: the sweep finished with failed runs
//   4  `wait`: --limit seconds passed before the sweep finished
//   5  the coordinator could not be reached (or the call timed out)
//   6  `wait`: the sweep ended cancelled
//   130 `wait` interrupted (Ctrl-C): the sweep goes on
#pragma once

namespace resweep {

int RunCli(int argc, char** argv);

// Shell completion scripts for `resweep completion bash|zsh`.
const char* BashCompletion();
const char* ZshCompletion();

}  // namespace resweep
