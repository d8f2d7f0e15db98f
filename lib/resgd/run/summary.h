// What a run and a sweep sum up to: summary.json, sweep.csv and the one-line account of a
// finished run. The one place their fields are named: docs/design.md, "The run directory".
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "resgd/core/config.h"
#include "resgd/run/run_record.h"
#include "resgd/science/data.h"
#include "resgd/science/training.h"

namespace resgd {

/// What a summary records beside the run's result.
struct RunFacts {
  std::string device;  // e.g. "cpu", "cuda:0"
  uint64_t data_hash = 0;
  double lr = 0;                  // the step GD took (step_size.h)
  std::optional<double> lr_edge;  // with train.lr_edge: the edge it was a fraction of
};

/// A finished run's summary.json: the result, the diagnostics at the first and last
/// diagnosed iteration and over the run, and what produced it. Numbers that are not finite
/// are null (JSON has neither NaN nor inf); a key is always present, null where it has no
/// value, but the sharpness's, present only where diagnostics.sharpness is on.
nlohmann::json summarize(const ExperimentConfig& config, const TrainResult& result, const Dataset& data,
                         const RunFacts& facts);

/// The summary scalars that sweep.csv and the printed table carry, in order.
std::vector<std::string> summary_columns(int64_t layers);

/// A per-block column ("cond_g2": block 2 of summary.json's list "cond_g") as its list's
/// name and its block; none for any other name.
std::optional<std::pair<std::string, int64_t>> block_column(const std::string& column);

/// How summary_cell writes a floating-point value: every digit (sweep.csv) or four
/// significant ones (console tables). Integers (iters) are written whole either way.
enum class CellDigits { all, four };

/// The value of a summary column as text ("" where null or absent); "cond_g2" reads
/// block 2 of the list "cond_g".
std::string summary_cell(const nlohmann::json& summary, const std::string& column, CellDigits digits = CellDigits::all);

/// One row of sweep.csv: the run's directory (relative to the sweep's runs/, or to the
/// comparison), its values of the swept keys, its seed and summary.
struct SweepCsvRow {
  std::string run;
  std::vector<std::string> values;
  int64_t seed = 0;
  nlohmann::json summary;
};
/// sweep.csv: one row per run: run, the swept keys, seed, then the summary scalars (for
/// as many blocks as the deepest run has).
void write_sweep_csv(const std::filesystem::path& path, const std::vector<std::string>& keys,
                     const std::vector<SweepCsvRow>& rows);
/// The same for a sweep's finished runs.
void write_sweep_csv(const std::filesystem::path& path, const ExperimentConfig& config,
                     const std::vector<RunRecord>& records);

/// How tables and legends name swept keys: without their section ("model.residual.attention"
/// is "residual.attention"), in full where two would read alike.
std::vector<std::string> display_names(const std::vector<std::string>& keys);
/// How tables and legends show a value: "on" and "off" for true and false ("attention=false"
/// reads as "no attention"), other values as written.
std::string display_value(const std::string& value);

/// A summary's linear_rate where the run converged linearly (converges_linearly), else
/// none: the fitted "rate" of a stalled run is about 1 and that of a diverged one far above.
/// summary.json's `status` as the enum every reader compares; nullopt where it is missing
/// or unknown (a damaged file, or one a later resgd wrote).
std::optional<Status> run_status(const nlohmann::json& summary);

/// A summary written before the verdict counts a converged run with a rate below 1.
std::optional<double> rate_if_linear(const nlohmann::json& summary);

/// One progress line for a finished run: "[2/6] key=value/seed=0: converged after 561 ...".
std::string format_run_line(const RunRecord& record, size_t index, size_t total);

}  // namespace resgd
