// Diagnostics: docs/design.md, "Diagnostics".
#include "resgd/science/diagnostics.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <iostream>
#include <limits>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace resgd {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

/// A block's columns, in metrics.csv's order, with the field each is.
constexpr std::pair<const char*, double BlockDiagnosis::*> kBlockColumns[] = {
    {"sigma_min_g", &BlockDiagnosis::sigma_min_g},
    {"sigma_max_g", &BlockDiagnosis::sigma_max_g},
    {"cond_g", &BlockDiagnosis::cond_g},
    {"sigma_min_a", &BlockDiagnosis::sigma_min_a},
    {"sigma_max_a", &BlockDiagnosis::sigma_max_a},
    {"cond_a", &BlockDiagnosis::cond_a},
    {"sigma_min_gstack", &BlockDiagnosis::sigma_min_gstack},
    {"sigma_max_gstack", &BlockDiagnosis::sigma_max_gstack},
    {"cond_gstack", &BlockDiagnosis::cond_gstack},
    {"attn_entropy", &BlockDiagnosis::attn_entropy},
    {"rank1_res", &BlockDiagnosis::rank1_res}};

torch::Tensor scalar_like(double value, const torch::Tensor& like) { return torch::full({}, value, like.options()); }

/// One diagnostic value: a detached 0-d float64 tensor, still on the run's device.
torch::Tensor as_value(const torch::Tensor& v) { return v.detach().to(torch::kFloat64).reshape({}); }

/// Parameters may have requires_grad off (analytic gradients); the autograd diagnostics
/// switch it on for their call only, and restore it even if autograd throws.
struct RequireGrad {
  std::vector<torch::Tensor>& params;
  std::vector<bool> before;
  explicit RequireGrad(std::vector<torch::Tensor>& p) : params(p) {
    for (auto& t : params) before.push_back(t.requires_grad()), t.requires_grad_(true);
  }
  ~RequireGrad() {
    for (size_t i = 0; i < params.size(); ++i) params[i].requires_grad_(before[i]);
  }
};

/// Calls use(hvp) where hvp(v) is H v, H the Hessian of the loss at the model's current
/// parameters and v a flat vector over all parameters in registration order: double
/// backward, the gradient taken once with its graph and differentiated again per product.
template <class Use>
auto with_hessian_products(ResidualTransformerImpl& model, const torch::Tensor& X, const torch::Tensor& Y, Loss loss,
                           Use&& use) {
  torch::AutoGradMode grad_mode(true);  // the training loop calls us under NoGradGuard
  auto params = model.parameters();
  RequireGrad require_grad(params);
  const auto L = objective(model.forward(X.detach()), Y.detach(), loss);
  const auto grads = torch::autograd::grad({L}, params, {}, /*retain_graph=*/true, /*create_graph=*/true);
  // A gradient that does not depend on any parameter has no graph to differentiate: its
  // part of H v is zero, which allow_unused below and the zeros fill in.
  std::vector<size_t> curved;
  for (size_t i = 0; i < grads.size(); ++i)
    if (grads[i].requires_grad()) curved.push_back(i);
  auto hvp = [&](const torch::Tensor& v) {
    const auto parts = split_like(v, params);
    std::vector<torch::Tensor> outputs, directions;
    for (size_t i : curved) outputs.push_back(grads[i]), directions.push_back(parts[i]);
    std::vector<torch::Tensor> Hv_parts(params.size());
    if (!outputs.empty())
      Hv_parts = torch::autograd::grad(outputs, params, directions, /*retain_graph=*/true,
                                       /*create_graph=*/false, /*allow_unused=*/true);
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> flat;
    for (size_t i = 0; i < params.size(); ++i)
      flat.push_back(Hv_parts[i].defined() ? Hv_parts[i].flatten() : torch::zeros({params[i].numel()}, v.options()));
    return torch::cat(flat);
  };
  return use(hvp);
}

/// Prints `message` as a warning the first time per run (`run_flag`), or without a run
/// state the first time per process, rather than once per diagnosed iteration.
void warn_once(bool* run_flag, std::atomic<bool>& process_flag, const std::string& message) {
  const bool already = run_flag ? std::exchange(*run_flag, true) : process_flag.exchange(true);
  if (!already) std::cerr << "warning: " << message << "\n";
}

}  // namespace

LinearConvergence linear_convergence(const std::vector<int64_t>& iters, const std::vector<double>& losses,
                                     std::optional<int64_t> iters_to_tol, bool diverged) {
  TORCH_CHECK(iters.size() == losses.size(), "linear_rate: ", iters.size(), " iterations but ", losses.size(),
              " losses");
  LinearConvergence verdict;
  if (iters.empty()) return verdict;
  const int64_t end = iters_to_tol.value_or(iters.back());
  const double start = 0.1 * static_cast<double>(end);
  std::vector<double> xs, ys;
  for (size_t i = 0; i < iters.size(); ++i) {
    const double x = static_cast<double>(iters[i]);
    if (x < start || iters[i] > end || !(losses[i] > 0) || !std::isfinite(losses[i])) continue;
    xs.push_back(x);
    ys.push_back(std::log(losses[i]));
  }
  const auto fit = fit_line(xs, ys);
  if (!fit) return verdict;
  verdict.rate = std::exp(fit->slope);
  verdict.correlation = fit->correlation;
  verdict.decades = -fit->slope * (xs.back() - xs.front()) / std::log(10.0);
  // A run that reached its tolerance on the line converged linearly however few decades it
  // needed; one that did not must show at least a decade, or it has stalled.
  verdict.linear = !diverged && verdict.correlation <= -kLinearCorrelation && (iters_to_tol || verdict.decades >= 1);
  return verdict;
}

double linear_rate(const std::vector<int64_t>& iters, const std::vector<double>& losses,
                   std::optional<int64_t> iters_to_tol) {
  return linear_convergence(iters, losses, iters_to_tol, false).rate;
}

std::optional<LineFit> fit_line(const std::vector<double>& xs, const std::vector<double>& ys) {
  TORCH_CHECK(xs.size() == ys.size(), "fit_line: ", xs.size(), " x values but ", ys.size(), " y values");
  if (xs.size() < 2) return std::nullopt;
  // Centre both before the sums: with x in the thousands, n*sxx - sx^2 cancels badly.
  const double count = static_cast<double>(xs.size());
  double mx = 0, my = 0;
  for (size_t i = 0; i < xs.size(); ++i) mx += xs[i], my += ys[i];
  mx /= count, my /= count;
  double sxx = 0, syy = 0, sxy = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    sxx += (xs[i] - mx) * (xs[i] - mx);
    syy += (ys[i] - my) * (ys[i] - my);
    sxy += (xs[i] - mx) * (ys[i] - my);
  }
  if (!(sxx > 0)) return std::nullopt;
  return LineFit{sxy / sxx, syy > 0 ? sxy / std::sqrt(sxx * syy) : kNaN};
}

double median_of_finite(std::vector<double> values) {
  values.erase(std::remove_if(values.begin(), values.end(), [](double v) { return !std::isfinite(v); }), values.end());
  if (values.empty()) return kNaN;
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

std::vector<std::string> diagnostic_columns(int64_t layers, const DiagnosticsConfig& config) {
  std::vector<std::string> columns;
  for (int64_t l = 1; l <= layers; ++l)
    for (const auto& [name, field] : kBlockColumns) columns.push_back(name + std::to_string(l));
  for (const char* name : {"sigma_min_phi", "pl_ratio", "dist_init"}) columns.emplace_back(name);
  if (config.ntk) columns.emplace_back("ntk_lambda_min");
  if (config.sharpness) columns.emplace_back("sharpness");
  return columns;
}

std::vector<std::optional<double>> to_cells(const Diagnosis& diagnosis, const DiagnosticsConfig& config) {
  std::vector<std::optional<double>> cells;
  for (const BlockDiagnosis& block : diagnosis.blocks)
    for (const auto& [name, field] : kBlockColumns) cells.emplace_back(block.*field);
  cells.insert(cells.end(), {diagnosis.sigma_min_phi, diagnosis.pl_ratio, diagnosis.dist_init});
  if (config.ntk) cells.push_back(diagnosis.ntk_lambda_min);
  if (config.sharpness) cells.push_back(diagnosis.sharpness);
  return cells;
}

Diagnosis from_cells(const std::vector<std::optional<double>>& cells, int64_t layers, const DiagnosticsConfig& config) {
  TORCH_CHECK(cells.size() == diagnostic_columns(layers, config).size(), "from_cells: ", cells.size(), " cells for ",
              diagnostic_columns(layers, config).size(), " columns");
  Diagnosis diagnosis;
  auto cell = cells.begin();
  auto value = [&] { return (cell++)->value_or(kNaN); };  // a required cell left empty reads NaN
  diagnosis.blocks.resize(static_cast<size_t>(layers));
  for (BlockDiagnosis& block : diagnosis.blocks)
    for (const auto& [name, field] : kBlockColumns) block.*field = value();
  diagnosis.sigma_min_phi = value();
  diagnosis.pl_ratio = value();
  diagnosis.dist_init = value();
  if (config.ntk) diagnosis.ntk_lambda_min = *cell++;
  if (config.sharpness) diagnosis.sharpness = *cell++;
  return diagnosis;
}

namespace {

/// Whether t is on a cadence of `every` steps (0: none between the first and the last).
bool on_cadence(int64_t every, int64_t t) { return every > 0 && t % every == 0; }

}  // namespace

DiagnosisDue diagnosis_due(const DiagnosticsConfig& config, int64_t t, bool last) {
  if (t == 0 || last) return {true, config.ntk, config.sharpness};
  DiagnosisDue due;
  due.ntk = config.ntk && on_cadence(config.ntk_every.value_or(config.every), t);
  due.sharpness = config.sharpness && on_cadence(config.sharpness_every.value_or(config.every), t);
  due.any = on_cadence(config.every, t) || due.ntk || due.sharpness;
  return due;
}

bool diagnoses_between(const DiagnosticsConfig& config) {
  return config.every > 0 || (config.ntk && config.ntk_every.value_or(config.every) > 0) ||
         (config.sharpness && config.sharpness_every.value_or(config.every) > 0);
}

// ---------------------------------------------------------------------------------------
torch::Tensor attention_entropy(const torch::Tensor& S, bool causal) {
  TORCH_CHECK(S.dim() == 3 && S.size(1) == S.size(2), "attention_entropy needs S (N, n, n), got ", S.sizes());
  const int64_t n = S.size(2);
  // A single key leaves softmax no choice: uniform and one-hot coincide, so call it 1
  // (uniform) rather than 0 / 0.
  if (n == 1) return scalar_like(1.0, S);
  auto entropy = -torch::xlogy(S, S).sum(-1);  // (N, n); 0 log 0 = 0 (masked keys)
  // Query i may attend to n keys, or i + 1 under a causal mask: dividing by log n there
  // would call perfectly uniform causal attention "0.6", so each row gets its own maximum.
  // Query 0 under the mask has one key and no choice; averaging it in as 1 would only
  // dilute the others, so it is left out.
  if (!causal) return entropy.mean() / std::log(static_cast<double>(n));
  auto keys = torch::arange(2, n + 1, S.options());  // (n - 1,): keys of queries 1..n-1
  return (entropy.narrow(1, 1, n - 1) / keys.log()).mean();
}

torch::Tensor rank1_residual(const torch::Tensor& M) {
  TORCH_CHECK(M.dim() == 3, "rank1_residual needs (N, n, d), got ", M.sizes());
  auto residual = (M - M.mean(1, /*keepdim=*/true)).flatten(1).norm(2, 1);  // (N,)
  auto norm = M.flatten(1).norm(2, 1);                                      // (N,)
  return torch::where(norm > 0, residual / norm, scalar_like(0.0, norm)).mean();
}

torch::Tensor within_sequence_loss(const torch::Tensor& Y, Loss loss) {
  TORCH_CHECK(Y.dim() == 3, "within_sequence_loss needs per-token targets (N, n, d_y), got ", Y.sizes());
  return objective(Y.mean(1, /*keepdim=*/true).expand_as(Y), Y, loss);
}

// ---------------------------------------------------------------------------------------
int64_t parameter_count(const ResidualTransformerImpl& model) {
  int64_t count = 0;
  for (const auto& p : model.parameters()) count += p.numel();
  return count;
}

std::vector<torch::Tensor> split_like(const torch::Tensor& flat, const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> parts;
  int64_t offset = 0;
  for (const auto& p : params) {
    TORCH_CHECK(offset + p.numel() <= flat.numel(), "a flat vector of ", flat.numel(),
                " entries is shorter than the parameters");
    parts.push_back(flat.narrow(0, offset, p.numel()).view_as(p));
    offset += p.numel();
  }
  TORCH_CHECK(offset == flat.numel(), "a flat vector of ", flat.numel(), " entries for ", offset, " parameters");
  return parts;
}

int64_t ntk_jacobian_entries(const ResidualTransformerImpl& model, const torch::Tensor& X) {
  TORCH_CHECK(X.dim() == 3, "X must be (N, n, d), got ", X.sizes());
  const auto& o = model.options;
  const int64_t outputs = X.size(0) * (o.readout == Readout::mean ? 1 : X.size(1)) * o.out_dim;
  return outputs * parameter_count(model);
}

torch::Tensor ntk_gram(ResidualTransformerImpl& model, const torch::Tensor& X, const std::atomic<bool>* stop,
                       const std::vector<size_t>* only) {
  torch::AutoGradMode grad_mode(true);  // the training loop calls us under NoGradGuard
  auto all = model.parameters();
  RequireGrad require_grad(all);
  std::vector<torch::Tensor> params = all;  // the columns of J: every parameter, or those `only` names
  if (only) {
    params.clear();
    for (size_t i : *only) params.push_back(all.at(i));
  }

  auto y = model.forward(X.detach()).flatten();  // (R,)
  const int64_t rows = y.numel();
  int64_t cols = 0;
  for (const auto& p : params) cols += p.numel();
  auto J = torch::empty({rows, cols}, y.options().requires_grad(false));  // (R, P)
  for (int64_t r = 0; r < rows; ++r) {
    if (stop && stop->load())
      throw Stopped(fmt::format("stopped while forming the NTK's Jacobian, at row {} of {}", r, rows));
    auto grads = torch::autograd::grad({y[r]}, params, {}, /*retain_graph=*/true,
                                       /*create_graph=*/false, /*allow_unused=*/true);
    std::vector<torch::Tensor> flat;
    for (size_t i = 0; i < grads.size(); ++i)
      flat.push_back(grads[i].defined() ? grads[i].flatten() : torch::zeros({params[i].numel()}, y.options()));
    torch::NoGradGuard no_grad;
    J[r].copy_(torch::cat(flat));
  }
  torch::NoGradGuard no_grad;
  return J.matmul(J.t());  // (R, R)
}

torch::Tensor ntk_lambda_min(ResidualTransformerImpl& model, const torch::Tensor& X) {
  return smallest_psd_eigenvalue(ntk_gram(model, X));
}

NtkSpectrum ntk_spectrum(const torch::Tensor& K, ResidualTransformerImpl& model, const torch::Tensor& X,
                         const torch::Tensor& Y, Loss loss) {
  torch::NoGradGuard no_grad;
  const auto [eigenvalues, U] = torch::linalg::eigh(K.to(torch::kCPU, torch::kFloat64), "L");  // ascending
  const torch::Tensor r = (model.forward(X) - Y).flatten().to(torch::kCPU, torch::kFloat64);
  const double c = loss == Loss::mean ? 1.0 / static_cast<double>(X.size(0)) : 1.0;
  const torch::Tensor energy = (0.5 * c) * U.t().matmul(r).pow(2);
  NtkSpectrum out;
  out.eigenvalues.assign(eigenvalues.data_ptr<double>(), eigenvalues.data_ptr<double>() + eigenvalues.numel());
  out.energy.assign(energy.data_ptr<double>(), energy.data_ptr<double>() + energy.numel());
  return out;
}

// ---------------------------------------------------------------------------------------
torch::Tensor hessian_vector_product(ResidualTransformerImpl& model, const torch::Tensor& X, const torch::Tensor& Y,
                                     Loss loss, const torch::Tensor& v) {
  return with_hessian_products(model, X, Y, loss, [&](const auto& hvp) { return hvp(v); });
}

double sharpness_tolerance(torch::ScalarType dtype) {
  return std::sqrt(dtype == torch::kFloat64 ? std::numeric_limits<double>::epsilon()
                                            : std::numeric_limits<float>::epsilon());
}

LargestEigenvalue sharpness(ResidualTransformerImpl& model, const torch::Tensor& X, const torch::Tensor& Y, Loss loss) {
  const auto options = X.options();
  // A fixed start vector, so a diagnosis never draws from (or moves) the run's random
  // streams; drawn on the CPU in float64, so every device and dtype starts from the same one.
  auto generator = make_generator(0, "diagnostics.sharpness");
  const auto start = torch::randn({parameter_count(model)}, generator, torch::kFloat64).to(options);
  return with_hessian_products(model, X, Y, loss, [&](const auto& hvp) {
    return largest_eigenvalue(hvp, start, kSharpnessMaxProducts, sharpness_tolerance(X.scalar_type()));
  });
}

// ---------------------------------------------------------------------------------------
namespace {

/// Values as doubles, in one device-to-host transfer.
std::vector<double> read_back(const std::vector<torch::Tensor>& values) {
  if (values.empty()) return {};
  auto all = torch::stack(values).to(torch::kCPU, torch::kFloat64).contiguous();
  const double* data = all.data_ptr<double>();
  return std::vector<double>(data, data + all.numel());
}

/// What reads theta_t and its gradient, in column order: pl_ratio, dist_init and, where
/// switched on and due, ntk_lambda_min and sharpness. 0-d tensors on the run's device.
std::vector<torch::Tensor> parameter_values(const DiagnosticsInput& input, std::optional<NtkSpectrum>& spectrum) {
  torch::NoGradGuard no_grad;
  auto& model = input.model;
  std::vector<torch::Tensor> values;
  auto push = [&](const torch::Tensor& v) { values.push_back(as_value(v)); };
  const auto& loss = input.state.loss;
  torch::Tensor grad_sq = torch::zeros({}, loss.options());
  for (const auto& g : input.state.grads) grad_sq = grad_sq + g.pow(2).sum();
  push(grad_sq / (2 * loss));  // 0 / 0 = NaN at an exact fit: no PL constant to observe

  const auto params = model.parameters();
  TORCH_CHECK(params.size() == input.theta_0.size(), "diagnostics: ", params.size(), " parameters but ",
              input.theta_0.size(), " in theta_0");
  torch::Tensor dist_sq = torch::zeros({}, loss.options());
  for (size_t i = 0; i < params.size(); ++i)
    dist_sq = dist_sq + (params[i] - input.theta_0[i].to(params[i].device())).pow(2).sum();
  push(dist_sq.sqrt());

  if (input.config.ntk && input.due.ntk) {
    const int64_t entries = ntk_jacobian_entries(model, input.X);
    if (entries <= input.config.ntk_max_entries) {
      const torch::Tensor K = ntk_gram(model, input.X);
      push(smallest_psd_eigenvalue(K));
      if (input.config.ntk_spectrum) spectrum = ntk_spectrum(K, model, input.X, input.Y, input.loss);
    } else {
      push(scalar_like(kNaN, loss));
      // The sizes never change within a run, so once per run is enough.
      static std::atomic<bool> warned_in_process{false};
      warn_once(input.run_state ? &input.run_state->ntk_refusal_warned : nullptr, warned_in_process,
                fmt::format("ntk_lambda_min skipped: the Jacobian would have {} entries, above "
                            "diagnostics.ntk_max_entries = {}; the column is NaN",
                            entries, input.config.ntk_max_entries));
    }
  }
  if (input.config.sharpness && input.due.sharpness) {
    const LargestEigenvalue top = sharpness(model, input.X, input.Y, input.loss);
    push(scalar_like(top.value, loss));
    if (input.run_state && input.run_state->lr_to_check) {
      const double lr = *std::exchange(input.run_state->lr_to_check, std::nullopt);
      if (top.converged && lr * top.value > 2)
        std::cerr << "warning: "
                  << fmt::format(
                         "train.lr = {:.6g} is past the edge 2 / sharpness = {:.6g} at initialization (sharpness "
                         "{:.6g}): GD's step overshoots along the sharpest direction; expect the loss to rise, "
                         "or the ReLUs to die",
                         lr, 2 / top.value, top.value)
                  << "\n";
    }
    if (!top.converged && std::isfinite(loss.item<double>())) {  // a diverged state is NaN anyway
      static std::atomic<bool> warned_in_process{false};
      warn_once(input.run_state ? &input.run_state->sharpness_unconverged_warned : nullptr, warned_in_process,
                fmt::format("sharpness not converged after {} Hessian-vector products (estimate {:.6g}, "
                            "residual {:.3g}); the column is NaN where it does not converge",
                            top.iterations, top.ritz_value, top.residual));
    }
  }
  return values;
}

/// What reads the forward trace alone, in column order: per block the spectra of G, A
/// and the stacked G, attn_entropy and rank1_res; then sigma_min_phi. 0-d tensors.
std::vector<torch::Tensor> trace_values(const ForwardTrace& trace, bool causal) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> values;
  auto push = [&](const torch::Tensor& v) { values.push_back(as_value(v)); };
  for (const BlockTrace& b : trace.blocks) {
    const int64_t d = b.G.size(2);
    const SpectrumStats g = spectrum_stats(b.G);                            // (N, n, d)
    const SpectrumStats a = spectrum_stats(b.A);                            // (N, n, d)
    const SpectrumStats stacked = spectrum_stats(b.G.reshape({1, -1, d}));  // (1, N n, d)
    for (const auto* s : {&g, &a, &stacked}) push(s->sigma_min), push(s->sigma_max), push(s->cond);
    push(attention_entropy(b.S, causal));
    push(rank1_residual(b.G));
  }
  // The stacked (N n) x m features: its min(N n, m)-th value, which in the NTK regime
  // (m > N n) is the one that bounds the kernel's smallest eigenvalue.
  const auto& Phi = trace.blocks.back().Phi;
  push(smallest_singular_value(Phi.reshape({-1, Phi.size(2)})).value);
  return values;
}

}  // namespace

std::function<Diagnosis()> begin_diagnosis(const DiagnosticsInput& input) {
  TORCH_CHECK(static_cast<int64_t>(input.state.trace.blocks.size()) == input.model.options.layers,
              "diagnostics: the trace has ", input.state.trace.blocks.size(), " blocks, the model ",
              input.model.options.layers);
  std::optional<NtkSpectrum> spectrum;
  auto theta_values = parameter_values(input, spectrum);  // theta_t is about to change
  return [trace = input.state.trace, causal = input.model.options.block.causal, config = input.config, due = input.due,
          theta_values = std::move(theta_values), spectrum = std::move(spectrum)] {
    torch::NoGradGuard no_grad;                 // grad mode is per thread
    auto values = trace_values(trace, causal);  // the columns up to sigma_min_phi, then the rest
    values.insert(values.end(), theta_values.begin(), theta_values.end());
    const std::vector<double> measured = read_back(values);
    std::vector<std::optional<double>> cells(measured.begin(), measured.end());
    // The opt-in values not due now stay empty: their cells sit last, NTK before sharpness.
    if (config.ntk && !due.ntk) cells.insert(cells.end() - (config.sharpness && due.sharpness ? 1 : 0), std::nullopt);
    if (config.sharpness && !due.sharpness) cells.emplace_back(std::nullopt);
    Diagnosis diagnosis = from_cells(cells, static_cast<int64_t>(trace.blocks.size()), config);
    diagnosis.ntk_spectrum = spectrum;
    return diagnosis;
  };
}

Diagnosis compute_diagnostics(const DiagnosticsInput& input) { return begin_diagnosis(input)(); }

}  // namespace resgd
