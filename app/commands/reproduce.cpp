// `resgd reproduce`: rerun every experiment file and judge its claims into results.md.
#include <iostream>

#include "commands.h"
#include "resgd/compute/compute.h"
#include "resgd/compute/process.h"
#include "resgd/core/subprocess.h"
#include "resgd/report/reproduce.h"

namespace resgd::app {

int reproduce_command(const Cli& cli) {
  const ReproduceArgs& args = cli.reproduce;
  ReproduceOptions options;
  options.formats = parse_plot_formats(cli.formats);
  compute::configure_process(Backend::tuned);
  options.experiments = args.experiments.empty() ? bundled_experiments() : std::filesystem::path(args.experiments);
  options.out = !args.out.empty() ? std::filesystem::path(args.out)
                : args.quick      ? std::filesystem::path("results/reproduce-quick")
                                  : std::filesystem::path("results/reproduce");
  options.quick = args.quick;
  options.only = args.only;
  options.jobs = args.jobs > 0 ? args.jobs : compute::usable_cores();
  options.log = &std::cout;
  options.stop_requested = &stop_flag();
  install_stop_handlers();
  const bool all_shown = reproduce(options);
  if (stop_signal() != 0) return 128 + stop_signal();
  return all_shown ? 0 : 1;
}

}  // namespace resgd::app
