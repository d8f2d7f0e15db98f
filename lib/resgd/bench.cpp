// `resgd bench`: median time per GD step, achieved GFLOP/s and the same-process GEMM ceiling.
#include "resgd/bench.h"

#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>

#include "resgd/analytic_grad.h"
#include "resgd/data.h"
#include "resgd/diagnostics.h"
#include "resgd/model.h"
#include "resgd/products.h"
#include "resgd/system.h"
#include "resgd/training.h"

namespace resgd {
namespace {

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

using Multiply = torch::Tensor (*)(const torch::Tensor&, const torch::Tensor&);

torch::Tensor torch_mm(const torch::Tensor& A, const torch::Tensor& B) { return A.mm(B); }

/// GFLOP/s of `multiply` on a square product of side 1024 (2.1 GFLOP), on this device,
/// dtype and thread count. With torch::mm and with token_mm (the route the step's own
/// products take: oneDNN for float32 where it is loaded), the faster of the two is the
/// practical ceiling for the matrix products a GD step is made of.
double product_gflops(Multiply multiply, torch::Device device, torch::Dtype dtype, int repeats) {
  const int64_t side = 1024;
  auto generator = make_generator(0, "bench.mm");
  const auto options = torch::TensorOptions().dtype(torch::kFloat64);
  const auto A = torch::randn({side, side}, generator, options).to(device, dtype);
  const auto B = torch::randn({side, side}, generator, options).to(device, dtype);
  // Warm-up: threads, allocator, kernels. A product's helper thread faults in fresh heap at
  // its first products (531 pages a part for its first 8 parts of this one here, 7 ms
  // each), so warm up for 0.2 s rather than one product.
  auto C = multiply(A, B);
  for (const auto start = std::chrono::steady_clock::now();
       std::chrono::steady_clock::now() - start < std::chrono::milliseconds(200);)
    C = multiply(A, B);
  std::vector<double> rates;
  for (int r = 0; r < std::max(3 * repeats, 10); ++r) {  // cheap: enough for a steady median
    synchronize(device);
    const auto start = std::chrono::steady_clock::now();
    C = multiply(A, B);
    synchronize(device);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    rates.push_back(2.0 * side * side * side / seconds / 1e9);
  }
  return median_of_finite(rates);
}

// The timed window runs from the row of iteration 10, past start-up and iteration 0's
// diagnosis, over whole periods of diagnostics every 10 (bench_config).
constexpr int64_t kDiagnosisPeriod = 10;

/// GD steps timed per repetition: the size's own, rounded up to whole diagnosis periods,
/// at least two.
int64_t timed_steps(const BenchSize& s) {
  return std::max<int64_t>(2, (s.steps + kDiagnosisPeriod - 1) / kDiagnosisPeriod) * kDiagnosisPeriod;
}

/// Seconds per GD step of one run of `config`, from the row of iteration 10 to the last
/// but one. With diagnostics every 10 the window holds whole periods: each diagnosis that
/// starts at a row inside it (10, 20, ...) is done on the worker before the window ends,
/// the one at its last row has not begun, and the final iteration's lies outside.
double seconds_per_step(const ExperimentConfig& config, const Dataset& data, torch::Device device) {
  ResidualTransformer model(model_options(config));
  model->to(device, resolve_dtype(config.dtype));
  std::vector<double> stamps;  // one row per iteration: log_every is 1
  train(*model, data, config, [&](const IterationRow& row) { stamps.push_back(row.elapsed_s); });
  const int64_t first = kDiagnosisPeriod, last = config.train.max_iters - 1;
  TORCH_CHECK(static_cast<int64_t>(stamps.size()) == config.train.max_iters + 1 && last > first,
              "bench: expected a row for each of ", config.train.max_iters + 1, " iterations, got ", stamps.size());
  return (stamps[static_cast<size_t>(last)] - stamps[static_cast<size_t>(first)]) / static_cast<double>(last - first);
}

struct PairTiming {
  double plain = 0, diagnosed = 0;  // median seconds per step
  double cost = 0;                  // median over repetitions of diagnosed / plain - 1
};

/// Diagnostics off and every 10, timed run by run in turn after one warm-up pair, so that
/// a drift in the machine's speed falls on both alike.
PairTiming time_pair(const ExperimentConfig& plain, const ExperimentConfig& diagnosed, torch::Device device,
                     int repeats) {
  const Dataset data = make_dataset(plain, device, resolve_dtype(plain.dtype));
  std::vector<double> plain_times, diagnosed_times, costs;
  for (int r = 0; r <= repeats; ++r) {  // r = 0 warms up
    const double a = seconds_per_step(plain, data, device);
    const double b = seconds_per_step(diagnosed, data, device);
    if (r == 0) continue;
    plain_times.push_back(a);
    diagnosed_times.push_back(b);
    costs.push_back(b / a - 1.0);
  }
  return {median_of_finite(plain_times), median_of_finite(diagnosed_times), median_of_finite(costs)};
}

/// Seconds of one whole diagnosis (every column, read back to the host), computed in step on
/// this thread: the work a run's worker takes off the GD thread, and what a sweep with as
/// many jobs as cores must fit on the cores besides GD. Median over `repeats`.
double seconds_per_diagnosis(const ExperimentConfig& config, torch::Device device, int repeats) {
  const Dataset data = make_dataset(config, device, resolve_dtype(config.dtype));
  ResidualTransformer model(model_options(config));
  model->to(device, resolve_dtype(config.dtype));
  const LossAndGradients state = analytic_gradients(*model, data.X, data.Y, config.train.loss);
  std::vector<torch::Tensor> theta_0;
  for (const auto& p : model->parameters()) theta_0.push_back(p.detach().clone());
  torch::NoGradGuard no_grad;
  std::vector<double> times;
  for (int r = 0; r <= repeats; ++r) {  // r = 0 warms up
    const auto start = std::chrono::steady_clock::now();
    compute_diagnostics({*model, data.X, data.Y, config.train.loss, state, theta_0, config.diagnostics});  // reads back: synchronises
    if (r > 0) times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return median_of_finite(times);
}

double peak_resident_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

}  // namespace

const std::vector<BenchSize>& bench_sizes() {
  static const std::vector<BenchSize> sizes = {
      {"small", 32, 8, 16, 256, 16, 1, "float64", 200},
      {"medium", 256, 16, 64, 512, 64, 2, "float32", 60},
      {"large", 1024, 32, 128, 1024, 128, 2, "float32", 6},
      {"flagship", 8, 8, 64, 512, 1, 1, "float64", 200},
  };
  return sizes;
}

double gd_step_flops(const BenchSize& s) {
  const double tokens = static_cast<double>(s.N * s.n);
  double total = 0;
  for (int64_t l = 0; l < s.layers; ++l) {
    const double out = static_cast<double>(l == s.layers - 1 ? s.d_y : s.d);
    const double d = static_cast<double>(s.d), m = static_cast<double>(s.m), n = static_cast<double>(s.n);
    const double f_QK = 2 * 2 * tokens * d * d;   // H W_Q and H W_K (d_k = d)
    const double f_Z = 2 * tokens * n * d;        // Q K^T per sequence
    const double f_V = 2 * tokens * d * d;        // H W_V
    const double f_A = 2 * tokens * n * d;        // S V
    const double f_U = 2 * tokens * d * m;        // G W_1
    const double f_out = 2 * tokens * m * out;    // Phi W_2
    const double forward = f_QK + f_Z + f_V + f_A + f_U + f_out;
    // Backward: each product yields the gradients of both factors, except that the first
    // block needs no gradient with respect to X (in H W_Q, H W_K, H W_V).
    const double backward = 2 * forward - (l == 0 ? f_QK + f_V : 0.0);
    total += forward + backward;
  }
  return total;
}

double gd_step_flops(const ExperimentConfig& c) {
  return gd_step_flops(BenchSize{c.name, c.data.num_samples, c.data.seq_len, c.data.dim, c.model.ffn_width,
                                 c.data.target_dim, c.model.layers, c.dtype, 0});
}

ExperimentConfig bench_config(const BenchSize& s) {
  ExperimentConfig c;
  c.name = "bench-" + s.name;
  c.dtype = s.dtype;
  c.data.num_samples = s.N;
  c.data.seq_len = s.n;
  c.data.dim = s.d;
  c.data.target_dim = s.d_y;
  c.model.layers = s.layers;
  c.model.ffn_width = s.m;
  c.model.residual_ffn.value = 1.0;  // inner blocks as in the depth experiments
  c.train.lr = 1e-6;                 // timing only: never diverge, never converge
  c.train.rel_tolerance = 0.0;
  c.train.max_iters = kDiagnosisPeriod + timed_steps(s) + 1;  // the window of seconds_per_step
  return c;
}

int run_bench(const BenchOptions& options, std::ostream& out) {
  ExperimentConfig probe;
  probe.device = options.device;
  validate(probe);
  const torch::Device device = resolve_device(probe);
  out << compute_backend_summary() << "\n";
  out << fmt::format("device {}; median of {} repetitions; GFLOP counts the matrix products of forward, "
                     "backward and update exactly; mm and tokens: a 1024^3 product through torch::mm and "
                     "through the route the step's own products take (token_mm), of best: GFLOP/s over the "
                     "faster of the two; diagnosis ms: one diagnosis on 1 BLAS thread, as the worker computes "
                     "it; BLAS: threads of the GD step\n\n",
                     device.str(), options.repeats);
  out << fmt::format("{:<9} {:<7} {:<8} {:<9} {:>12} {:>10} {:>9} {:>10} {:>10} {:>8} {:>9} {:>12} {:>5}\n", "size",
                     "dtype", "grads", "diag", "ms/step", "GFLOP/step", "GFLOP/s", "mm GFLOP/s", "tokens GF/s",
                     "of best", "diag cost", "diagnosis ms", "BLAS");
  for (const auto& name : options.sizes) {
    auto it = std::find_if(bench_sizes().begin(), bench_sizes().end(), [&](const BenchSize& s) { return s.name == name; });
    if (it == bench_sizes().end())
      throw ConfigError(fmt::format("--sizes: unknown size '{}'; known: small, medium, large, flagship", name));
    BenchSize size = *it;
    if (!options.dtype.empty()) size.dtype = options.dtype;
    const double flops = gd_step_flops(size);
    ExperimentConfig base = bench_config(size);
    base.device = options.device;
    set_blas_threads(1);  // as the worker thread computes it, beside GD
    const double diagnosis = seconds_per_diagnosis(base, device, options.repeats);
    // One run at a time, with the BLAS threads `resgd run` gives a lone run of this size;
    // the ceiling is measured with the same count.
    const int blas_threads = lone_gd_blas_threads(flops);
    set_gd_blas_threads(blas_threads);
    set_blas_threads(blas_threads);
    const double mm = product_gflops(torch_mm, device, resolve_dtype(size.dtype), options.repeats);
    const double tokens = product_gflops(token_mm, device, resolve_dtype(size.dtype), options.repeats);
    const double ceiling = std::max(mm, tokens);
    for (const char* gradients : {"autograd", "analytic"}) {
      ExperimentConfig plain = base;
      plain.train.gradients = gradients;
      plain.diagnostics.every = 0;  // diagnostics only at 0 and the end
      ExperimentConfig diagnosed = plain;
      diagnosed.diagnostics.every = kDiagnosisPeriod;
      const PairTiming timing = time_pair(plain, diagnosed, device, options.repeats);
      for (const bool with_diagnostics : {false, true}) {
        const double seconds = with_diagnostics ? timing.diagnosed : timing.plain;
        const double gflops = flops / seconds / 1e9;
        out << fmt::format("{:<9} {:<7} {:<8} {:<9} {:>12.3f} {:>10.3f} {:>9.1f} {:>10.1f} {:>10.1f} {:>7.0f}% {:>9} "
                           "{:>12} {:>5}\n",
                           size.name, size.dtype, gradients, with_diagnostics ? "every 10" : "off", seconds * 1e3,
                           flops / 1e9, gflops, mm, tokens, 100.0 * gflops / ceiling,
                           with_diagnostics ? fmt::format("{:+.1f}%", 100.0 * timing.cost) : std::string("-"),
                           with_diagnostics ? fmt::format("{:.3f}", diagnosis * 1e3) : std::string("-"),
                           blas_threads);
      }
      out.flush();
    }
  }
  out << fmt::format("\npeak resident memory: {:.0f} MiB\n", peak_resident_mib());
  return 0;
}

}  // namespace resgd
