// Finished runs read back from their directories, for reports and comparisons: one run, a
// sweep, a folder holding such directories, or several of them merged into one sweep.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "resgd/core/config.h"

namespace resgd {

/// One finished run: where it lives, its resolved configuration and its summary.json.
struct FoundRun {
  std::filesystem::path dir;  // absolute
  ExperimentConfig config;    // its config.yaml
  nlohmann::json summary;
  std::vector<std::string> values;  // the collection's keys' values (value_text), in key order
};

/// Runs and the keys they differ in.
struct RunCollection {
  std::string name;               // the experiment's name (the first directory's)
  std::vector<std::string> keys;  // the swept keys, in order of first appearance
  std::vector<bool> zipped;       // per key: moves with the other zipped keys (sweep.zip)
  std::vector<FoundRun> runs;     // sweep order, one directory after another
  /// What was found but left out: where (absolute), and why.
  struct Note {
    std::filesystem::path path;
    std::string why;
  };
  std::vector<Note> notes;
};

/// The file that marks a directory as `resgd compare`'s output: the directories compared.
constexpr const char* kCompareRecord = "compare.json";

/// The directories a `resgd compare` output compared (its compare.json), absolute; none
/// where `dir` is no comparison. IoError for a compare.json that does not read.
std::vector<std::filesystem::path> compared_directories(const std::filesystem::path& dir);

/// The finished runs of `dir`: a run directory; a sweep directory, whose sweep gives the
/// keys (runs not finished are noted); a comparison (`resgd compare`'s output), the runs of
/// the directories it compared; or a folder holding run and sweep directories, whose keys
/// are those its runs differ in (what cannot be read is noted). IoError where no finished
/// run is found.
RunCollection collect_runs(const std::filesystem::path& dir);

/// The runs of several run or sweep directories (or comparisons of them) as one sweep. They must agree on every
/// setting but the keys some of them sweep (two lr grids of one experiment): ConfigError
/// naming the first key two differ in that none sweeps. A run found twice (the same
/// settings and seed) counts once, noted.
RunCollection merge_collections(const std::vector<std::filesystem::path>& dirs);

/// The keys that do not change what a run computes, and so may differ between the runs
/// of one comparison: name, device, compute.backend, train.checkpoint_every.
bool is_bookkeeping_key(const std::string& key);

/// A swept value as a number (a gain written true or false is 1 or 0); none for other text.
std::optional<double> parse_number(const std::string& text);

}  // namespace resgd
