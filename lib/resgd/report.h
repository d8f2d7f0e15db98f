// Sweep tables: sweep.csv and the table printed at the end of a run.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "resgd/config.h"
#include "resgd/runner.h"

namespace resgd {

/// The summary scalars that sweep.csv and the printed table carry, in order.
std::vector<std::string> summary_columns(int64_t layers);

/// One progress line for a finished run: "[2/6] key=value/seed=0: converged at 561 ...".
std::string format_run_line(const RunRecord& record, size_t index, size_t total);

/// sweep.csv: one row per run: run directory, swept values, seed, the summary scalars.
void write_sweep_csv(const std::filesystem::path& path, const ExperimentConfig& config,
                     const std::vector<RunRecord>& records);

/// A fixed-width text table of the runs: swept values, seed, status, iterations, final
/// loss, linear rate, cond_g1 at initialization and the median PL ratio.
std::string format_summary_table(const ExperimentConfig& config, const std::vector<RunRecord>& records);

}  // namespace resgd
