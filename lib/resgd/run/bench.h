// `resgd bench`: time per GD step at fixed problem sizes, against the machine's own
// matrix-multiply ceiling measured in the same process; and the comparison of the compute
// backends and of the tuned backend without each of its tunings (docs/performance.md).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "resgd/core/config.h"

namespace resgd {

/// A benchmark problem: data and model sizes, dtype and how many steps one timing spans.
struct BenchSize {
  std::string name;
  int64_t N, n, d, m, d_y, layers;
  Dtype dtype;
  int64_t steps;  // GD steps per timed repetition, rounded up to whole periods of 10 (at least 20)
};

/// small, medium, large and flagship.
const std::vector<BenchSize>& bench_sizes();

/// The experiment configuration a bench size runs (random targets, a step size small
/// enough never to diverge, no stopping on tolerance).
ExperimentConfig bench_config(const BenchSize& size);

struct BenchOptions {
  std::vector<std::string> sizes = {"small", "medium"};
  std::string dtype;  // empty = each size's own
  std::string device = "cpu";
  int repeats = 5;  // timed repetitions; the median is reported
  Backend backend = Backend::tuned;
  /// Tunings left out (compute.h's Tuning and process.h's ProcessSetup, by name).
  std::vector<std::string> without;
  /// Compare: each of these variants ("tuned", "reference", "tuned-without-NAME"), in a
  /// process of its own, in turn for `rounds` rounds; empty: time this process's setup.
  std::vector<std::string> variants;
  int rounds = 3;
};

/// The names --without takes, in order: the compute tunings, then the process settings.
std::vector<std::string> tuning_names();

/// Applies the process settings of `options` (its backend, less what it leaves out):
/// before anything multiplies.
void configure_bench_process(const BenchOptions& options);

/// Runs the benchmark and prints its table to `out`. Returns 0.
int run_bench(const BenchOptions& options, std::ostream& out);

}  // namespace resgd
