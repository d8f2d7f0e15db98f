// `resgd run` (and `resgd` alone): train an experiment or every point of its sweep, with
// a progress line on a terminal, then the report.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <iostream>
#include <mutex>

#include "commands.h"
#include "resgd/compute/compute.h"
#include "resgd/compute/process.h"
#include "resgd/core/config.h"
#include "resgd/core/subprocess.h"
#include "resgd/report/plots.h"
#include "resgd/report/report.h"
#include "resgd/run/estimate.h"
#include "resgd/run/runner.h"
#include "resgd/run/summary.h"
#include "resgd/science/data.h"
#include "resgd/science/device.h"

namespace resgd::app {
namespace {

/// On a terminal: one status line (runs done, the latest run's iteration and loss, ETA),
/// redrawn in place at most every half second, with each finished run's line printed
/// above it. Elsewhere (a log file, CI) only the plain run lines are written.
class TerminalProgress : public std::streambuf {
 public:
  explicit TerminalProgress(size_t total_runs) : total_(total_runs), start_(std::chrono::steady_clock::now()) {}

  void on_row(const SweepPoint& point, const IterationRow& row) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    if (now - last_draw_ < std::chrono::milliseconds(500)) return;
    last_draw_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const std::string eta =
        done_ == 0 ? "?" : fmt::format("{:.0f} s", elapsed / double(done_) * double(total_ - done_));
    std::cout << fmt::format("\r\033[K{}/{} runs done, ETA {} | {}: iter {}, loss {:.4g}", done_, total_, eta,
                             point.dir_name(), row.iter, row.loss)
              << std::flush;
  }

 protected:
  int overflow(int ch) override {  // the run lines from the runner come through here
    std::lock_guard<std::mutex> lock(mutex_);
    if (at_line_start_) std::cout << "\r\033[K";
    at_line_start_ = ch == '\n';
    if (ch == '\n') ++done_;
    if (ch != EOF) std::cout.put(static_cast<char>(ch));
    if (ch == '\n') std::cout.flush();
    return ch;
  }

 private:
  std::mutex mutex_;
  size_t total_, done_ = 0;
  bool at_line_start_ = true;
  std::chrono::steady_clock::time_point start_, last_draw_{};
};

/// The sweep's time, measured on one step and one diagnosis of each size of run, and a
/// warning where the diagnostics would cost more than the training.
void print_estimate(const ExperimentConfig& config, int jobs) {
  const auto runs = config.sweep.empty() ? std::vector<ExperimentConfig>{config} : sweep_point_configs(config);
  const auto estimate = estimate_time(runs, jobs);
  std::cout << describe(estimate) << "\n";
  if (const auto warning = diagnostics_warning(estimate, config)) std::cout << *warning << "\n";
}

/// One point of a sweep that `resgd submit` prepared: what each array task runs.
int run_point(const RunArgs& args) {
  if (args.out.empty()) throw ConfigError("--point needs the --out directory that resgd submit prepared");
  ExperimentConfig config = load_experiment(args.experiment);
  forget_tensors_sizes(config);
  resolve_device(config);
  set_up_compute(config, args.verbose, std::cout);
  RunOptions options;
  options.out = args.out;
  options.stop_requested = &stop_flag();
  install_stop_handlers();
  const size_t point = static_cast<size_t>(args.point);
  const auto record = resgd::run_point(config, point, options);
  std::cout << format_run_line(record, point + 1, std::max<size_t>(1, expand_sweep(config).size())) << std::endl;
  if (run_status(record.summary) == Status::interrupted) return 128 + stop_signal();
  return 0;
}

/// `resgd run --resume DIR`, or `--out DIR --resume` with no file: DIR's own configuration
/// (its config.yaml), never the flagship's.
RunArgs with_stored_configuration(RunArgs args) {
  namespace fs = std::filesystem;
  std::string& file = args.experiment.file;
  if (!file.empty() && fs::is_directory(file)) {
    if (!args.out.empty() && fs::path(args.out).lexically_normal() != fs::path(file).lexically_normal())
      throw ConfigError(fmt::format("--resume {} --out {}: two directories; name the one to continue", file, args.out));
    args.out = file;
    file.clear();
  }
  if (file.empty() && !args.out.empty() && fs::exists(fs::path(args.out) / "config.yaml"))
    file = (fs::path(args.out) / "config.yaml").string();
  return args;
}

}  // namespace

int run_command(const Cli& cli) {
  const PlotFormats formats = parse_plot_formats(cli.formats);
  const bool resuming = cli.run.resume || cli.run.resume_or_start;
  const RunArgs args = resuming ? with_stored_configuration(cli.run) : cli.run;
  if (resuming && args.out.empty()) throw ConfigError("--resume needs the --out directory of the run to continue");
  if (args.point >= 0) return run_point(args);
  const ExperimentConfig config = load_experiment(args.experiment);
  resolve_device(config);  // fail on a missing GPU before any file is written
  check_memory_of_every_run(config);
  set_up_compute(config, args.verbose, std::cout);
  RunOptions options;
  options.out_is_new = args.out.empty();
  options.out = options.out_is_new ? create_default_output_dir(config) : std::filesystem::path(args.out);
  options.force = args.force;
  options.resume = args.resume || args.resume_or_start;
  options.start_if_missing = args.resume_or_start;
  const int cores = compute::usable_cores();
  options.jobs = args.jobs > 0 ? args.jobs : config.compute.backend == Backend::tuned ? cores : 1;
  print_estimate(config, options.jobs);
  options.log = &std::cout;
  const size_t total_runs = expand_sweep(config).size();
  TerminalProgress progress(total_runs);
  std::ostream progress_log(&progress);
  if (isatty(STDOUT_FILENO) && total_runs > 1) {
    options.log = &progress_log;
    options.on_row = [&](const SweepPoint& point, const IterationRow& row) { progress.on_row(point, row); };
  }
  options.stop_requested = &stop_flag();
  install_stop_handlers();
  options.finish = [&](const std::vector<RunRecord>&) { write_report(options.out, std::cerr, formats); };
  std::cout << fmt::format("experiment '{}' -> {}", config.name, options.out.string()) << std::endl;
  const auto records = run_experiment(config, options);
  std::cout << "\n" << format_summary_table(config, records);
  if (!config.sweep.empty()) std::cout << "\nsweep table: " << (options.out / "sweep.csv").string() << "\n";
  // A signal ends the command as interrupted only where it stopped a run or kept one from
  // starting; one that came after the last iteration changed nothing.
  const bool complete = records.size() == total_runs && std::none_of(records.begin(), records.end(), [](const auto& r) {
                          return run_status(r.summary) == Status::interrupted;
                        });
  if (const int signal_number = stop_signal(); signal_number != 0 && !complete) {
    std::cerr << fmt::format("resgd: interrupted by {}; continue with the same command plus --out {} --resume\n",
                             signal_number == SIGINT ? "SIGINT" : "SIGTERM", options.out.string());
    return 128 + signal_number;  // 130 for SIGINT, 143 for SIGTERM
  }
  return 0;
}

}  // namespace resgd::app
