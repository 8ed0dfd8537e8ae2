// resweep: the command-line client. Everything is in cli/commands.cc.
#include "cli/commands.h"

int main(int argc, char** argv) { return resweep::RunCli(argc, argv); }
