// Plain full-batch gradient descent with stop rules: DESIGN.md, "Training".
#include "resgd/training.h"

#include <chrono>
#include <cmath>

#include "resgd/analytic_grad.h"
#include "resgd/diagnostics.h"

namespace resgd {
namespace {

/// Folds one logged row into the run's result (live rows and rows replayed on resume).
void record(TrainResult& result, const IterationRow& row, std::optional<size_t> pl_column) {
  if (row.iter == 0) {
    result.initial_loss = row.loss;
    result.initial_diagnostics = row.diagnostics;
  }
  if (!row.diagnostics.empty()) {
    result.final_diagnostics = row.diagnostics;
    if (pl_column) result.pl_ratios.push_back(row.diagnostics[*pl_column]);
  }
  result.logged_iters.push_back(row.iter);
  result.logged_losses.push_back(row.loss);
  result.final_loss = row.loss;
  result.iters = row.iter;
}

}  // namespace

TrainResult train(ResidualTransformerImpl& model, const Dataset& data, const ExperimentConfig& config,
                  const TrainHooks& hooks, const TrainCheckpoint* resume) {
  const TrainConfig& tc = config.train;
  const bool analytic = tc.gradients == "analytic";
  auto params = model.parameters();
  const auto diagnostic_names = diagnostic_columns(model.options.layers, config.diagnostics.ntk);
  std::optional<size_t> pl_column;
  for (size_t i = 0; i < diagnostic_names.size(); ++i)
    if (diagnostic_names[i] == "pl_ratio") pl_column = i;

  TrainResult result;
  std::vector<torch::Tensor> theta_0;
  int64_t first_iter = 0;
  double elapsed_before = 0;
  if (resume) {
    TORCH_CHECK(resume->params.size() == params.size() && resume->theta_0.size() == params.size(),
                "checkpoint holds ", resume->params.size(), " parameters, the model ", params.size());
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) params[i].copy_(resume->params[i]);
    theta_0 = resume->theta_0;
    first_iter = resume->iter;
    elapsed_before = resume->elapsed_s;
    for (const auto& row : resume->rows) record(result, row, pl_column);
  } else {
    for (const auto& p : params) theta_0.push_back(p.detach().clone());
  }

  DiagnosticsRunState diagnostics_state;  // e.g. warn once per run when the NTK is refused
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return elapsed_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  auto checkpoint = [&](int64_t t) {
    if (!hooks.on_checkpoint) return;
    TrainCheckpoint c{t, {}, theta_0, elapsed(), {}};  // the rows are in metrics.csv already
    for (const auto& p : params) c.params.push_back(p.detach());
    hooks.on_checkpoint(c);
  };

  for (int64_t t = first_iter;; ++t) {
    if (tc.checkpoint_every > 0 && t > first_iter && t % tc.checkpoint_every == 0) checkpoint(t);
    LossAndGradients state = analytic ? analytic_gradients(model, data.X, data.Y, tc.loss)
                                      : autograd_gradients(model, data.X, data.Y, tc.loss);
    const bool last = t == tc.max_iters;
    const int64_t every = config.diagnostics.every;
    bool diagnose = t == 0 || (every > 0 && t % every == 0);
    const bool interrupted = hooks.stop_requested && hooks.stop_requested->load();
    if (t % tc.log_every == 0 || last || diagnose || interrupted) {
      IterationRow row;
      row.iter = t;
      {  // loss and ||grad|| come back together: one host-device sync per logged iteration
        const torch::Tensor grad_norm = torch::stack(at::_foreach_norm(state.grads)).norm();
        const torch::Tensor host = torch::stack({state.loss.reshape({}), grad_norm}).to(torch::kCPU, torch::kFloat64);
        row.loss = host[0].item<double>();
        row.grad_norm = host[1].item<double>();
      }
      const double initial = t == 0 ? row.loss : result.initial_loss;
      if (!std::isfinite(row.loss) || row.loss > tc.divergence_factor * initial) {
        result.status = "diverged";
      } else if (row.loss <= tc.tolerance || row.loss <= tc.rel_tolerance * initial) {
        result.status = "converged";
        result.iters_to_tol = t;
      } else if (last) {
        result.status = "max_iters";
      } else if (interrupted) {
        result.status = "interrupted";
      }
      diagnose = diagnose || !result.status.empty();  // the last iteration is always diagnosed

      if (diagnose && !diagnostic_names.empty()) {
        torch::NoGradGuard no_grad;
        row.diagnostics =
            compute_diagnostics({model, data.X, state, theta_0, config.diagnostics, &diagnostics_state});
      }
      row.elapsed_s = elapsed();
      record(result, row, pl_column);
      if (hooks.on_row) hooks.on_row(row);
      if (result.status == "interrupted") checkpoint(t);  // theta_t: iteration t is redone on resume
      if (!result.status.empty()) break;
    }
    torch::NoGradGuard no_grad;
    at::_foreach_add_(params, state.grads, -tc.lr);  // theta <- theta - lr grad, one dispatch
  }
  result.wall_time_s = elapsed();
  const double steps = static_cast<double>(result.iters - first_iter);
  result.steps_per_s = result.wall_time_s > elapsed_before ? steps / (result.wall_time_s - elapsed_before) : 0.0;
  return result;
}

}  // namespace resgd
