// The gradient check behind `resgd gradcheck`: docs/design.md, "Hand-derived gradients".
// For any experiment it compares, per parameter and in float64, the hand-derived gradients
// with autograd, and autograd with central finite differences along random directions.
#pragma once

#include <torch/torch.h>

#include <ostream>
#include <string>
#include <vector>

#include "resgd/core/config.h"
#include "resgd/science/model.h"

namespace resgd {

constexpr double kAnalyticTolerance = 1e-10;         // analytic vs autograd, float64
constexpr double kFiniteDifferenceTolerance = 1e-6;  // autograd vs finite differences
// Richardson extrapolation of central differences with steps h and h/2: truncation error
// O(h^4), so h can stay large enough that rounding in L costs only about eps |L| / h.
constexpr double kFiniteDifferenceStep = 1e-4;
// Where a step flips a ReLU's sign the loss has a kink inside the stencil; the step then
// shrinks tenfold, down to this.
constexpr double kFiniteDifferenceMinStep = 1e-7;
constexpr int kFiniteDifferenceDirections = 3;
// Errors are relative to max(||g_p||, kGradientFloor ||g||), g the whole gradient: rounding
// in the loss and in the gradient scales with the whole, so a parameter carrying under a
// thousandth of it (W_Q, W_K of a rank-collapsed block: ~1e-18) is judged on that scale.
constexpr double kGradientFloor = 1e-3;

/// ||a - b||_F / max(||a||_F, ||b||_F, floor); 0 when all three vanish.
double relative_error(const torch::Tensor& a, const torch::Tensor& b, double floor = 0.0);

/// dL/dt of L(p + t v) at t = 0 for one parameter p of `model` along `direction` (p's
/// shape), by Richardson-extrapolated central differences; p is restored bit for bit.
double finite_difference(ResidualTransformerImpl& model, torch::Tensor& parameter, const torch::Tensor& direction,
                         const torch::Tensor& X, const torch::Tensor& Y, Loss loss, double h = kFiniteDifferenceStep);

/// One row of the gradient check, for one parameter.
struct GradcheckRow {
  std::string name;           // blocks.<l>.W_Q, ...
  double grad_norm = 0;       // ||g_p||_F, autograd's
  double analytic_error = 0;  // ||g_analytic - g_autograd||_F / scale
  // max over unit directions v of |finite_difference - <g_autograd, v>| / scale, where
  // scale = max(||g_p||_F, kGradientFloor ||g||_F); <g, v> is at most ||g_p|| for unit v.
  double finite_difference_error = 0;
};

/// Runs the three-way comparison on `model` (X: (N, n, d), Y as the output), with unit
/// random directions drawn from `generator` (CPU), one row per parameter in order.
std::vector<GradcheckRow> compare_gradients(ResidualTransformerImpl& model, const torch::Tensor& X,
                                            const torch::Tensor& Y, Loss loss, torch::Generator& generator,
                                            int directions = kFiniteDifferenceDirections);

/// H v by Richardson-extrapolated central differences of autograd's gradient along v
/// (flat over all parameters, as hessian_vector_product takes it), the step shrinking as
/// finite_difference's does where a ReLU would change sign; the parameters are restored
/// bit for bit.
torch::Tensor hessian_difference(ResidualTransformerImpl& model, const torch::Tensor& X, const torch::Tensor& Y,
                                 Loss loss, const torch::Tensor& v, double h = kFiniteDifferenceStep);

/// The check of the Hessian-vector products behind diagnostics.sharpness: over unit random
/// directions v, the largest ||H v|| (double backward) and the largest relative_error of
/// H v against hessian_difference.
struct HessianCheck {
  double product_norm = 0;
  double error = 0;
};
HessianCheck compare_hessian_products(ResidualTransformerImpl& model, const torch::Tensor& X, const torch::Tensor& Y,
                                      Loss loss, torch::Generator& generator,
                                      int directions = kFiniteDifferenceDirections);

/// `resgd gradcheck`: builds the experiment's model and data in float64 on `device`
/// (whatever its dtype), prints the table and the Hessian check to `out`; returns 1 if
/// any error is above its tolerance, else 0.
int run_gradcheck(const ExperimentConfig& config, torch::Device device, std::ostream& out);

}  // namespace resgd
