// `resgd gradcheck`: hand-derived gradients against autograd and finite differences.
#include <iostream>

#include "commands.h"
#include "resgd/core/cost.h"
#include "resgd/science/device.h"
#include "resgd/science/gradcheck.h"

namespace resgd::app {

int gradcheck_command(const Cli& cli) {
  const auto config = load_experiment(cli.gradcheck);
  check_memory(config, resolve_device(config).is_cpu());
  set_up_compute(config, /*verbose=*/false, std::cout);
  return run_gradcheck(config, resolve_device(config), std::cout);
}

}  // namespace resgd::app
