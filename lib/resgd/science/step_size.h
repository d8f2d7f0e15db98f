// The step size GD takes: train.lr itself, or with train.lr_edge a fraction of a curvature
// edge measured at theta_0, so that one fraction means the same step across a sweep whose
// curvature grows (the NTK's lambda_max grows about linearly with the sequence length).
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <optional>

#include "resgd/core/config.h"
#include "resgd/science/data.h"
#include "resgd/science/model.h"

namespace resgd {

struct StepSize {
  double lr = 0;               // the step GD takes
  std::optional<double> edge;  // with train.lr_edge: the edge lr is the fraction train.lr of
};

/// At the model's parameters, which must be theta_0: train.lr, or train.lr times the edge
/// train.lr_edge names, ntk: 2 / (c lambda_max(K)), K = J J^T over the parameters GD trains
/// (GD on the linearized model is stable below it); sharpness: 2 / the loss's largest
/// Hessian eigenvalue (the edge of stability). Deterministic, so a resumed run measures
/// the step it took. IoError where the sharpness does not converge; Stopped where `stop`
/// is set while K is formed. Warns (stderr) where train.lr > 1, a step past the edge.
StepSize step_size(ResidualTransformerImpl& model, const Dataset& data, const ExperimentConfig& config,
                   const std::atomic<bool>* stop = nullptr);

}  // namespace resgd
