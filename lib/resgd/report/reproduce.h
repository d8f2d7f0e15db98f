// `resgd reproduce`: every experiment file run, its report written and its claims checked,
// into one results.md with a verdict per claim.
#pragma once

#include <atomic>
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "resgd/report/plots.h"

namespace resgd {

struct ReproduceOptions {
  std::filesystem::path experiments;  // the folder of experiment files
  std::filesystem::path out;          // results.md, results/ and one directory per experiment
  bool quick = false;                 // each file's claims.quick overrides: fewer seeds and steps
  std::vector<std::string> only;      // experiment names (file stems); empty: all
  int jobs = 1;                       // runs of a sweep trained at once
  PlotFormats formats = {"png", "svg"};
  std::ostream* log = nullptr;
  const std::atomic<bool>* stop_requested = nullptr;
};

/// The default folder of experiment files: share/resgd/experiments beside the executable
/// (the build tree and an installed prefix alike).
std::filesystem::path bundled_experiments();

/// Runs each experiment file (resuming one whose directory under `out` holds finished or
/// interrupted runs of the same configuration), writes its report, checks its claims, and
/// writes out/results.md: per experiment its statement, command, table, figure (copied to
/// out/results/<name>_<figure>.png) and a verdict per claim. Whether every claim was shown.
bool reproduce(const ReproduceOptions& options);

}  // namespace resgd
