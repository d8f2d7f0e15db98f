// `resgd bench`: median time per GD step, achieved GFLOP/s and the same-process GEMM
// ceiling; and the comparison of backends and tunings, each in a process of its own.
#include "resgd/run/bench.h"

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <sstream>

#include "resgd/compute/compute.h"
#include "resgd/compute/process.h"
#include "resgd/core/cost.h"
#include "resgd/science/analytic_grad.h"
#include "resgd/science/data.h"
#include "resgd/science/device.h"
#include "resgd/science/diagnostics.h"
#include "resgd/science/model.h"
#include "resgd/science/training.h"

namespace resgd {
namespace {

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

using Multiply = torch::Tensor (*)(const torch::Tensor&, const torch::Tensor&);

torch::Tensor torch_mm(const torch::Tensor& A, const torch::Tensor& B) { return A.mm(B); }

/// GFLOP/s of `multiply` on a square product of side 1024 (2.1 GFLOP), on this device,
/// dtype and policy. With torch::mm and with compute::mm (the route the step's own
/// products take), the faster of the two is the practical ceiling for the matrix
/// products a GD step is made of.
double product_gflops(Multiply multiply, torch::Device device, torch::Dtype dtype, int repeats,
                      const compute::Policy& policy) {
  const compute::Scope scope(policy);
  const int64_t side = 1024;
  auto generator = make_generator(0, "bench.mm");
  const auto options = torch::TensorOptions().dtype(torch::kFloat64);
  const auto A = torch::randn({side, side}, generator, options).to(device, dtype);
  const auto B = torch::randn({side, side}, generator, options).to(device, dtype);
  // Warm-up: threads, allocator, kernels; a new helper thread faults in fresh heap at its
  // first products, so for 0.2 s rather than one product.
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
double seconds_per_step(const ExperimentConfig& config, const Dataset& data, torch::Device device,
                        const compute::Policy& policy) {
  ResidualTransformer model(model_options(config));
  model->to(device, resolve_dtype(config.dtype));
  std::vector<double> stamps;  // one row per iteration: log_every is 1
  TrainHooks hooks;
  hooks.on_row = [&](const IterationRow& row) { stamps.push_back(row.elapsed_s); };
  train(*model, data, config, policy, hooks);
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
                     int repeats, const compute::Policy& policy) {
  const Dataset data = make_dataset(plain, device, resolve_dtype(plain.dtype));
  std::vector<double> plain_times, diagnosed_times, costs;
  for (int r = 0; r <= repeats; ++r) {  // r = 0 warms up
    const double a = seconds_per_step(plain, data, device, policy);
    const double b = seconds_per_step(diagnosed, data, device, policy);
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
double seconds_per_diagnosis(const ExperimentConfig& config, torch::Device device, int repeats,
                             const compute::Policy& policy) {
  const compute::Scope scope(policy);
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
    compute_diagnostics(
        {*model, data.X, data.Y, config.train.loss, state, theta_0, config.diagnostics, nullptr, {}});  // reads back:
                                                                                                        // synchronises
    if (r > 0) times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return median_of_finite(times);
}

double peak_resident_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

/// The policy a variant runs a bench size with: a lone run's, on `options`' backend,
/// less the tunings it leaves out.
compute::Policy bench_policy(const BenchOptions& options, const ExperimentConfig& config) {
  compute::Policy policy = compute::policy_for(config, /*runs_at_once=*/1);
  policy.backend = options.backend;
  for (size_t t = 0; t < std::size(compute::kTunings); ++t)
    if (std::count(options.without.begin(), options.without.end(), compute::to_string(compute::kTunings[t])))
      policy.use[t] = false;
  return policy;
}

const char* const kProcessSettings[] = {"kernels", "one_pool_thread", "heap"};

/// This process's table: every size, both gradient sources, diagnostics off and every 10.
int time_sizes(const BenchOptions& options, std::ostream& out);
/// The variants side by side, each in a process of its own, in turns.
int compare_variants(const BenchOptions& options, std::ostream& out);

}  // namespace

std::vector<std::string> tuning_names() {
  std::vector<std::string> names;
  for (const auto tuning : compute::kTunings) names.push_back(compute::to_string(tuning));
  names.insert(names.end(), std::begin(kProcessSettings), std::end(kProcessSettings));
  return names;
}

void configure_bench_process(const BenchOptions& options) {
  compute::ProcessSetup setup;
  auto left_out = [&](const char* name) {
    return std::count(options.without.begin(), options.without.end(), std::string(name)) > 0;
  };
  setup.kernels = !left_out("kernels");
  setup.one_pool_thread = !left_out("one_pool_thread");
  setup.heap = !left_out("heap");
  compute::configure_process(options.backend, setup);
}

const std::vector<BenchSize>& bench_sizes() {
  static const std::vector<BenchSize> sizes = {
      {"small", 32, 8, 16, 256, 16, 1, Dtype::float64, 200},
      {"medium", 256, 16, 64, 512, 64, 2, Dtype::float32, 60},
      {"large", 1024, 32, 128, 1024, 128, 2, Dtype::float32, 6},
      {"flagship", 8, 8, 64, 512, 1, 1, Dtype::float64, 200},
  };
  return sizes;
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
  for (const auto& name : options.sizes)
    if (std::none_of(bench_sizes().begin(), bench_sizes().end(), [&](const BenchSize& s) { return s.name == name; }))
      throw ConfigError(fmt::format("--sizes: unknown size '{}'; known: small, medium, large, flagship", name));
  const auto names = tuning_names();
  for (const auto& name : options.without)
    if (std::find(names.begin(), names.end(), name) == names.end())
      throw ConfigError(fmt::format("--without: unknown tuning '{}'; known: {}", name, fmt::join(names, ", ")));
  return options.variants.empty() ? time_sizes(options, out) : compare_variants(options, out);
}

namespace {

int time_sizes(const BenchOptions& options, std::ostream& out) {
  ExperimentConfig probe;
  probe.device = options.device;
  validate(probe);
  const torch::Device device = resolve_device(probe);
  out << fmt::format("backend {}{}; {}\n", to_string(options.backend),
                     options.without.empty() ? "" : fmt::format(" without {}", fmt::join(options.without, ", ")),
                     compute::process_summary());
  out << fmt::format(
      "device {}; median of {} repetitions; GFLOP counts the matrix products of forward, "
      "backward and update exactly; mm and seam: a 1024^3 product through torch::mm and "
      "through compute::mm (the route the step's own products take), of best: GFLOP/s over the "
      "faster of the two; diagnosis ms: one diagnosis in step; threads: a product's parts\n\n",
      device.str(), options.repeats);
  out << fmt::format("{:<9} {:<7} {:<8} {:<9} {:>12} {:>10} {:>9} {:>10} {:>10} {:>8} {:>9} {:>12} {:>7}\n", "size",
                     "dtype", "grads", "diag", "ms/step", "GFLOP/step", "GFLOP/s", "mm GFLOP/s", "seam GF/s", "of best",
                     "diag cost", "diagnosis ms", "threads");
  for (const auto& name : options.sizes) {
    BenchSize size =
        *std::find_if(bench_sizes().begin(), bench_sizes().end(), [&](const BenchSize& s) { return s.name == name; });
    if (!options.dtype.empty()) size.dtype = *parse_enum<Dtype>(options.dtype);
    ExperimentConfig base = bench_config(size);
    base.device = options.device;
    const double flops = gd_step_flops(base);
    const compute::Policy policy = bench_policy(options, base);
    const double diagnosis = seconds_per_diagnosis(base, device, options.repeats, policy);
    const double mm = product_gflops(torch_mm, device, resolve_dtype(size.dtype), options.repeats, policy);
    const double seam = product_gflops(compute::mm, device, resolve_dtype(size.dtype), options.repeats, policy);
    const double ceiling = std::max(mm, seam);
    for (const auto gradients : {Gradients::autograd, Gradients::analytic}) {
      ExperimentConfig plain = base;
      plain.train.gradients = gradients;
      plain.diagnostics.every = 0;  // diagnostics only at 0 and the end
      ExperimentConfig diagnosed = plain;
      diagnosed.diagnostics.every = kDiagnosisPeriod;
      const PairTiming timing = time_pair(plain, diagnosed, device, options.repeats, policy);
      for (const bool with_diagnostics : {false, true}) {
        const double seconds = with_diagnostics ? timing.diagnosed : timing.plain;
        const double gflops = flops / seconds / 1e9;
        out << fmt::format(
            "{:<9} {:<7} {:<8} {:<9} {:>12.3f} {:>10.3f} {:>9.1f} {:>10.1f} {:>10.1f} {:>7.0f}% {:>9} "
            "{:>12} {:>7}\n",
            size.name, to_string(size.dtype), to_string(gradients), with_diagnostics ? "every 10" : "off",
            seconds * 1e3, flops / 1e9, gflops, mm, seam, 100.0 * gflops / ceiling,
            with_diagnostics ? fmt::format("{:+.1f}%", 100.0 * timing.cost) : std::string("-"),
            with_diagnostics ? fmt::format("{:.3f}", diagnosis * 1e3) : std::string("-"),
            policy.backend == Backend::tuned ? policy.threads : 0);
      }
      out.flush();
    }
  }
  out << fmt::format("\npeak resident memory: {:.0f} MiB\n", peak_resident_mib());
  return 0;
}

/// One variant's timings, from its table: (size, grads, diag) -> ms/step, and per size the
/// diagnosis ms.
struct VariantTimes {
  std::map<std::string, double> ms;  // "size grads diag"
  std::map<std::string, double> diagnosis_ms;
};

VariantTimes parse_table(const std::string& table) {
  VariantTimes times;
  std::istringstream lines(table);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::vector<std::string> f{std::istream_iterator<std::string>(fields), {}};
    const bool known = !f.empty() && std::any_of(bench_sizes().begin(), bench_sizes().end(),
                                                 [&](const BenchSize& s) { return s.name == f[0]; });
    if (!known || f.size() < 12) continue;
    const bool every = f[3] == "every";
    const std::string diag = every ? "every10" : "off";
    times.ms[f[0] + " " + f[2] + " " + diag] = std::stod(f[every ? 5 : 4]);
    if (every) times.diagnosis_ms[f[0]] = std::stod(f[12]);
  }
  return times;
}

/// The `resgd bench` arguments of one variant: the backend, and what it leaves out.
std::string variant_arguments(const std::string& variant) {
  if (variant == "tuned" || variant == "reference") return "--backend " + variant;
  const std::string prefix = "tuned-without-";
  if (variant.rfind(prefix, 0) == 0) return "--backend tuned --without " + variant.substr(prefix.size());
  throw ConfigError(
      fmt::format("--variants: unknown variant '{}'; expected tuned, reference or tuned-without-NAME "
                  "(NAME one of: {})",
                  variant, fmt::join(tuning_names(), ", ")));
}

int compare_variants(const BenchOptions& options, std::ostream& out) {
  char self[4096] = {};
  const ssize_t length = readlink("/proc/self/exe", self, sizeof self - 1);
  if (length <= 0) throw std::runtime_error("bench: cannot find this executable (/proc/self/exe)");
  for (const auto& variant : options.variants) variant_arguments(variant);  // unknown names first
  std::map<std::string, std::vector<VariantTimes>> rounds;
  for (int round = 0; round < options.rounds; ++round) {
    // Each round starts at the next variant, so that neither a drift in the machine's
    // speed nor the first process's extra cost falls on one variant.
    std::vector<std::string> order = options.variants;
    std::rotate(order.begin(), order.begin() + static_cast<long>(static_cast<size_t>(round) % order.size()),
                order.end());
    for (const auto& variant : order) {
      const std::string command =
          fmt::format("'{}' bench --sizes {} --repeats {} --device {} {}{} 2>&1", std::string(self, length),
                      fmt::join(options.sizes, ","), options.repeats, options.device,
                      options.dtype.empty() ? "" : "--dtype " + options.dtype + " ", variant_arguments(variant));
      out << fmt::format("round {} of {}: {}\n", round + 1, options.rounds, variant) << std::flush;
      std::FILE* pipe = popen(command.c_str(), "r");
      if (!pipe) throw std::runtime_error("bench: cannot start " + command);
      std::string table;
      char buffer[4096];
      for (size_t got; (got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) table.append(buffer, got);
      if (pclose(pipe) != 0) throw std::runtime_error("bench: the variant's run failed: " + command + "\n" + table);
      rounds[variant].push_back(parse_table(table));
    }
  }
  auto median = [&](const std::string& variant, const std::string& key, bool diagnosis) {
    std::vector<double> values;
    for (const auto& times : rounds[variant]) {
      const auto& map = diagnosis ? times.diagnosis_ms : times.ms;
      if (map.count(key)) values.push_back(map.at(key));
    }
    return median_of_finite(values);
  };
  const std::string& base = options.variants.front();
  out << fmt::format("\nmedians over {} rounds, ms per GD step (ratio: the variant over {})\n", options.rounds, base);
  out << fmt::format("{:<9} {:<8} {:<8}", "size", "grads", "diag");
  for (const auto& variant : options.variants)
    out << fmt::format(" {:>{}}", variant, std::max<size_t>(variant.size(), 14));
  out << "\n";
  for (const auto& size : options.sizes) {
    for (const char* grads : {"autograd", "analytic"})
      for (const char* diag : {"off", "every10"}) {
        const std::string key = fmt::format("{} {} {}", size, grads, diag);
        out << fmt::format("{:<9} {:<8} {:<8}", size, grads, diag);
        const double reference = median(base, key, false);
        for (const auto& variant : options.variants) {
          const double ms = median(variant, key, false);
          out << fmt::format(" {:>{}}", fmt::format("{:.3f} ({:.2f})", ms, ms / reference),
                             std::max<size_t>(variant.size(), 14));
        }
        out << "\n";
      }
    out << fmt::format("{:<9} {:<17}", size, "diagnosis ms");
    for (const auto& variant : options.variants)
      out << fmt::format(" {:>{}}", fmt::format("{:.3f}", median(variant, size, true)),
                         std::max<size_t>(variant.size(), 14));
    out << "\n";
  }
  return 0;
}

}  // namespace

}  // namespace resgd
