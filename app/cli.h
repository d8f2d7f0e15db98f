// Every command's options, registered in one place and held in plain values, so that both
// binaries parse the same command line: `resgd` (no LibTorch: --version, --help, validate,
// config, metrics) and `resgd-torch` (everything), which `resgd` hands the rest to.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "resgd/core/config.h"

namespace resgd::app {

/// What every experiment-taking command shares: the file, --set overrides, --device.
struct ExperimentArgs {
  std::string file;  // empty = the embedded flagship
  std::vector<std::string> overrides;
  std::string device;
};

struct RunArgs {
  ExperimentArgs experiment;
  std::string out;
  bool force = false, resume = false, resume_or_start = false, verbose = false;
  int jobs = 0;        // 0: the default, set once the backend is known
  int64_t point = -1;  // >= 0: one point of a sweep `resgd submit` prepared
};

struct SubmitArgs {
  ExperimentArgs experiment;
  std::string out, partition, time, resgd;
  int cpus_per_task = 0, gpus_per_task = 0, max_parallel = 0, signal_seconds = 120;
  std::vector<std::string> sbatch_args;
  bool dry_run = false, resume = false;
};

struct BenchArgs {
  std::vector<std::string> sizes = {"small", "medium"}, without, variants;
  std::string dtype, device = "cpu", backend = "tuned";
  int repeats = 5, rounds = 3;
};

struct PlotArgs {
  std::string dir, y, x = "iter", by, shape, out;
  bool log_x = false, log_y = false, fit = false;
};

struct ReproduceArgs {
  std::string out, experiments;
  std::vector<std::string> only;
  bool quick = false;
  int jobs = 0;  // 0: the cores
};

/// The parsed command line: `command` names the subcommand ("" = the flagship run).
struct Cli {
  std::string command;
  RunArgs run;
  SubmitArgs submit;
  std::string status_dir, report_dir;
  ExperimentArgs validate, gradcheck;
  BenchArgs bench;
  bool config_defaults = false, config_explain = false, metrics_explain = false, claims_explain = false;
  std::string config_key, metric_name;
  std::vector<std::string> compare_dirs;
  std::string compare_out;
  PlotArgs plot;
  ReproduceArgs reproduce;
  std::string formats = "png,svg";
};

/// The experiment `args` name: the file (or the embedded flagship), then --set and
/// --device. No data file is read: both binaries share it.
ExperimentConfig read_experiment(const ExperimentArgs& args);

/// The application with every command and option, writing into `cli`.
std::unique_ptr<CLI::App> make_cli(Cli& cli);

/// Parses argv into `cli`. Returns the exit code where parsing ends the command (--help,
/// --version: 0; a bad option: 2, with CLI11's message), or -1 to go on and run it.
int parse(CLI::App& app, Cli& cli, int argc, char** argv);

}  // namespace resgd::app
