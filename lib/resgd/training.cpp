// Plain full-batch gradient descent with stop rules: DESIGN.md, "Training".
#include "resgd/training.h"

#include <chrono>
#include <cmath>

#include "resgd/analytic_grad.h"
#include "resgd/diagnostics.h"

namespace resgd {

TrainResult train(ResidualTransformerImpl& model, const Dataset& data, const ExperimentConfig& config,
                  const RowCallback& on_row, const std::atomic<bool>* stop_requested) {
  const TrainConfig& tc = config.train;
  const bool analytic = tc.gradients == "analytic";
  auto params = model.parameters();
  std::vector<torch::Tensor> theta_0;
  for (const auto& p : params) theta_0.push_back(p.detach().clone());
  const auto diagnostic_names = diagnostic_columns(model.options.layers, config.diagnostics.ntk);
  const auto pl_column = std::find(diagnostic_names.begin(), diagnostic_names.end(), "pl_ratio");

  DiagnosticsRunState diagnostics_state;  // e.g. warn once per run when the NTK is refused
  TrainResult result;
  const auto start = std::chrono::steady_clock::now();
  auto seconds_since_start = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };

  for (int64_t t = 0;; ++t) {
    LossAndGradients state = analytic ? analytic_gradients(model, data.X, data.Y, tc.loss)
                                      : autograd_gradients(model, data.X, data.Y, tc.loss);
    const bool last = t == tc.max_iters;
    const int64_t every = config.diagnostics.every;
    bool diagnose = t == 0 || (every > 0 && t % every == 0);
    const bool interrupted = stop_requested && stop_requested->load();
    if (t % tc.log_every == 0 || last || diagnose || interrupted) {
      const double loss = state.loss.item<double>();
      if (t == 0) result.initial_loss = loss;
      if (!std::isfinite(loss) || loss > tc.divergence_factor * result.initial_loss) {
        result.status = "diverged";
      } else if (loss <= tc.tolerance || loss <= tc.rel_tolerance * result.initial_loss) {
        result.status = "converged";
        result.iters_to_tol = t;
      } else if (last) {
        result.status = "max_iters";
      } else if (interrupted) {
        result.status = "interrupted";
      }
      diagnose = diagnose || !result.status.empty();  // the last iteration is always diagnosed

      IterationRow row;
      row.iter = t;
      row.loss = loss;
      torch::Tensor squared = torch::zeros({}, state.loss.options());
      for (const auto& g : state.grads) squared = squared + g.pow(2).sum();
      row.grad_norm = std::sqrt(squared.item<double>());
      if (diagnose && !diagnostic_names.empty()) {
        torch::NoGradGuard no_grad;
        row.diagnostics = compute_diagnostics({model, data.X, state, theta_0, config.diagnostics, &diagnostics_state});
        if (t == 0) result.initial_diagnostics = row.diagnostics;
        result.final_diagnostics = row.diagnostics;
        if (pl_column != diagnostic_names.end())
          result.pl_ratios.push_back(row.diagnostics[static_cast<size_t>(pl_column - diagnostic_names.begin())]);
      }
      row.elapsed_s = seconds_since_start();
      result.logged_iters.push_back(t);
      result.logged_losses.push_back(loss);
      result.final_loss = loss;
      result.iters = t;
      on_row(row);
      if (!result.status.empty()) break;
    }
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) params[i].add_(state.grads[i], -tc.lr);
  }
  result.wall_time_s = seconds_since_start();
  result.steps_per_s = result.wall_time_s > 0 ? static_cast<double>(result.iters) / result.wall_time_s : 0.0;
  return result;
}

}  // namespace resgd
