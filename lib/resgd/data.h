// Data sets: DESIGN.md, "Experiment files" (data section).
// Tokens are drawn on the CPU in float64 from streams of the run's seed, then cast and
// moved, so the data never depend on the device, the dtype, or the student's residuals,
// initialization or step size.
#pragma once

#include <torch/torch.h>

#include "resgd/config.h"

namespace resgd {

struct Dataset {
  torch::Tensor X;  // (N, n, d)
  torch::Tensor Y;  // (N, n, d_y) for the tokens readout, (N, d_y) for mean
};

/// Builds the experiment's data set on `device` in `dtype`.
Dataset make_dataset(const ExperimentConfig& config, torch::Device device, torch::Dtype dtype);

}  // namespace resgd
