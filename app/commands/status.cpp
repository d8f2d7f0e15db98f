// `resgd status`: where each point of a submitted or local sweep stands; for a comparison
// (`resgd compare`'s output), where each directory it compared stands.
#include <iostream>

#include "commands.h"
#include "resgd/cluster/slurm.h"
#include "resgd/report/collection.h"

namespace resgd::app {

int status_command(const Cli& cli) {
  const auto compared = compared_directories(cli.status_dir);
  if (compared.empty()) return print_status(cli.status_dir, std::cout) ? 0 : 1;
  bool all_finished = true;
  for (const auto& dir : compared) {
    std::cout << dir.string() << " (compared):\n";
    all_finished = print_status(dir, std::cout) && all_finished;
  }
  return all_finished ? 0 : 1;
}

}  // namespace resgd::app
