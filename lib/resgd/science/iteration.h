// One logged iteration of GD, and how a run ended: what training produces, the diagnosis
// schedule passes on in order, and the run directory records (metrics.csv, summary.json).
#pragma once

#include <cstdint>
#include <optional>

#include "resgd/core/config.h"
#include "resgd/science/diagnostics.h"

namespace resgd {

/// How a run ended (summary.json's `status`).
enum class Status { converged, max_iters, diverged, stalled, interrupted };
template <>
struct EnumNames<Status> {
  static constexpr const char* names[] = {"converged", "max_iters", "diverged", "stalled", "interrupted"};
};

/// One row of metrics.csv.
struct IterationRow {
  int64_t iter = 0;
  double loss = 0, grad_norm = 0, elapsed_s = 0;
  std::optional<double> loss_lin;      // with diagnostics.linearized: the linearized model's loss
  std::optional<Diagnosis> diagnosis;  // on diagnosed iterations whose loss is finite
};

}  // namespace resgd
