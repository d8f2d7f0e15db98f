// Plain full-batch gradient descent: docs/design.md, "Gradient descent".
// theta <- theta - lr grad L(theta), by hand under NoGradGuard; no torch::optim.
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "resgd/compute/compute.h"
#include "resgd/core/config.h"
#include "resgd/science/data.h"
#include "resgd/science/iteration.h"
#include "resgd/science/model.h"

namespace resgd {

struct TrainResult {
  Status status = Status::max_iters;
  int64_t iters = 0;  // GD steps taken
  double initial_loss = 0, final_loss = 0;
  std::optional<int64_t> iters_to_tol;
  double wall_time_s = 0, steps_per_s = 0;
  std::vector<int64_t> logged_iters;  // the iterations whose loss was read
  std::vector<double> logged_losses;
  std::vector<std::pair<int64_t, Diagnosis>> diagnosed;  // every diagnosed iteration, in order
  std::vector<double> logged_loss_lin;                   // with diagnostics.linearized: loss_lin beside logged_losses
  std::optional<double> ntk_lambda_max;                  // with diagnostics.linearized: K's largest eigenvalue at init
  /// How far the weights moved, ||theta_T - theta_0|| / ||theta_0|| over the attention's
  /// (W_Q, W_K, W_V) and the FFN's (W_1, W_2) parameters of every block.
  double travel_attention = 0, travel_ffn = 0;
};

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
  std::function<void(const IterationRow&)> on_row;  // every logged iteration, in order
  /// Every train.checkpoint_every iterations, and when a stop request ends the run.
  std::function<void(const TrainCheckpoint&)> on_checkpoint;
  /// The forward trace at theta_0, once, before the first step (not on resume).
  std::function<void(const ForwardTrace&)> on_initial_trace;
  /// When set, the run ends after the current iteration with status `interrupted`.
  const std::atomic<bool>* stop_requested = nullptr;
};

/// The parameters GD updates, by their index in model.parameters(): all but those
/// train.freeze holds.
std::vector<size_t> trained_parameters(ResidualTransformerImpl& model, Freeze freeze);

/// Runs GD on `model` until a stop rule fires, from `resume` if given (the model's
/// parameters are then set from it), computing through `policy` on this thread. The loss
/// is read from the device only on logged and diagnosed iterations, so the stop rules are
/// checked there (every iteration with the default log_every = 1).
TrainResult train(ResidualTransformerImpl& model, const Dataset& data, const ExperimentConfig& config,
                  const compute::Policy& policy, const TrainHooks& hooks, const TrainCheckpoint* resume = nullptr);

}  // namespace resgd
