// The `resgd` command: run, validate and inspect experiments. The one place that catches:
// configuration errors exit 2, other failures exit 1, a diverged run is a result (exit 0).
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>

#include <chrono>
#include <iostream>
#include <mutex>
#include <optional>
#include <thread>

#include "resgd/bench.h"
#include "resgd/claims.h"
#include "resgd/columns.h"
#include "resgd/compute/compute.h"
#include "resgd/compute/process.h"
#include "resgd/config.h"
#include "resgd/cost.h"
#include "resgd/data.h"
#include "resgd/device.h"
#include "resgd/diagnostics.h"
#include "resgd/estimate.h"
#include "resgd/files.h"
#include "resgd/flagship.h"
#include "resgd/gradcheck.h"
#include "resgd/io.h"
#include "resgd/report.h"
#include "resgd/reproduce.h"
#include "resgd/runner.h"
#include "resgd/slurm.h"
#include "resgd/subprocess.h"
#include "resgd/summary.h"
#include "resgd/version.h"

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitConfigError = 2;

// SIGINT/SIGTERM: the first asks the run to stop after its current iteration (metrics
// flushed, checkpoint and summary written); a second one stops at once.
// The library's flag: a program resgd waits for (gnuplot, sbatch) is killed once it is set.
std::atomic<bool>& g_stop_requested = resgd::stop_flag();
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
    if (std::none_of(axes.begin(), axes.end(),
                     [](const auto& a) { return a.key == "data.path" || a.key == "data.kind"; }))
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
  const auto runs =
      config.sweep.empty() ? std::vector<resgd::ExperimentConfig>{config} : resgd::sweep_point_configs(config);
  double largest = 0;
  for (const auto& run : runs) {
    resgd::check_memory(run, resgd::resolve_device(run).is_cpu());
    largest = std::max(largest, resgd::estimate_memory(run).bytes());
  }
  return largest;
}

/// Sets the process up for the experiment's backend (before anything multiplies) and says
/// in one line what computes: with `verbose`, every choice.
void set_up_compute(const resgd::ExperimentConfig& config, bool verbose, std::ostream& out) {
  resgd::compute::configure_process(config.compute.backend);
  const torch::Device device = resgd::resolve_device(config);
  out << fmt::format("{}, {}, {}, {} backend", device.str(), resgd::to_string(config.dtype),
                     resgd::compute::blas_short_name(), resgd::to_string(config.compute.backend))
      << "\n";
  if (verbose) out << resgd::compute::describe(resgd::compute::policy_for(config, 1), true) << "\n";
}

/// The sweep's time, measured on one step and one diagnosis of each size of run, and a
/// warning where the diagnostics would cost more than the training.
void print_estimate(const resgd::ExperimentConfig& config, int jobs) {
  const auto runs =
      config.sweep.empty() ? std::vector<resgd::ExperimentConfig>{config} : resgd::sweep_point_configs(config);
  const auto estimate = resgd::estimate_time(runs, jobs);
  std::cout << resgd::describe(estimate) << "\n";
  if (const auto warning = resgd::diagnostics_warning(estimate, config)) std::cout << *warning << "\n";
}

/// One point of a sweep that `resgd submit` prepared: what each array task runs.
int run_point_command(const ExperimentArgs& args, const std::string& out, size_t point, bool verbose) {
  if (out.empty()) throw resgd::ConfigError("--point needs the --out directory that resgd submit prepared");
  resgd::ExperimentConfig config = args.load();
  resgd::forget_tensors_sizes(config);
  resgd::resolve_device(config);
  set_up_compute(config, verbose, std::cout);
  resgd::RunOptions options;
  options.out = out;
  options.stop_requested = &g_stop_requested;
  install_stop_handlers();
  const auto record = resgd::run_point(config, point, options);
  std::cout << resgd::format_run_line(record, point + 1, std::max<size_t>(1, resgd::expand_sweep(config).size()))
            << std::endl;
  if (record.summary.value("status", "") == "interrupted") return 128 + g_signal.load();
  return 0;
}

int run_command(const ExperimentArgs& args, const std::string& out, bool force, bool resume, bool resume_or_start,
                int jobs, bool verbose, const resgd::PlotFormats& formats) {
  const resgd::ExperimentConfig config = args.load();
  resgd::resolve_device(config);  // fail on a missing GPU before any file is written
  check_memory_of_every_run(config);
  set_up_compute(config, verbose, std::cout);
  resgd::RunOptions options;
  options.out_is_new = out.empty();
  options.out = options.out_is_new ? resgd::create_default_output_dir(config) : std::filesystem::path(out);
  options.force = force;
  options.resume = resume || resume_or_start;
  options.start_if_missing = resume_or_start;
  const int cores = resgd::compute::usable_cores();
  options.jobs = jobs > 0 ? jobs : config.compute.backend == resgd::Backend::tuned ? cores : 1;
  print_estimate(config, options.jobs);
  options.log = &std::cout;
  const size_t total_runs = resgd::expand_sweep(config).size();
  TerminalProgress progress(total_runs);
  std::ostream progress_log(&progress);
  if (isatty(STDOUT_FILENO) && total_runs > 1) {
    options.log = &progress_log;
    options.on_row = [&](const resgd::SweepPoint& point, const resgd::IterationRow& row) {
      progress.on_row(point, row);
    };
  }
  options.stop_requested = &g_stop_requested;
  install_stop_handlers();
  options.finish = [&](const std::vector<resgd::RunRecord>&) { resgd::write_report(options.out, std::cerr, formats); };
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
  CLI::App app{
      "ResGD: gradient descent on Transformers with residual connections.\n"
      "With no command, runs the flagship experiment (residual vs plain)."};
  app.require_subcommand(0, 1);

  ExperimentArgs run_args;
  std::string out;
  bool force = false;
  bool resume = false;
  bool resume_or_start = false;
  bool verbose = false;
  int jobs = 0;  // 0: the default, set once the backend is known
  auto* run = app.add_subcommand("run", "train an experiment (or every point of its sweep)");
  run_args.add_to(*run, /*file_required=*/false);
  run->add_option("--out", out, "output directory (default: results/<name>-<time>)");
  run->add_option("--jobs", jobs,
                  "sweep runs trained at once (default: the cores with the tuned backend, whose runs side by side "
                  "keep to a thread each; 1 with the reference)")
      ->check(CLI::Range(1, 256));
  run->add_flag("-v,--verbose", verbose, "say how the products are computed: kernels, routes, threads");
  auto* force_flag = run->add_flag("--force", force, "write into an existing non-empty output directory");
  auto* resume_flag =
      run->add_flag("--resume", resume, "continue an interrupted run or sweep in --out; finished runs are skipped")
          ->excludes(force_flag);
  auto* resume_or_start_flag =
      run->add_flag("--resume-or-start", resume_or_start, "as --resume, but start a new run where --out does not exist")
          ->excludes(force_flag)
          ->excludes(resume_flag);
  int64_t point = -1;
  run->add_option("--point", point,
                  "train only this point (0-based) of the sweep that `resgd submit` prepared in --out; resumes it "
                  "where it stopped")
      ->check(CLI::NonNegativeNumber)
      ->excludes(force_flag)
      ->excludes(resume_flag)
      ->excludes(resume_or_start_flag);

  ExperimentArgs submit_args;
  resgd::SubmitOptions submit_options;
  std::string submit_out, submit_resgd;
  auto* submit = app.add_subcommand(
      "submit", "queue a sweep on a Slurm cluster: one array task per point, then the report (docs/cluster.md)");
  submit_args.add_to(*submit, /*file_required=*/true);
  submit->get_option("experiment")->description("experiment YAML file, or with --resume the sweep directory");
  submit->add_option("--out", submit_out,
                     "the sweep directory, shared with the nodes (with --resume: DIR alone will do)");
  submit->add_option("--partition", submit_options.partition, "sbatch --partition");
  submit->add_option("--time", submit_options.time, "sbatch --time, each task's limit (e.g. 2:00:00)");
  submit->add_option("--cpus-per-task", submit_options.cpus_per_task, "sbatch --cpus-per-task")
      ->check(CLI::Range(1, 4096));
  submit
      ->add_option("--gpus-per-task", submit_options.gpus_per_task,
                   "sbatch --gpus-per-task; tasks run with device: auto unless the file says otherwise")
      ->check(CLI::Range(1, 64));
  submit->add_option("--max-parallel", submit_options.max_parallel, "tasks running at once at most (the array's %K)")
      ->check(CLI::Range(1, 100000));
  submit
      ->add_option("--signal-seconds", submit_options.signal_seconds,
                   "SIGTERM this long before the time limit, so a task checkpoints and requeues itself")
      ->capture_default_str()
      ->check(CLI::Range(10, 86400));
  submit->add_option("--sbatch-arg", submit_options.sbatch_args, "one more sbatch argument for the array (repeatable)")
      ->allow_extra_args(false);
  submit->add_flag("--dry-run", submit_options.dry_run, "write the scripts, submit nothing");
  submit->add_flag("--resume", submit_options.resume,
                   "queue the points of --out's sweep that have not finished (the same configuration only)");
  submit->add_option("--resgd", submit_resgd, "the resgd the tasks run (default: this one)");

  std::string status_dir;
  auto* status =
      app.add_subcommand("status", "where each point of a submitted or local sweep stands; exit 0 when all finished");
  status->add_option("dir", status_dir, "the sweep (or run) directory")->required();

  ExperimentArgs validate_args;
  auto* validate = app.add_subcommand("validate", "check an experiment file and print its resolved configuration");
  validate_args.add_to(*validate, /*file_required=*/true);

  ExperimentArgs gradcheck_args;
  auto* gradcheck = app.add_subcommand(
      "gradcheck", "compare hand-derived gradients, autograd and finite differences (float64); exit 1 on a mismatch");
  gradcheck_args.add_to(*gradcheck, /*file_required=*/false);

  resgd::BenchOptions bench_options;
  auto* bench = app.add_subcommand("bench", "time GD steps at fixed sizes against this machine's GEMM ceiling");
  bench->add_option("--sizes", bench_options.sizes, "comma-separated: small, medium, large, flagship")->delimiter(',');
  bench->add_option("--dtype", bench_options.dtype, "float32 or float64 (default: each size's own)");
  bench->add_option("--device", bench_options.device, "cpu, cuda or cuda:N");
  bench->add_option("--repeats", bench_options.repeats, "timed repetitions per measurement (median reported)")
      ->check(CLI::Range(1, 1000));
  std::string bench_backend = "tuned";
  bench->add_option("--backend", bench_backend, "tuned or reference")->check(CLI::IsMember({"tuned", "reference"}));
  bench
      ->add_option("--without", bench_options.without,
                   "comma-separated tunings the tuned backend leaves out: " +
                       fmt::format("{}", fmt::join(resgd::tuning_names(), ", ")))
      ->delimiter(',');
  bench
      ->add_option("--variants", bench_options.variants,
                   "compare these, each in a process of its own, in turns: tuned, reference, tuned-without-NAME "
                   "(comma-separated; ratios are to the first)")
      ->delimiter(',');
  bench->add_option("--rounds", bench_options.rounds, "with --variants: rounds of every variant (median reported)")
      ->check(CLI::Range(1, 100));

  bool defaults = false, explain_config = false, explain_metrics = false;
  std::string config_key, metric_name;
  auto* config_cmd = app.add_subcommand("config", "print every experiment key with its default, or explain them");
  auto* defaults_flag = config_cmd->add_flag("--defaults", defaults, "print every key with its default value (YAML)");
  config_cmd->add_flag("--explain", explain_config, "each key's type, default, allowed values and meaning")
      ->excludes(defaults_flag);
  config_cmd->add_option("key", config_key, "with --explain: this key only (e.g. train.lr)");
  auto* metrics_cmd = app.add_subcommand("metrics", "explain the columns of metrics.csv, summary.json and sweep.csv");
  metrics_cmd->add_flag("--explain", explain_metrics, "each column's files and meaning, with its formula")->required();
  metrics_cmd->add_option("name", metric_name, "this column only (e.g. cond_g2, pl_ratio)");

  bool explain_claims = false;
  auto* claims_cmd = app.add_subcommand("claims", "explain the claims language of an experiment file's claims.expect");
  claims_cmd->add_flag("--explain", explain_claims, "every rule, bound and option, and how each can fail")->required();

  std::string report_dir;
  auto* report = app.add_subcommand("report", "write report.md and plots/ for a run, a sweep or a folder of them");
  report->add_option("dir", report_dir, "a run or sweep directory of `resgd run`, or a folder holding such")
      ->required();

  std::vector<std::string> compare_dirs;
  std::string compare_out;
  auto* compare = app.add_subcommand(
      "compare", "merge runs and sweeps of one experiment that differ in swept keys: sweep.csv, report.md, plots");
  compare->add_option("dirs", compare_dirs, "run or sweep directories of `resgd run`")->required()->expected(1, -1);
  compare->add_option("--out", compare_out, "the directory to write into")->required();

  resgd::ColumnRequest column;
  std::string plot_dir;
  auto* plot = app.add_subcommand("plot", "draw one metrics.csv column of a run, a sweep or a folder of them");
  plot->add_option("dir", plot_dir, "a run or sweep directory, or a folder holding such")->required();
  plot->add_option("--y", column.y, "the column to draw, by name (e.g. loss, cond_g1, sharpness)")->required();
  plot->add_option("--x", column.x, "the column along x (default: iter)");
  plot->add_option("--by", column.by, "colour the runs by this key's value (default: by setting)");
  plot->add_flag("--logy", column.log_y, "a logarithmic y axis");
  plot->add_option("--out", column.out, "the image, .png, .svg or .pdf (default: DIR/plots/<y>[_by_<key>].png)");

  resgd::ReproduceOptions reproduce_options;
  std::string reproduce_out, experiments_dir;
  int reproduce_jobs = 0;
  auto* reproduce = app.add_subcommand(
      "reproduce", "rerun every experiment file and check its claims: results.md with a verdict per claim");
  reproduce->add_option("--out", reproduce_out,
                        "where to write (default: results/reproduce, or results/reproduce-quick)");
  reproduce->add_flag("--quick", reproduce_options.quick, "each file's claims.quick: fewer seeds and steps, minutes");
  reproduce->add_option("--only", reproduce_options.only, "these experiments only (file stems, comma-separated)")
      ->delimiter(',');
  reproduce->add_option("--experiments", experiments_dir, "the folder of experiment files (default: the bundled ones)");
  reproduce->add_option("--jobs", reproduce_jobs, "runs of a sweep trained at once (default: the cores)")
      ->check(CLI::Range(1, 256));

  std::string formats_text = "png,svg";
  for (auto* command : {run, report, compare, reproduce})
    command->add_option("--format", formats_text, "image formats of the plots: png, svg, pdf (comma-separated)")
        ->capture_default_str();

  app.set_version_flag("--version", fmt::format("resgd {} (commit {}), LibTorch {}", resgd::resgd_version(),
                                                resgd::resgd_commit(), resgd::libtorch_version()));
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
                               runs == 1 ? "" : "s", runs == 1 ? "it needs" : "the largest needs", memory / (1 << 30),
                               available ? fmt::format(" ({:.3g} GiB available)", *available / (1 << 30)) : "");
      return 0;
    }
    if (*gradcheck) {
      const auto config = gradcheck_args.load();
      resgd::check_memory(config, resgd::resolve_device(config).is_cpu());
      set_up_compute(config, /*verbose=*/false, std::cout);
      return resgd::run_gradcheck(config, resgd::resolve_device(config), std::cout);
    }
    if (*bench) {
      bench_options.backend = *resgd::parse_enum<resgd::Backend>(bench_backend);
      if (bench_options.variants.empty()) resgd::configure_bench_process(bench_options);
      return resgd::run_bench(bench_options, std::cout);
    }
    const resgd::PlotFormats formats = resgd::parse_plot_formats(formats_text);
    // A stop while gnuplot draws: it is killed, the report says which plots are missing.
    if (*report || *compare || *plot) install_stop_handlers();
    if (*report) {
      // Not while a run writes there: a run or sweep directory is locked as a run locks it.
      std::optional<resgd::DirectoryLock> lock;
      if (std::filesystem::exists(std::filesystem::path(report_dir) / "config.yaml")) {
        lock.emplace(report_dir);
        resgd::complete_sweep_table(report_dir);  // a sweep whose points ran apart (resgd submit)
      }
      const auto written = resgd::write_report(report_dir, std::cerr, formats);  // before any output: it may throw
      std::cout << "report: " << written.string() << std::endl;
      if (const int signal_number = g_signal.load(); signal_number != 0) return 128 + signal_number;
      return 0;
    }
    if (*compare) {
      std::vector<std::filesystem::path> dirs(compare_dirs.begin(), compare_dirs.end());
      const auto written = resgd::write_comparison(dirs, compare_out, formats);
      std::cout << "sweep table: " << (std::filesystem::path(compare_out) / "sweep.csv").string() << "\n"
                << "report: " << written.string() << std::endl;
      if (const int signal_number = g_signal.load(); signal_number != 0) return 128 + signal_number;
      return 0;
    }
    if (*plot) {
      std::optional<resgd::DirectoryLock> lock;  // its plots/ folder, as report does
      if (column.out.empty() && std::filesystem::exists(std::filesystem::path(plot_dir) / "config.yaml"))
        lock.emplace(plot_dir);
      try {
        std::cout << "plot: " << resgd::plot_column(plot_dir, column).string() << std::endl;
      } catch (const resgd::IoError& e) {
        if (g_signal.load() == 0) throw;
        std::cerr << "resgd: interrupted: " << e.what() << std::endl;  // the drawing stopped with resgd
        return 128 + g_signal.load();
      }
      return 0;
    }
    if (*reproduce) {
      resgd::compute::configure_process(resgd::Backend::tuned);
      reproduce_options.experiments =
          experiments_dir.empty() ? resgd::bundled_experiments() : std::filesystem::path(experiments_dir);
      reproduce_options.out = !reproduce_out.empty()    ? std::filesystem::path(reproduce_out)
                              : reproduce_options.quick ? std::filesystem::path("results/reproduce-quick")
                                                        : std::filesystem::path("results/reproduce");
      reproduce_options.jobs = reproduce_jobs > 0 ? reproduce_jobs : resgd::compute::usable_cores();
      reproduce_options.formats = formats;
      reproduce_options.log = &std::cout;
      reproduce_options.stop_requested = &g_stop_requested;
      install_stop_handlers();
      const bool all_shown = resgd::reproduce(reproduce_options);
      if (const int signal_number = g_signal.load(); signal_number != 0) return 128 + signal_number;
      return all_shown ? 0 : kExitFailure;
    }
    if (*submit) {
      if (submit_args.file.empty() || std::filesystem::is_directory(submit_args.file)) {
        // `resgd submit DIR --resume`: the directory's own configuration.
        if (submit_out.empty()) submit_out = submit_args.file;
        submit_args.file = (std::filesystem::path(submit_out) / "config.yaml").string();
      }
      if (submit_out.empty()) throw resgd::ConfigError("submit: --out DIR is required: the sweep directory");
      const auto config = submit_args.load();
      submit_options.out = submit_out;
      submit_options.resgd = submit_resgd.empty() ? resgd::this_executable() : std::filesystem::path(submit_resgd);
      if (!submit_resgd.empty()) submit_options.resgd = std::filesystem::absolute(submit_options.resgd);
      submit_options.log = &std::cout;
      resgd::submit(config, submit_options);
      return 0;
    }
    if (*status) return resgd::print_status(status_dir, std::cout) ? 0 : kExitFailure;
    if (*config_cmd) {
      if (!explain_config) {
        if (!config_key.empty())
          throw resgd::ConfigError("config: a key goes with --explain (resgd config --explain KEY)");
        std::cout << resgd::dump_yaml(resgd::ExperimentConfig{});
        return 0;
      }
      const std::string text = resgd::explain_keys(config_key);
      if (text.empty())
        throw resgd::ConfigError(
            fmt::format("config --explain: unknown key '{}'; resgd config --explain lists them all", config_key));
      std::cout << text;
      return 0;
    }
    if (*claims_cmd) {
      std::cout << resgd::explain_claims();
      return 0;
    }
    if (*metrics_cmd) {
      const std::string text = resgd::explain_columns(metric_name);
      if (text.empty())
        throw resgd::ConfigError(
            fmt::format("metrics --explain: unknown column '{}'; resgd metrics --explain lists "
                        "them all",
                        metric_name));
      std::cout << text;
      return 0;
    }
    if ((resume || resume_or_start) && out.empty())
      throw resgd::ConfigError("--resume needs the --out directory of the run to continue");
    if (point >= 0) return run_point_command(run_args, out, static_cast<size_t>(point), verbose);
    // `resgd` alone: the flagship
    return run_command(run_args, out, force, resume, resume_or_start, jobs, verbose, formats);
  } catch (const resgd::ConfigError& e) {
    std::cerr << "resgd: error: " << e.what() << std::endl;
    return kExitConfigError;
  } catch (const resgd::IoError& e) {
    std::cerr << "resgd: error: " << e.what() << std::endl;
    return kExitFailure;
  } catch (const std::bad_alloc&) {
    std::cerr << "resgd: error: out of memory; the run's directory was not kept (see `resgd validate` for the "
                 "estimate)"
              << std::endl;
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
  } catch (const resgd::Stopped& e) {  // before the first step: nothing of the run was kept
    std::cerr << "resgd: interrupted: " << e.what() << "; the run had not begun, and nothing of it was kept"
              << std::endl;
    return 128 + (g_signal.load() != 0 ? g_signal.load() : SIGINT);
  } catch (const std::exception& e) {
    std::cerr << "resgd: error: " << e.what() << std::endl;
    return kExitFailure;
  }
}
