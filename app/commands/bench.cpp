// `resgd bench`: GD steps timed at fixed sizes against this machine's GEMM ceiling.
#include <iostream>

#include "commands.h"
#include "resgd/run/bench.h"

namespace resgd::app {

int bench_command(const Cli& cli) {
  const BenchArgs& args = cli.bench;
  BenchOptions options;
  options.sizes = args.sizes;
  options.dtype = args.dtype;
  options.device = args.device;
  options.repeats = args.repeats;
  options.backend = *parse_enum<Backend>(args.backend);
  options.without = args.without;
  options.variants = args.variants;
  options.rounds = args.rounds;
  if (options.variants.empty()) configure_bench_process(options);
  return run_bench(options, std::cout);
}

}  // namespace resgd::app
