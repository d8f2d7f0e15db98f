// `resgd bench`: time per GD step at fixed problem sizes, against the machine's own
// matrix-multiply ceiling measured in the same process.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "resgd/config.h"

namespace resgd {

/// A benchmark problem: data and model sizes, dtype and how many steps one timing spans.
struct BenchSize {
  std::string name;
  int64_t N, n, d, m, d_y, layers;
  std::string dtype;
  int64_t steps;  // GD steps per timed repetition, rounded up to whole periods of 10 (at least 20)
};

/// small, medium, large (the performance issue's sizes) and flagship.
const std::vector<BenchSize>& bench_sizes();

/// Floating-point operations of one GD step (forward, backward, update), counting the
/// matrix products exactly and the O(size) elementwise work not at all.
double gd_step_flops(const BenchSize& size);
/// The same count for an experiment's data and model sizes, with d_k = d as in the bench
/// sizes (model.key_dim is not counted): enough to choose BLAS threads by.
double gd_step_flops(const ExperimentConfig& config);

/// The experiment configuration a bench size runs (random targets, a step size small
/// enough never to diverge, no stopping on tolerance).
ExperimentConfig bench_config(const BenchSize& size);

struct BenchOptions {
  std::vector<std::string> sizes = {"small", "medium"};
  std::string dtype;          // empty = each size's own
  std::string device = "cpu";
  int repeats = 5;            // timed repetitions; the median is reported
};

/// Runs the benchmark and prints its table to `out`. Returns 0.
int run_bench(const BenchOptions& options, std::ostream& out);

}  // namespace resgd
