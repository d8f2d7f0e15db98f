// The gradient check behind `resgd gradcheck`: docs/design.md, "Hand-derived gradients".
#include "resgd/science/gradcheck.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "resgd/compute/compute.h"
#include "resgd/science/analytic_grad.h"
#include "resgd/science/data.h"
#include "resgd/science/diagnostics.h"

namespace resgd {
namespace {

/// Whether the model's activation has a kink (relu, leaky_relu), where a difference
/// stencil must not let a unit change sign.
bool has_kink(const ResidualTransformerImpl& model) {
  const Activation activation = model.options.block.activation;
  return activation == Activation::relu || activation == Activation::leaky_relu;
}

/// Clears `unchanged` where the sign (U > 0) of some FFN unit in `trace` differs from its
/// sign in `signs_at_0`, which the first call records: a kink inside a difference stencil.
void compare_unit_signs(const ForwardTrace& trace, torch::Tensor& signs_at_0, bool& unchanged) {
  std::vector<torch::Tensor> signs;
  for (const auto& block : trace.blocks) signs.push_back(block.U.gt(0).flatten());
  const auto all_signs = torch::cat(signs);
  if (!signs_at_0.defined()) signs_at_0 = all_signs;
  unchanged = unchanged && torch::equal(all_signs, signs_at_0);
}

/// (4 D(h/2) - D(h)) / 3 with D(h) = (f(h) - f(-h)) / 2h: Richardson's extrapolation, which
/// cancels the h^2 term of the central difference. `at(t, unchanged)` returns f(t) (a
/// number or a tensor) and clears `unchanged` as compare_unit_signs does; where it does, h
/// shrinks tenfold, down to kFiniteDifferenceMinStep. With `kinked`, at(0) comes first, to
/// record the signs.
template <class At>
auto richardson_difference(At&& at, bool kinked, double h) {
  bool same_signs = true;
  if (kinked) at(0.0, same_signs);
  for (;; h /= 10) {
    same_signs = true;
    const auto D_h = (at(h, same_signs) - at(-h, same_signs)) / (2 * h);
    const auto D_half = (at(h / 2, same_signs) - at(-h / 2, same_signs)) / h;
    if (same_signs || h / 10 < kFiniteDifferenceMinStep) return (4 * D_half - D_h) / 3;
  }
}

}  // namespace

double relative_error(const torch::Tensor& a, const torch::Tensor& b, double floor) {
  const double diff = (a - b).norm().item<double>();
  const double scale = std::max({a.norm().item<double>(), b.norm().item<double>(), floor});
  return scale == 0.0 ? 0.0 : diff / scale;
}

double finite_difference(ResidualTransformerImpl& model, torch::Tensor& parameter, const torch::Tensor& direction,
                         const torch::Tensor& X, const torch::Tensor& Y, Loss loss, double h) {
  torch::NoGradGuard no_grad;
  const auto saved = parameter.clone();
  const bool kinked = has_kink(model);
  torch::Tensor signs_at_0;
  auto loss_at = [&](double t, bool& unchanged) {  // L(p + t v)
    parameter.copy_(saved + t * direction);
    const ForwardTrace trace = model.trace(X);
    if (kinked) compare_unit_signs(trace, signs_at_0, unchanged);
    return objective(trace.output, Y, loss).item<double>();
  };
  const double derivative = richardson_difference(loss_at, kinked, h);
  parameter.copy_(saved);  // copy, not subtract: no rounding drift left behind
  return derivative;
}

torch::Tensor hessian_difference(ResidualTransformerImpl& model, const torch::Tensor& X, const torch::Tensor& Y,
                                 Loss loss, const torch::Tensor& v, double h) {
  auto parameters = model.parameters();
  std::vector<torch::Tensor> saved;
  for (const auto& p : parameters) saved.push_back(p.detach().clone());
  const auto direction = split_like(v, saved);
  const bool kinked = has_kink(model);
  torch::Tensor signs_at_0;
  auto gradient_at = [&](double t, bool& unchanged) {  // the whole gradient, flat, at theta + t v
    {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < parameters.size(); ++i) parameters[i].copy_(saved[i] + t * direction[i]);
    }
    const auto state = autograd_gradients(model, X, Y, loss);
    if (kinked) compare_unit_signs(state.trace, signs_at_0, unchanged);
    std::vector<torch::Tensor> flat;
    for (const auto& g : state.grads) flat.push_back(g.detach().flatten());
    return torch::cat(flat);
  };
  const torch::Tensor product = richardson_difference(gradient_at, kinked, h);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < parameters.size(); ++i) parameters[i].copy_(saved[i]);
  return product;
}

HessianCheck compare_hessian_products(ResidualTransformerImpl& model, const torch::Tensor& X, const torch::Tensor& Y,
                                      Loss loss, torch::Generator& generator, int directions) {
  HessianCheck check;
  for (int k = 0; k < directions; ++k) {
    // Drawn on the CPU in float64, then moved: the same directions on every device.
    auto v = torch::randn({parameter_count(model)}, generator, torch::TensorOptions().dtype(torch::kFloat64));
    v = (v / v.norm()).to(X.options());
    const auto product = hessian_vector_product(model, X, Y, loss, v);
    check.product_norm = std::max(check.product_norm, product.norm().item<double>());
    check.error = std::max(check.error, relative_error(product, hessian_difference(model, X, Y, loss, v)));
  }
  return check;
}

std::vector<GradcheckRow> compare_gradients(ResidualTransformerImpl& model, const torch::Tensor& X,
                                            const torch::Tensor& Y, Loss loss, torch::Generator& generator,
                                            int directions) {
  const auto analytic = analytic_gradients(model, X, Y, loss);
  const auto autograd = autograd_gradients(model, X, Y, loss);
  const auto names = model.parameter_names();
  auto parameters = model.parameters();
  double total = 0;
  for (const auto& g : autograd.grads) total += g.pow(2).sum().item<double>();
  const double floor = kGradientFloor * std::sqrt(total);
  std::vector<GradcheckRow> rows;
  for (size_t i = 0; i < parameters.size(); ++i) {
    const auto& g = autograd.grads[i];
    GradcheckRow row{names[i], g.norm().item<double>(), 0.0, 0.0};
    row.analytic_error = relative_error(analytic.grads[i], g, floor);
    // On the scale of ||g_p||, the largest directional derivative along a unit v: a random
    // v can be nearly orthogonal to g_p, and then <g_p, v> itself is no yardstick.
    const double scale = std::max(row.grad_norm, floor);
    for (int k = 0; k < directions; ++k) {
      // Drawn on the CPU in float64, then moved: the same directions on every device.
      auto v = torch::randn(g.sizes(), generator, torch::TensorOptions().dtype(torch::kFloat64));
      v = (v / v.norm()).to(g.options());
      const double fd = finite_difference(model, parameters[i], v, X, Y, loss);
      const double exact = (g * v).sum().item<double>();
      row.finite_difference_error =
          std::max(row.finite_difference_error, std::abs(fd - exact) / (scale > 0 ? scale : 1.0));
    }
    rows.push_back(row);
  }
  return rows;
}

int run_gradcheck(const ExperimentConfig& config, torch::Device device, std::ostream& out) {
  // The experiment's backend: `compute.backend: tuned` checks the tuned routes' gradients.
  const compute::Policy policy = compute::policy_for(config, 1);
  const compute::Scope scope(policy);
  // float64 whatever the experiment's dtype: 1e-10 is out of float32's reach, and the data
  // are drawn in float64 anyway, so these are the experiment's numbers before the cast.
  ResidualTransformer model(model_options(config));
  model->to(device, torch::kFloat64);
  const Dataset data = make_dataset(config, device, torch::kFloat64);
  auto generator = make_generator(config.seed, "gradcheck.directions");
  const auto rows = compare_gradients(*model, data.X, data.Y, config.train.loss, generator);

  out << fmt::format("gradcheck '{}': L = {}, N = {}, n = {}, d = {}, loss {}, on {}, float64\n", config.name,
                     config.model.layers, data.X.size(0), data.X.size(1), data.X.size(2), to_string(config.train.loss),
                     device.str());
  double total = 0;
  for (const auto& row : rows) total += row.grad_norm * row.grad_norm;
  out << fmt::format(
      "  scale_p = max(||g_p||, {:.0e} ||g||), g = autograd's gradient (||g|| = {:.3e}), ||.|| Frobenius\n"
      "  analytic = ||g_p analytic - g_p autograd|| / scale_p; tolerance {:.0e}\n"
      "  fd = max over {} random unit directions v of |D - <g_p, v>| / scale_p; tolerance {:.0e}\n"
      "       D = (4 D(h/2) - D(h)) / 3, D(h) = (L(p + h v) - L(p - h v)) / 2h, h = {:.0e}\n"
      "       (h shrinks tenfold, to {:.0e}, while a ReLU would change sign within the stencil)\n",
      kGradientFloor, std::sqrt(total), kAnalyticTolerance, kFiniteDifferenceDirections, kFiniteDifferenceTolerance,
      kFiniteDifferenceStep, kFiniteDifferenceMinStep);
  out << fmt::format("{:<16} {:>14} {:>12} {:>12}  {}\n", "parameter", "||g_p||", "analytic", "fd", "status");
  int failures = 0;
  for (const auto& row : rows) {
    // Written with <= so that a NaN error fails.
    const bool ok =
        row.analytic_error <= kAnalyticTolerance && row.finite_difference_error <= kFiniteDifferenceTolerance;
    failures += ok ? 0 : 1;
    out << fmt::format("{:<16} {:>14.6e} {:>12.3e} {:>12.3e}  {}\n", row.name, row.grad_norm, row.analytic_error,
                       row.finite_difference_error, ok ? "ok" : "FAIL");
  }

  // The products behind diagnostics.sharpness, on the same model and data.
  const HessianCheck hessian = compare_hessian_products(*model, data.X, data.Y, config.train.loss, generator);
  const bool hessian_ok = hessian.error <= kFiniteDifferenceTolerance;  // <=: a NaN fails
  out << fmt::format(
      "Hessian-vector products (diagnostics.sharpness): H v by double backward against (4 D(h/2) - D(h)) / 3,\n"
      "  D(h) = (g(theta + h v) - g(theta - h v)) / 2h, along {} random unit directions v of all parameters;\n"
      "  error = ||H v - D|| / max(||H v||, ||D||); tolerance {:.0e}\n"
      "{:<16} {:>14.6e} {:>12} {:>12.3e}  {}\n",
      kFiniteDifferenceDirections, kFiniteDifferenceTolerance, "H v", hessian.product_norm, "-", hessian.error,
      hessian_ok ? "ok" : "FAIL");
  failures += hessian_ok ? 0 : 1;
  out << (failures == 0 ? std::string("gradcheck passed\n")
                        : fmt::format("gradcheck FAILED for {} of {} checks\n", failures, rows.size() + 1));
  return failures == 0 ? 0 : 1;
}

}  // namespace resgd
