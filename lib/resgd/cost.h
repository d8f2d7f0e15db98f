// What a run costs before it runs: the memory it will need, against what this machine has.
// Free of LibTorch, so the configuration checks stay light.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "resgd/config.h"

namespace resgd {

/// One part of a run's memory: what it holds, its bytes, and the keys whose sizes multiply
/// into it (the first such key the experiment set is where an error points).
struct MemoryTerm {
  std::string what;
  double bytes = 0;
  std::vector<std::string> keys;
};

/// The memory a run of `config` needs at its peak, term by term: the data, the
/// parameters with their gradients and copies, each block's activations and their
/// gradients (twice: a diagnosis holds the trace of a step while the next one runs), the
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
/// `device_is_cpu` false (a CUDA run, whose tensors live on the GPU) checks nothing.
void check_memory(const ExperimentConfig& config, bool device_is_cpu);

}  // namespace resgd
