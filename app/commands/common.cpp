// What several commands share (commands.h).
#include <fmt/format.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>

#include "commands.h"
#include "resgd/compute/compute.h"
#include "resgd/compute/process.h"
#include "resgd/core/cost.h"
#include "resgd/core/subprocess.h"
#include "resgd/run/runner.h"
#include "resgd/science/data.h"
#include "resgd/science/device.h"

namespace resgd::app {
namespace {

// The library's flag: a program resgd waits for (gnuplot, sbatch) is killed once it is set.
std::atomic<int> g_signal{0};

extern "C" void on_stop_signal(int signal_number) {
  if (g_signal.exchange(signal_number) != 0) std::_Exit(128 + signal_number);
  stop_flag().store(true);
}

}  // namespace

ExperimentConfig load_experiment(const ExperimentArgs& args) {
  ExperimentConfig config = read_experiment(args);
  // `validate` prints, and gradcheck uses, a tensors file's own sizes; a sweep's points
  // read theirs again when the sweep replaces the file.
  const auto& axes = config.sweep.axes;
  if (std::none_of(axes.begin(), axes.end(),
                   [](const auto& a) { return a.key == "data.path" || a.key == "data.kind"; }))
    read_data_sizes(config);
  return config;
}

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

int stop_signal() { return g_signal.load(); }

double check_memory_of_every_run(const ExperimentConfig& config) {
  const auto runs = config.sweep.empty() ? std::vector<ExperimentConfig>{config} : sweep_point_configs(config);
  double largest = 0;
  for (const auto& run : runs) {
    check_memory(run, resolve_device(run).is_cpu());
    largest = std::max(largest, estimate_memory(run).bytes());
  }
  return largest;
}

void set_up_compute(const ExperimentConfig& config, bool verbose, std::ostream& out) {
  compute::configure_process(config.compute.backend);
  const torch::Device device = resolve_device(config);
  out << fmt::format("{}, {}, {}, {} backend", device.str(), to_string(config.dtype), compute::blas_short_name(),
                     to_string(config.compute.backend))
      << "\n";
  if (verbose) out << compute::describe(compute::policy_for(config, 1), true) << "\n";
}

}  // namespace resgd::app
