// Plain full-batch gradient descent with stop rules: docs/design.md, "Gradient descent".
#include "resgd/science/training.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <tuple>

#include "resgd/science/analytic_grad.h"
#include "resgd/science/diagnostics.h"
#include "resgd/science/linearized.h"
#include "resgd/science/schedule.h"

namespace resgd {
namespace {

/// Folds one logged row into the run's result (live rows and rows replayed on resume).
void record(TrainResult& result, const IterationRow& row) {
  if (row.iter == 0) result.initial_loss = row.loss;
  if (row.diagnosis) result.diagnosed.emplace_back(row.iter, *row.diagnosis);
  result.logged_iters.push_back(row.iter);
  result.logged_losses.push_back(row.loss);
  if (row.loss_lin) result.logged_loss_lin.push_back(*row.loss_lin);
  result.final_loss = row.loss;
  result.iters = row.iter;
}

/// Where a run starts: theta_0, the first iteration and the training time before it.
struct Start {
  std::vector<torch::Tensor> theta_0;
  int64_t iter = 0;
  double elapsed_s = 0;
};

/// A fresh run's start, or a checkpoint's: its parameters copied into the model and its
/// rows replayed into `result`.
Start begin(std::vector<torch::Tensor>& params, TrainResult& result, const TrainCheckpoint* resume) {
  Start start;
  torch::NoGradGuard no_grad;
  if (!resume) {
    for (const auto& p : params) start.theta_0.push_back(p.detach().clone());
    return start;
  }
  TORCH_CHECK(resume->params.size() == params.size() && resume->theta_0.size() == params.size(), "checkpoint holds ",
              resume->params.size(), " parameters, the model ", params.size());
  for (size_t i = 0; i < params.size(); ++i) params[i].copy_(resume->params[i]);
  for (const auto& row : resume->rows) record(result, row);
  return {resume->theta_0, resume->iter, resume->elapsed_s};
}

/// theta <- theta - lr grad, for the parameters GD trains.
void descend(std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& grads,
             const std::vector<size_t>& trained, double lr) {
  torch::NoGradGuard no_grad;
  if (trained.size() == params.size()) {
    at::_foreach_add_(params, grads, -lr);
    return;
  }
  std::vector<torch::Tensor> p, g;
  for (size_t i : trained) p.push_back(params[i]), g.push_back(grads[i]);
  at::_foreach_add_(p, g, -lr);
}

/// The row of iteration t: the loss and ||grad|| (every gradient together), and the
/// linearized model's loss where it is followed.
IterationRow measure(int64_t t, const LossAndGradients& state, const LinearizedLoss& linearized) {
  IterationRow row;
  row.iter = t;
  std::tie(row.loss, row.grad_norm) = compute::loss_and_norm(state.loss, state.grads);
  if (linearized.on()) row.loss_lin = linearized.at(t);
  return row;
}

/// ||theta - theta_0|| / ||theta_0|| over the parameters whose names end in one of `names`.
double relative_travel(ResidualTransformerImpl& model, const std::vector<torch::Tensor>& theta_0,
                       std::initializer_list<const char*> names) {
  torch::NoGradGuard no_grad;
  double moved = 0, size = 0;
  const auto params = model.named_parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string& key = params[i].key();
    if (std::none_of(names.begin(), names.end(),
                     [&](const char* n) { return key.size() >= 3 && key.substr(key.size() - 3) == n; }))
      continue;
    const auto start = theta_0[i].to(params[i].value().device());
    moved += (params[i].value() - start).pow(2).sum().item<double>();
    size += start.pow(2).sum().item<double>();
  }
  return size > 0 ? std::sqrt(moved / size) : 0.0;
}

/// What a run sums up once it has stopped: times, how far the weights moved.
void finish(TrainResult& result, ResidualTransformerImpl& model, const Start& start, double seconds,
            const LinearizedLoss& linearized) {
  result.wall_time_s = seconds;
  const double steps = static_cast<double>(result.iters - start.iter);
  result.steps_per_s = result.wall_time_s > start.elapsed_s ? steps / (result.wall_time_s - start.elapsed_s) : 0.0;
  result.travel_attention = relative_travel(model, start.theta_0, {"W_Q", "W_K", "W_V"});
  result.travel_ffn = relative_travel(model, start.theta_0, {"W_1", "W_2"});
  if (linearized.on()) result.ntk_lambda_max = linearized.lambda_max();
}

/// Since when the gradient has been exactly zero at a positive loss, seen at logged rows:
/// theta then no longer moves, so every later step repeats the same zero.
struct ZeroGradient {
  std::optional<int64_t> since;
  int64_t steps(const IterationRow& row) {
    since = row.grad_norm == 0 && row.loss > 0 ? std::optional<int64_t>(since.value_or(row.iter)) : std::nullopt;
    return since ? row.iter - *since : -1;
  }
};

/// The zero-gradient stretch a checkpoint's rows end in, so that a resumed run stalls at
/// the iteration the straight run does.
ZeroGradient zero_gradient_of(const TrainCheckpoint* resume) {
  ZeroGradient zero;
  if (resume)
    for (const auto& row : resume->rows) zero.steps(row);
  return zero;
}

/// The stop rule at a logged row, in order: diverged, converged, stalled, max_iters,
/// interrupted.
std::optional<Status> stop_rule(const IterationRow& row, double initial_loss, const TrainConfig& tc, bool interrupted,
                                ZeroGradient& zero) {
  if (!std::isfinite(row.loss) || row.loss > tc.divergence_factor * initial_loss) return Status::diverged;
  if (row.loss <= tc.tolerance || row.loss <= tc.rel_tolerance * initial_loss) return Status::converged;
  if (tc.stall_window > 0 && zero.steps(row) >= tc.stall_window) return Status::stalled;
  if (row.iter == tc.max_iters) return Status::max_iters;
  if (interrupted) return Status::interrupted;
  return std::nullopt;
}

/// Before the first step: a warning where train.lr is past the linearized model's edge
/// 2 / (c lambda_max(K)), where GD on it diverges (GD itself usually does too).
void warn_if_past_the_edge(const TrainConfig& tc, const LinearizedLoss& linearized, const Start& start) {
  if (!linearized.on() || start.iter != 0 || !(tc.lr > linearized.edge())) return;
  std::cerr << fmt::format(
      "warning: train.lr = {:.6g} is past the edge 2 / (c lambda_max) = {:.6g} of the NTK at initialization "
      "(lambda_max {:.6g}): GD on the linearized model diverges, and GD itself usually does\n",
      tc.lr, linearized.edge(), linearized.lambda_max());
}

/// Training seconds since `before`, plus `before`.
struct Clock {
  double before = 0;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  double seconds() const {
    return before + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
};

/// The linearized trajectory from theta_0, when asked for.
LinearizedLoss linearized_from(ResidualTransformerImpl& model, const Dataset& data, const ExperimentConfig& config,
                               const Start& start, const std::vector<size_t>& trained, const std::atomic<bool>* stop) {
  if (!config.diagnostics.linearized) return {};
  LinearizedLoss linearized(model, data.X, data.Y, config.train.loss, config.train.lr, start.theta_0, stop, &trained);
  warn_if_past_the_edge(config.train, linearized, start);
  return linearized;
}

}  // namespace

std::vector<size_t> trained_parameters(ResidualTransformerImpl& model, Freeze freeze) {
  const char* const attention[] = {"W_Q", "W_K", "W_V"};
  const char* const ffn[] = {"W_1", "W_2"};
  std::vector<size_t> trained;
  const auto named = model.named_parameters();
  for (size_t i = 0; i < named.size(); ++i) {
    const std::string& key = named[i].key();
    const std::string name = key.substr(key.rfind('.') + 1);
    auto in = [&](const auto& names) { return std::find(std::begin(names), std::end(names), name) != std::end(names); };
    const bool frozen = (freeze == Freeze::attention && in(attention)) || (freeze == Freeze::ffn && in(ffn));
    if (!frozen) trained.push_back(i);
  }
  return trained;
}

TrainResult train(ResidualTransformerImpl& model, const Dataset& data, const ExperimentConfig& config,
                  const compute::Policy& policy, const TrainHooks& hooks, const TrainCheckpoint* resume) {
  const compute::Scope scope(policy);
  const TrainConfig& tc = config.train;
  auto params = model.parameters();
  TrainResult result;
  const Start start = begin(params, result, resume);
  const std::vector<size_t> trained = trained_parameters(model, tc.freeze);
  const LinearizedLoss linearized = linearized_from(model, data, config, start, trained, hooks.stop_requested);
  double initial_loss = result.initial_loss;  // replayed on resume; read at t = 0 otherwise
  DiagnosticsRunState warnings{false, false, start.iter == 0 ? std::optional<double>(tc.lr) : std::nullopt};
  ZeroGradient zero = zero_gradient_of(resume);
  DiagnosisSchedule schedule(policy, [&](const IterationRow& row) {
    record(result, row);
    if (hooks.on_row) hooks.on_row(row);
  });
  const Clock clock{start.elapsed_s};
  auto checkpoint = [&](int64_t t) {  // theta_t, after the rows before it
    if (!hooks.on_checkpoint) return;
    schedule.drain();
    TrainCheckpoint c{t, {}, start.theta_0, clock.seconds(), {}};
    for (const auto& p : params) c.params.push_back(p.detach());
    hooks.on_checkpoint(c);
  };
  for (int64_t t = start.iter;; ++t) {
    if (tc.checkpoint_every > 0 && t > start.iter && t % tc.checkpoint_every == 0) checkpoint(t);
    const LossAndGradients state = tc.gradients == Gradients::analytic
                                       ? analytic_gradients(model, data.X, data.Y, tc.loss)
                                       : autograd_gradients(model, data.X, data.Y, tc.loss);
    if (t == 0 && hooks.on_initial_trace) hooks.on_initial_trace(state.trace);
    const bool interrupted = hooks.stop_requested && hooks.stop_requested->load();
    DiagnosisDue due = diagnosis_due(config.diagnostics, t, /*last=*/false);
    if (t % tc.log_every == 0 || t == tc.max_iters || due.any || interrupted) {
      IterationRow row = measure(t, state, linearized);
      if (t == 0) initial_loss = row.loss;
      const auto status = stop_rule(row, initial_loss, tc, interrupted, zero);
      if (status) due = diagnosis_due(config.diagnostics, t, /*last=*/true);
      DiagnosisJob job;  // a non-finite loss leaves nothing a diagnostic could measure
      if (due.any && std::isfinite(row.loss))
        job =
            begin_diagnosis({model, data.X, data.Y, tc.loss, state, start.theta_0, config.diagnostics, &warnings, due});
      row.elapsed_s = clock.seconds();
      schedule.add(std::move(row), std::move(job), status || !diagnoses_between(config.diagnostics));
      if (status) {
        schedule.drain();
        result.status = *status;
        if (*status == Status::converged) result.iters_to_tol = t;
        if (*status == Status::interrupted) checkpoint(t);  // iteration t is redone on resume
        break;
      }
    }
    descend(params, state.grads, trained, tc.lr);  // theta <- theta - lr grad
  }
  finish(result, model, start, clock.seconds(), linearized);
  return result;
}

}  // namespace resgd
