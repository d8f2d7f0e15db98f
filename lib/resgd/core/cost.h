// What a run costs before it runs: the arithmetic of a GD step, and the memory it will
// need against what this machine has. Free of LibTorch, so the configuration checks stay
// light.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "resgd/core/config.h"

namespace resgd {

/// Floating-point operations of one GD step (forward, backward, update) for the
/// experiment's sizes, counting the matrix products exactly (d_k = key_dim) and the O(size)
/// elementwise work not at all.
double gd_step_flops(const ExperimentConfig& config);

/// A step below this many operations keeps its products whole: at 0.014 and 0.016 GFLOP
/// per step a second thread saved at most 0.1 ms and slowed the diagnoses beside it.
constexpr double kThreadedStepFlops = 0.25e9;

/// The model's outputs R (N n d_y, or N d_y with the mean readout) and its parameters P.
double output_count(const ExperimentConfig& config);
double parameter_count(const ExperimentConfig& config);

/// The most outputs diagnostics.linearized takes: its K is R x R, eigendecomposed once.
constexpr double kLinearizedMaxOutputs = 20'000;

/// Refuses diagnostics.linearized (or train.lr_edge: ntk) where K would exceed kLinearizedMaxOutputs outputs or its
/// Jacobian (R x P) diagnostics.ntk_max_entries: a ConfigError naming the size it would need.
void check_linearized(const ExperimentConfig& config);

/// One part of a run's memory: what it holds, its bytes, and the keys whose sizes multiply
/// into it (the first such key the experiment set is where an error points).
struct MemoryTerm {
  std::string what;
  double bytes = 0;
  std::vector<std::string> keys;
};

/// The memory a run of `config` needs at its peak, term by term: the data, the
/// parameters with their gradients and copies, each block's activations and their
/// gradients (twice with the tuned backend: its diagnosis worker holds the trace of a step
/// while the next one runs), the
/// diagnostics' float64 copies, and where switched on the NTK's Jacobian and Gram matrix
/// and the sharpness's Lanczos vectors and double-backward graph. An estimate, within a
/// small factor; every size enters (N, n, d, d_k, heads, m, d_y, L).
struct MemoryEstimate {
  std::vector<MemoryTerm> terms;
  double bytes() const;
  const MemoryTerm& largest() const;
};
MemoryEstimate estimate_memory(const ExperimentConfig& config);

/// Bytes this process may still allocate: the least of the kernel's MemAvailable, the
/// room left under the process's cgroup memory limit and under its address-space and
/// data limits (ulimit -v, -d); nullopt where none can be read.
std::optional<double> available_memory();

/// Refuses a CPU run whose estimate exceeds available_memory(): a ConfigError naming
/// file:line:column of the largest term's key, the estimate and what is available.
/// `device_is_cpu` false (a CUDA run, whose tensors live on the GPU) checks only
/// check_linearized.
void check_memory(const ExperimentConfig& config, bool device_is_cpu);

}  // namespace resgd
