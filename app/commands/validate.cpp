// `resgd validate`: check an experiment file (every point of its sweep, its data file and
// device) and print its resolved configuration.
#include "validate.h"

#include "commands.h"
#include "resgd/science/device.h"

namespace resgd::app {

int validate_command(const Cli& cli) {
  const auto config = load_experiment(cli.validate);
  resolve_device(config);
  print_validated(config, cli.validate.file, check_memory_of_every_run(config));  // each point checked
  return 0;
}

}  // namespace resgd::app
