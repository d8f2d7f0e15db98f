// The `resgd` command: run, validate and inspect experiments. The one place that catches:
// configuration errors exit 2, other failures exit 1, a diverged run is a result (exit 0).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <mutex>
#include <thread>

#include "resgd/bench.h"
#include "resgd/config.h"
#include "resgd/cost.h"
#include "resgd/data.h"
#include "resgd/flagship.h"
#include "resgd/files.h"
#include "resgd/gradcheck.h"
#include "resgd/io.h"
#include "resgd/report.h"
#include "resgd/runner.h"
#include "resgd/system.h"

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitConfigError = 2;

// SIGINT/SIGTERM: the first asks the run to stop after its current iteration (metrics
// flushed, checkpoint and summary written); a second one stops at once.
std::atomic<bool> g_stop_requested{false};
std::atomic<int> g_signal{0};

extern "C" void on_stop_signal(int signal_number) {
  if (g_signal.exchange(signal_number) != 0) std::_Exit(128 + signal_number);
  g_stop_requested.store(true);
}

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

/// What every experiment-taking command shares: the file, --set overrides, --device.
struct ExperimentArgs {
  std::string file;  // empty = the embedded flagship
  std::vector<std::string> overrides;
  std::string device;

  void add_to(CLI::App& command, bool file_required) {
    auto* option = command.add_option("experiment", file, "experiment YAML file");
    if (file_required) option->required();
    if (!file_required) option->description("experiment YAML file (default: the embedded flagship)");
    command.add_option("--set", overrides, "override a key, e.g. --set model.residual.attention=false")
        ->type_name("KEY=VALUE");
    command.add_option("--device", device, "cpu, cuda, cuda:N or auto (same as --set device=...)");
  }

  resgd::ExperimentConfig load() const {
    resgd::ExperimentConfig config =
        file.empty() ? resgd::load_config_text(resgd::flagship_experiment_yaml(), resgd::kFlagshipSource)
                     : resgd::load_config_file(file);
    auto assignments = overrides;
    if (!device.empty()) assignments.push_back("device=" + device);
    resgd::apply_overrides(config, assignments);
    // `validate` prints, and gradcheck uses, a tensors file's own sizes; a sweep's points
    // read theirs again when the sweep replaces the file.
    const auto& axes = config.sweep.axes;
    if (std::none_of(axes.begin(), axes.end(), [](const auto& a) { return a.key == "data.path" || a.key == "data.kind"; }))
      resgd::read_data_sizes(config);
    return config;
  }
};

/// On a terminal: one status line (runs done, the latest run's iteration and loss, ETA),
/// redrawn in place at most every half second, with each finished run's line printed
/// above it. Elsewhere (a log file, CI) only the plain run lines are written.
class TerminalProgress : public std::streambuf {
 public:
  explicit TerminalProgress(size_t total_runs) : total_(total_runs), start_(std::chrono::steady_clock::now()) {}

  void on_row(const resgd::SweepPoint& point, const resgd::IterationRow& row) {
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

/// Refuses, before anything is written, a run (or any point of a sweep) that would need
/// more memory than this machine has; the largest run's estimate, in bytes.
double check_memory_of_every_run(const resgd::ExperimentConfig& config) {
  const auto runs = config.sweep.empty() ? std::vector<resgd::ExperimentConfig>{config}
                                         : resgd::sweep_point_configs(config);
  double largest = 0;
  for (const auto& run : runs) {
    resgd::check_memory(run, resgd::resolve_device(run).is_cpu());
    largest = std::max(largest, resgd::estimate_memory(run).bytes());
  }
  return largest;
}

int run_command(const ExperimentArgs& args, const std::string& out, bool force, bool resume, bool resume_or_start,
                int jobs) {
  const resgd::ExperimentConfig config = args.load();
  resgd::resolve_device(config);  // fail on a missing GPU before any file is written
  check_memory_of_every_run(config);
  std::cout << resgd::compute_backend_summary() << std::endl;
  resgd::RunOptions options;
  options.out_is_new = out.empty();
  options.out = options.out_is_new ? resgd::create_default_output_dir(config) : std::filesystem::path(out);
  options.force = force;
  options.resume = resume || resume_or_start;
  options.start_if_missing = resume_or_start;
  options.jobs = jobs;
  options.log = &std::cout;
  const size_t total_runs = resgd::expand_sweep(config).size();
  TerminalProgress progress(total_runs);
  std::ostream progress_log(&progress);
  if (isatty(STDOUT_FILENO) && total_runs > 1) {
    options.log = &progress_log;
    options.on_row = [&](const resgd::SweepPoint& point, const resgd::IterationRow& row) { progress.on_row(point, row); };
  }
  options.stop_requested = &g_stop_requested;
  install_stop_handlers();
  std::cout << fmt::format("experiment '{}' -> {}", config.name, options.out.string()) << std::endl;
  const auto records = resgd::run_experiment(config, options);
  std::cout << "\n" << resgd::format_summary_table(config, records);
  if (!config.sweep.empty()) std::cout << "\nsweep table: " << (options.out / "sweep.csv").string() << "\n";
  // A signal ends the command as interrupted only where it stopped a run or kept one from
  // starting; one that came after the last iteration changed nothing.
  const bool complete = records.size() == total_runs && std::none_of(records.begin(), records.end(), [](const auto& r) {
                          return r.summary.value("status", "") == "interrupted";
                        });
  if (const int signal_number = g_signal.load(); signal_number != 0 && !complete) {
    std::cerr << fmt::format("resgd: interrupted by {}; continue with the same command plus --out {} --resume\n",
                             signal_number == SIGINT ? "SIGINT" : "SIGTERM", options.out.string());
    return 128 + signal_number;  // 130 for SIGINT, 143 for SIGTERM
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // A file size limit (ulimit -f, a quota) makes a write fail with EFBIG, reported with the
  // path like a full disk, instead of killing the process mid-file.
  std::signal(SIGXFSZ, SIG_IGN);
  resgd::configure_process();
  CLI::App app{"ResGD: gradient descent on Transformers with residual connections.\n"
               "With no command, runs the flagship experiment (residual vs plain)."};
  app.require_subcommand(0, 1);

  ExperimentArgs run_args;
  std::string out;
  bool force = false;
  bool resume = false;
  bool resume_or_start = false;
  // Each run uses LibTorch's intra-op pool; as many runs at once as that leaves cores.
  int jobs = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / std::max(1, at::get_num_threads()));
  auto* run = app.add_subcommand("run", "train an experiment (or every point of its sweep)");
  run_args.add_to(*run, /*file_required=*/false);
  run->add_option("--out", out, "output directory (default: results/<name>-<time>)");
  run->add_option("--jobs", jobs, "sweep runs trained at once (default: cores / LibTorch threads)")
      ->check(CLI::Range(1, 256));
  auto* force_flag = run->add_flag("--force", force, "write into an existing non-empty output directory");
  auto* resume_flag =
      run->add_flag("--resume", resume, "continue an interrupted run or sweep in --out; finished runs are skipped")
          ->excludes(force_flag);
  run->add_flag("--resume-or-start", resume_or_start, "as --resume, but start a new run where --out does not exist")
      ->excludes(force_flag)
      ->excludes(resume_flag);

  ExperimentArgs validate_args;
  auto* validate = app.add_subcommand("validate", "check an experiment file and print its resolved configuration");
  validate_args.add_to(*validate, /*file_required=*/true);

  ExperimentArgs gradcheck_args;
  auto* gradcheck = app.add_subcommand(
      "gradcheck", "compare hand-derived gradients, autograd and finite differences (float64); exit 1 on a mismatch");
  gradcheck_args.add_to(*gradcheck, /*file_required=*/false);

  resgd::BenchOptions bench_options;
  auto* bench = app.add_subcommand("bench", "time GD steps at fixed sizes against this machine's GEMM ceiling");
  bench->add_option("--sizes", bench_options.sizes, "comma-separated: small, medium, large, flagship")
      ->delimiter(',');
  bench->add_option("--dtype", bench_options.dtype, "float32 or float64 (default: each size's own)");
  bench->add_option("--device", bench_options.device, "cpu, cuda or cuda:N");
  bench->add_option("--repeats", bench_options.repeats, "timed repetitions per measurement (median reported)")
      ->check(CLI::Range(1, 1000));

  bool defaults = false;
  auto* config_cmd = app.add_subcommand("config", "print configuration information");
  config_cmd->add_flag("--defaults", defaults, "print every key with its default value")->required();

  std::string report_dir;
  auto* report = app.add_subcommand("report", "write report.md and plots/ for a run or sweep directory");
  report->add_option("dir", report_dir, "a run or sweep directory written by `resgd run`")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : kExitConfigError;
  }

  try {
    if (*validate) {
      const auto config = validate_args.load();
      resgd::resolve_device(config);
      const double memory = check_memory_of_every_run(config);  // each point checked
      const size_t runs = resgd::expand_sweep(config).size();
      const auto available = resgd::available_memory();
      std::cout << resgd::dump_yaml(config);
      std::cerr << fmt::format("{}: valid; {} run{}; {} about {:.3g} GiB of memory{}\n", validate_args.file, runs,
                               runs == 1 ? "" : "s", runs == 1 ? "it needs" : "the largest needs",
                               memory / (1 << 30),
                               available ? fmt::format(" ({:.3g} GiB available)", *available / (1 << 30)) : "");
      return 0;
    }
    if (*gradcheck) {
      const auto config = gradcheck_args.load();
      resgd::check_memory(config, resgd::resolve_device(config).is_cpu());
      return resgd::run_gradcheck(config, resgd::resolve_device(config), std::cout);
    }
    if (*bench) return resgd::run_bench(bench_options, std::cout);
    if (*report) {
      // Not while a run writes there: a run or sweep directory is locked as a run locks it.
      std::optional<resgd::DirectoryLock> lock;
      if (std::filesystem::exists(std::filesystem::path(report_dir) / "config.yaml")) lock.emplace(report_dir);
      const auto written = resgd::write_report(report_dir);  // before any output: it may throw
      std::cout << "report: " << written.string() << std::endl;
      return 0;
    }
    if (*config_cmd) {
      std::cout << resgd::dump_yaml(resgd::ExperimentConfig{});
      return 0;
    }
    if ((resume || resume_or_start) && out.empty())
      throw resgd::ConfigError("--resume needs the --out directory of the run to continue");
    return run_command(run_args, out, force, resume, resume_or_start, jobs);  // `resgd` alone runs the flagship
  } catch (const resgd::ConfigError& e) {
    std::cerr << "resgd: error: " << e.what() << std::endl;
    return kExitConfigError;
  } catch (const resgd::IoError& e) {
    std::cerr << "resgd: error: " << e.what() << std::endl;
    return kExitFailure;
  } catch (const std::bad_alloc&) {
    std::cerr << "resgd: error: out of memory; the run's directory was not kept (see `resgd validate` for the "
                 "estimate)" << std::endl;
    return kExitFailure;
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    if (what.find("can't allocate memory") != std::string::npos || what.find("out of memory") != std::string::npos) {
      const size_t tried = what.find("you tried");  // LibTorch's CPU allocator: the size asked for
      std::cerr << "resgd: error: out of memory: " << (tried == std::string::npos ? what : what.substr(tried))
                << std::endl;
      return kExitFailure;
    }
    std::cerr << "resgd: internal error: " << what << std::endl;
    return kExitFailure;
  } catch (const std::exception& e) {
    std::cerr << "resgd: error: " << e.what() << std::endl;
    return kExitFailure;
  }
}
