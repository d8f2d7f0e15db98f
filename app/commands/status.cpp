// `resgd status`: where each point of a submitted or local sweep stands.
#include <iostream>

#include "commands.h"
#include "resgd/cluster/slurm.h"

namespace resgd::app {

int status_command(const Cli& cli) { return print_status(cli.status_dir, std::cout) ? 0 : 1; }

}  // namespace resgd::app
