// Runs an experiment file: one run, or one run per sweep point, each leaving the files
// of docs/design.md, "The run directory". The report (report.h) is the app's to write.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <filesystem>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "resgd/core/config.h"
#include "resgd/core/files.h"
#include "resgd/run/run_record.h"
#include "resgd/science/iteration.h"

namespace resgd {

struct RunOptions {
  std::filesystem::path out;      // the run (or sweep) directory
  bool force = false;             // allow writing into an existing, non-empty directory
  bool resume = false;            // continue interrupted runs from their checkpoints, skip finished ones
  bool start_if_missing = false;  // with resume: a missing `out` starts a new run instead of an error
  std::ostream* log = nullptr;    // progress lines; null = quiet
  const std::atomic<bool>* stop_requested = nullptr;
  int jobs = 1;             // sweep runs trained at once, each on its own thread
  bool out_is_new = false;  // `out` was made for this call (create_default_output_dir): removed if left empty
  /// Called after each metrics.csv row is written (progress display, tests), from the
  /// thread that trains that run.
  std::function<void(const SweepPoint&, const IterationRow&)> on_row;
  /// Called with the finished runs before the output directory is released (its lock):
  /// where the app writes the report.
  std::function<void(const std::vector<RunRecord>&)> finish;
};

/// Creates the default output directory, results/<name>-<YYYYmmdd-HHMMSS>, or the first
/// of <that>-2, <that>-3, ... that does not exist yet: each is claimed by one mkdir, so
/// runs started in the same second (a shell loop of `resgd run ... &`) never share one.
std::filesystem::path create_default_output_dir(const ExperimentConfig& config);

/// Trains one configuration (no sweep) into `dir`, which the caller has created and
/// locked; returns its summary.json. `runs_at_once`: the runs this process trains side by
/// side (the policy gives a lone run the cores). A fresh run that fails leaves no file.
nlohmann::json run_single(const ExperimentConfig& config, const std::filesystem::path& dir, const RunOptions& options,
                          const SweepPoint& point = {}, int runs_at_once = 1);

/// The configuration of every point of a sweep, in expand_sweep's order, each checked on
/// its own (settings of different keys that do not go together, a tensors file's sizes read
/// and checked), so that a bad point is refused before anything runs or is written.
std::vector<ExperimentConfig> sweep_point_configs(const ExperimentConfig& config);

/// Runs the experiment: a single run in `out`, or every sweep point under `out/runs/`
/// plus `out/sweep.csv`, holding `out`'s lock throughout. Refuses an existing non-empty
/// `out` unless `force` or `resume`.
/// With `resume`, finished runs are skipped and interrupted ones continue from their
/// checkpoint, so the result equals an uninterrupted run (bit for bit on the CPU, apart
/// from the elapsed_s column).
std::vector<RunRecord> run_experiment(const ExperimentConfig& config, const RunOptions& options);

/// Trains point `index` (expand_sweep's order) of the sweep prepared in `options.out` (its
/// config.yaml, which must be `config`'s: `resgd submit` writes it), into the same
/// runs/<point>/seed=<s>/ directory a local sweep uses, holding only that run's lock, so
/// that the points of one sweep may run at once in separate processes (a cluster's array
/// tasks). An experiment without a sweep has the one point 0, trained into `out` itself.
/// Resumes an interrupted point from its checkpoint and returns a finished one as it is.
RunRecord run_point(const ExperimentConfig& config, size_t index, const RunOptions& options);

/// Prepares `out` for run_point: refuses a directory that holds anything unless `resume`,
/// where it must be a sweep directory of this same configuration; writes config.yaml. The
/// indices of the points not finished yet (all, for a new directory). `lock` is given the
/// directory's lock, for the caller to hold until the points are queued.
std::vector<size_t> prepare_sweep_directory(const ExperimentConfig& config, const std::filesystem::path& out,
                                            bool resume, std::optional<DirectoryLock>& lock);

/// Where every point of the sweep in `out` has finished and sweep.csv is missing (points
/// trained by run_point), writes it as a local sweep does; returns whether sweep.csv exists
/// now. A single run (no sweep) has none: false.
bool complete_sweep_table(const std::filesystem::path& out);

}  // namespace resgd
