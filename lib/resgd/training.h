// Plain full-batch gradient descent: DESIGN.md, "Training: plain gradient descent".
// theta <- theta - lr * grad L(theta), by hand under NoGradGuard; no torch::optim.
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "resgd/config.h"
#include "resgd/data.h"
#include "resgd/model.h"

namespace resgd {

/// One row of metrics.csv.
struct IterationRow {
  int64_t iter = 0;
  double loss = 0, grad_norm = 0, elapsed_s = 0;
  std::vector<double> diagnostics;  // diagnostic_columns() order; empty when not computed
};

struct TrainResult {
  std::string status;  // converged | max_iters | diverged | interrupted
  int64_t iters = 0;   // GD steps taken
  double initial_loss = 0, final_loss = 0;
  std::optional<int64_t> iters_to_tol;
  double wall_time_s = 0, steps_per_s = 0;
  std::vector<int64_t> logged_iters;  // the iterations whose loss was read
  std::vector<double> logged_losses;
  std::vector<double> initial_diagnostics, final_diagnostics;
  std::vector<std::vector<double>> diagnosed;  // every diagnosed row's diagnostics, in order
};

using RowCallback = std::function<void(const IterationRow&)>;

/// Everything GD needs to continue at iteration `iter`: no random draws happen during
/// training, so the parameters at `iter` and the rows before it determine the rest.
struct TrainCheckpoint {
  int64_t iter = 0;                    // the next iteration to compute
  std::vector<torch::Tensor> params;   // theta_iter, registration order
  std::vector<torch::Tensor> theta_0;  // for dist_init
  double elapsed_s = 0;                // training time before `iter`
  std::vector<IterationRow> rows;      // the logged rows of iterations < iter (to resume)
};

struct TrainHooks {
  RowCallback on_row;  // every logged iteration
  /// Every train.checkpoint_every iterations, and when a stop request ends the run.
  std::function<void(const TrainCheckpoint&)> on_checkpoint;
  /// When set, the run ends after the current iteration with status `interrupted`.
  const std::atomic<bool>* stop_requested = nullptr;
};

/// Runs GD on `model` until a stop rule fires, from `resume` if given (the model's
/// parameters are then set from it). The loss is read from the device only on logged
/// and diagnostic iterations, so the stop rules are checked there (every iteration with
/// the default log_every = 1).
TrainResult train(ResidualTransformerImpl& model, const Dataset& data, const ExperimentConfig& config,
                  const TrainHooks& hooks, const TrainCheckpoint* resume = nullptr);

/// Shorthand: rows to `on_row`, no checkpoints.
inline TrainResult train(ResidualTransformerImpl& model, const Dataset& data, const ExperimentConfig& config,
                         const RowCallback& on_row, const std::atomic<bool>* stop_requested = nullptr) {
  return train(model, data, config, TrainHooks{on_row, nullptr, stop_requested});
}

}  // namespace resgd
