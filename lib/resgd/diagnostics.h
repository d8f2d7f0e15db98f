// Diagnostics of the attention output and of training: DESIGN.md, "Diagnostics".
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "resgd/analytic_grad.h"
#include "resgd/config.h"
#include "resgd/model.h"

namespace resgd {

/// linear_rate: exp(slope) of a least-squares fit of ln(loss) against iteration, over
/// iterations from 10% of the run to its end, or to the first iteration under tolerance
/// (`iters_to_tol`). NaN when fewer than two usable points remain.
double linear_rate(const std::vector<int64_t>& iters, const std::vector<double>& losses,
                   std::optional<int64_t> iters_to_tol);

/// The diagnostic columns of metrics.csv for a model of `layers` blocks, in order.
std::vector<std::string> diagnostic_columns(int64_t layers, bool ntk);

/// Everything a diagnostic needs at one iteration.
struct DiagnosticsInput {
  ResidualTransformerImpl& model;
  const torch::Tensor& X;                     // (N, n, d)
  const LossAndGradients& state;              // loss, grads and forward trace at theta_t
  const std::vector<torch::Tensor>& theta_0;  // the initial parameters
  const DiagnosticsConfig& config;
};

/// The values of `diagnostic_columns`, same order; NaN where a value could not be had
/// (e.g. the NTK when refused for size). Reads back from the device once.
std::vector<double> compute_diagnostics(const DiagnosticsInput& input);

}  // namespace resgd
