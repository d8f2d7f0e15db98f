// What `resgd validate` prints of a valid experiment; shared by both binaries.
#pragma once

#include <fmt/format.h>

#include <iostream>
#include <string>

#include "resgd/core/config.h"
#include "resgd/core/cost.h"

namespace resgd::app {

/// The resolved configuration on stdout; on stderr, the number of runs and the memory the
/// largest needs (`memory`, bytes) against what this machine has.
inline void print_validated(const ExperimentConfig& config, const std::string& file, double memory) {
  const size_t runs = expand_sweep(config).size();
  const auto available = available_memory();
  std::cout << dump_yaml(config);
  std::cerr << fmt::format("{}: valid; {} run{}; {} about {:.3g} GiB of memory{}\n", file, runs, runs == 1 ? "" : "s",
                           runs == 1 ? "it needs" : "the largest needs", memory / (1 << 30),
                           available ? fmt::format(" ({:.3g} GiB available)", *available / (1 << 30)) : "");
}

}  // namespace resgd::app
