// What a run or a sweep will take, measured before it starts: one GD step and one
// diagnosis of each size of run timed, and scaled by the steps and diagnoses every run
// may take. Printed by `resgd run` at the start, with a warning where the diagnostics
// would cost more than the training.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "resgd/core/config.h"

namespace resgd {

/// The measured parts and the totals over every run, each run taken to train.max_iters
/// (an upper bound: a run that converges or diverges stops early).
struct TimeEstimate {
  double step_s = 0, diagnosis_s = 0, ntk_s = 0, sharpness_s = 0;  // of the costliest run measured
  double linearized_s = 0;  // diagnostics.linearized's kernel, once a run, before its first step
  double training_s = 0;    // every step of every run
  double diagnosis_total_s = 0, ntk_total_s = 0, sharpness_total_s = 0, linearized_total_s = 0;
  size_t runs = 0;
  int jobs = 1;  // runs trained at once
  double diagnostics_s() const { return diagnosis_total_s + ntk_total_s + sharpness_total_s + linearized_total_s; }
  /// The sweep's time at most, its runs shared over `jobs`.
  double wall_s() const;
};

/// Times one step and one diagnosis (its NTK and sharpness apart) of every distinct size
/// among `runs` (the sweep's points), on their device, outside any run: nothing of a run
/// is drawn or written. diagnostics.linearized's kernel is scaled up from one measured on
/// a few samples (its Jacobian and Gram matrix grow as N^2, its eigendecomposition as
/// R^3, R the outputs), as timing the whole would take as long as forming it.
TimeEstimate estimate_time(const std::vector<ExperimentConfig>& runs, int jobs);

/// "estimate: at most 41 s for 4 runs, 2 at once (a step 0.61 ms, a diagnosis 3.2 ms, ...)".
std::string describe(const TimeEstimate& estimate);

/// Where the diagnostics would cost more than the training: one line saying so, with the
/// costliest part and the key that changes it; none otherwise.
std::optional<std::string> diagnostics_warning(const TimeEstimate& estimate, const ExperimentConfig& config);

}  // namespace resgd
