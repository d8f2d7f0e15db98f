// Runs an experiment file: one run, or one run per sweep point, each leaving the files
// of DESIGN.md, "What a run leaves behind".
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "resgd/config.h"

namespace resgd {

/// One finished run: where it lives, which sweep point it was, and its summary.json.
struct RunRecord {
  SweepPoint point;
  std::filesystem::path dir;
  nlohmann::json summary;
};

struct RunOptions {
  std::filesystem::path out;  // the run (or sweep) directory
  bool force = false;         // allow writing into an existing, non-empty directory
  std::ostream* log = nullptr;  // progress lines; null = quiet
  const std::atomic<bool>* stop_requested = nullptr;
};

/// The default output directory: results/<name>-<YYYYmmdd-HHMMSS>.
std::filesystem::path default_output_dir(const ExperimentConfig& config);

/// Trains one configuration (no sweep) into `dir`; returns its summary.json.
nlohmann::json run_single(const ExperimentConfig& config, const std::filesystem::path& dir,
                          const RunOptions& options);

/// Runs the experiment: a single run in `out`, or every sweep point under `out/runs/`
/// plus `out/sweep.csv`. Refuses an existing non-empty `out` unless `force`.
std::vector<RunRecord> run_experiment(const ExperimentConfig& config, const RunOptions& options);

}  // namespace resgd
