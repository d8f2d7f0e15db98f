// The start-of-run time estimate (estimate.h).
#include "resgd/run/estimate.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <tuple>

#include "resgd/compute/compute.h"
#include "resgd/core/cost.h"
#include "resgd/science/analytic_grad.h"
#include "resgd/science/data.h"
#include "resgd/science/device.h"
#include "resgd/science/diagnostics.h"
#include "resgd/science/model.h"

namespace resgd {
namespace {

/// Seconds `work` takes, its result read back (a CUDA kernel is timed, not queued).
template <class Work>
double seconds(Work&& work) {
  const auto start = std::chrono::steady_clock::now();
  work();
  if (torch::cuda::is_available()) torch::cuda::synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// How many of iterations 1..max_iters-1 fall on a cadence of `every` (0: none), plus the
/// first and the last.
double count_on(int64_t every, int64_t max_iters) {
  return 2 + (every > 0 ? static_cast<double>(std::max<int64_t>(max_iters - 1, 0) / every) : 0.0);
}

/// One step and one diagnosis of `config`, each part timed on its own.
struct Measured {
  double step_s = 0, diagnosis_s = 0, ntk_s = 0, sharpness_s = 0, linearized_s = 0;
};

/// diagnostics.linearized's kernel for all of `data`, from its pieces: the Jacobian is R
/// backward passes through the whole batch (R the outputs; three are timed), its Gram
/// matrix R^2 P multiply-adds (timed on a few rows of J), and torch::linalg::eigh of K
/// about R^3 times one of 256 x 256. Timing the whole would take as long as forming it.
double linearized_seconds(ResidualTransformerImpl& model, const Dataset& data) {
  const int64_t P = parameter_count(model);
  const int64_t R = ntk_jacobian_entries(model, data.X) / P;
  torch::AutoGradMode with_grad(true);
  const auto params = model.parameters();
  const torch::Tensor y = model.forward(data.X).flatten();
  const int64_t timed_rows = std::min<int64_t>(R, 3);
  const double rows_s = seconds([&] {
    for (int64_t r = 0; r < timed_rows; ++r)
      torch::autograd::grad({y[r]}, params, {}, /*retain_graph=*/true, /*create_graph=*/false, /*allow_unused=*/true);
  });
  torch::NoGradGuard no_grad;
  const int64_t rows = std::clamp<int64_t>(4'000'000 / std::max<int64_t>(P, 1), 16, std::max<int64_t>(R, 16));
  const auto J = torch::ones({std::min(rows, R), P}, torch::kFloat64);
  const double gram_s = seconds([&] { J.matmul(J.t()); });
  const int64_t side = std::min<int64_t>(R, 256);
  const auto K = torch::eye(side, torch::kFloat64) + torch::ones({side, side}, torch::kFloat64);
  const double eigh_s = seconds([&] { torch::linalg::eigh(K, "L"); });
  const auto ratio = [](int64_t a, int64_t b) {
    return static_cast<double>(a) / static_cast<double>(std::max<int64_t>(b, 1));
  };
  return rows_s * ratio(R, timed_rows) + gram_s * std::pow(ratio(R, J.size(0)), 2) +
         eigh_s * std::pow(ratio(R, side), 3);
}

Measured measure(const ExperimentConfig& config, int runs_at_once) {
  const compute::Policy policy = compute::policy_for(config, runs_at_once);
  const compute::Scope scope(policy);
  const torch::Device device = resolve_device(config);
  const torch::Dtype dtype = resolve_dtype(config.dtype);
  const Dataset data = make_dataset(config, device, dtype);
  ResidualTransformer model(model_options(config));
  model->to(device, dtype);
  auto gradients = [&] {
    return config.train.gradients == Gradients::analytic
               ? analytic_gradients(*model, data.X, data.Y, config.train.loss)
               : autograd_gradients(*model, data.X, data.Y, config.train.loss);
  };
  gradients();  // the first step pays for allocations and kernel choice
  Measured m;
  LossAndGradients state;
  m.step_s = seconds([&] { state = gradients(); });
  std::vector<torch::Tensor> theta_0;
  for (const auto& p : model->parameters()) theta_0.push_back(p.detach().clone());
  DiagnosticsConfig plain = config.diagnostics;
  plain.ntk = plain.sharpness = false;
  torch::NoGradGuard no_grad;
  DiagnosticsRunState quiet;
  m.diagnosis_s = seconds([&] {
    compute_diagnostics({*model, data.X, data.Y, config.train.loss, state, theta_0, plain, &quiet, {}});
  });
  if (config.diagnostics.ntk && ntk_jacobian_entries(*model, data.X) <= config.diagnostics.ntk_max_entries)
    m.ntk_s = seconds([&] { ntk_lambda_min(*model, data.X); });
  if (config.diagnostics.sharpness)
    m.sharpness_s = seconds([&] { sharpness(*model, data.X, data.Y, config.train.loss); });
  if (config.diagnostics.linearized) m.linearized_s = linearized_seconds(*model, data);
  return m;
}

std::string duration(double s) {
  if (s < 1e-3) return fmt::format("{:.2g} ms", s * 1e3);
  if (s < 1) return fmt::format("{:.3g} ms", s * 1e3);
  if (s < 120) return fmt::format("{:.3g} s", s);
  if (s < 7200) return fmt::format("{:.3g} min", s / 60);
  return fmt::format("{:.3g} h", s / 3600);
}

}  // namespace

double TimeEstimate::wall_s() const {
  const double at_once = static_cast<double>(std::max<size_t>(1, std::min<size_t>(runs, static_cast<size_t>(jobs))));
  return (training_s + diagnostics_s()) / at_once;
}

TimeEstimate estimate_time(const std::vector<ExperimentConfig>& runs, int jobs) {
  TimeEstimate e;
  e.runs = runs.size();
  e.jobs = std::max(1, jobs);
  const int runs_at_once = static_cast<int>(std::min<size_t>(runs.size(), static_cast<size_t>(e.jobs)));
  // Runs that differ only in step size, seed or targets cost the same: measured once.
  using Shape = std::tuple<std::string, double, bool, bool, bool, int, int, int64_t>;
  std::map<Shape, Measured> measured;
  for (const auto& run : runs) {
    const Shape shape{run.device,
                      gd_step_flops(run),
                      run.diagnostics.ntk,
                      run.diagnostics.sharpness,
                      run.diagnostics.linearized,
                      static_cast<int>(run.dtype),
                      static_cast<int>(run.train.gradients),
                      run.model.ffn_width};
    auto it = measured.find(shape);
    if (it == measured.end()) it = measured.emplace(shape, measure(run, runs_at_once)).first;
    const Measured& m = it->second;
    const auto& d = run.diagnostics;
    const int64_t steps = run.train.max_iters;
    e.training_s += m.step_s * static_cast<double>(steps);
    e.diagnosis_total_s += m.diagnosis_s * count_on(d.every, steps);
    e.ntk_total_s += m.ntk_s * count_on(d.ntk_every.value_or(d.every), steps);
    e.sharpness_total_s += m.sharpness_s * count_on(d.sharpness_every.value_or(d.every), steps);
    e.linearized_total_s += m.linearized_s;
    if (m.step_s + m.diagnosis_s + m.ntk_s + m.sharpness_s + m.linearized_s >
        e.step_s + e.diagnosis_s + e.ntk_s + e.sharpness_s + e.linearized_s)
      std::tie(e.step_s, e.diagnosis_s, e.ntk_s, e.sharpness_s, e.linearized_s) =
          std::tie(m.step_s, m.diagnosis_s, m.ntk_s, m.sharpness_s, m.linearized_s);
  }
  return e;
}

std::string describe(const TimeEstimate& e) {
  std::string parts = fmt::format("a step {}, a diagnosis {}", duration(e.step_s), duration(e.diagnosis_s));
  if (e.ntk_s > 0) parts += fmt::format(", the NTK {}", duration(e.ntk_s));
  if (e.sharpness_s > 0) parts += fmt::format(", the sharpness {}", duration(e.sharpness_s));
  if (e.linearized_s > 0) parts += fmt::format(", the linearized trajectory's kernel {}", duration(e.linearized_s));
  const std::string runs =
      e.runs == 1 ? "the run" : fmt::format("{} runs, {} at once", e.runs, std::min<size_t>(e.runs, e.jobs));
  return fmt::format("estimate: at most {} for {} ({}; every run to train.max_iters)", duration(e.wall_s()), runs,
                     parts);
}

std::optional<std::string> diagnostics_warning(const TimeEstimate& e, const ExperimentConfig& config) {
  if (!(e.diagnostics_s() > e.training_s)) return std::nullopt;
  // The costliest part, and the key that thins it out.
  const auto& d = config.diagnostics;
  if (e.linearized_total_s > std::max({e.sharpness_total_s, e.ntk_total_s, e.diagnosis_total_s}))
    return fmt::format(
        "warning: the diagnostics would take {:.3g} times as long as the training (diagnostics.linearized: its "
        "kernel, {} before the first step; fewer samples, tokens or target features make it smaller)",
        e.diagnostics_s() / std::max(e.training_s, 1e-12), duration(e.linearized_total_s));
  const std::tuple<double, std::string, std::string, int64_t> parts[] = {
      {e.sharpness_total_s, "the sharpness", "diagnostics.sharpness_every", d.sharpness_every.value_or(d.every)},
      {e.ntk_total_s, "the NTK", "diagnostics.ntk_every", d.ntk_every.value_or(d.every)},
      {e.diagnosis_total_s, "the spectra", "diagnostics.every", d.every}};
  const auto& [cost, what, key, every] = *std::max_element(
      std::begin(parts), std::end(parts), [](const auto& a, const auto& b) { return std::get<0>(a) < std::get<0>(b); });
  return fmt::format(
      "warning: the diagnostics would take {:.3g} times as long as the training ({} {}: {}); a larger {} "
      "measures it less often",
      e.diagnostics_s() / std::max(e.training_s, 1e-12), what,
      every > 0 ? fmt::format("every {} steps", every) : std::string("at the first and last step"), duration(cost),
      key);
}

}  // namespace resgd
