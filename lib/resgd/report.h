// Sweep tables and reports: sweep.csv, the table printed at the end of a run, and report.md
// with its plots (DESIGN.md, "What a run leaves behind"; the plots are in plots.h).
#pragma once

#include <filesystem>
#include <iostream>
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

/// Writes dir/report.md and dir/plots/ for a run directory (config.yaml, summary.json,
/// metrics.csv) or a sweep directory (config.yaml with its sweep, runs/), from those files
/// alone; an interrupted sweep reports the runs that finished. Per swept setting, over its
/// seeds: mean and [min, max] of iterations to tolerance, final loss, linear rate and cond_g
/// per block at init and end, and the share of runs converged and diverged. Without gnuplot
/// on PATH the tables are still written, and report.md and `log` say the plots were
/// skipped. Returns the path of report.md.
std::filesystem::path write_report(const std::filesystem::path& dir, std::ostream& log = std::cerr);

}  // namespace resgd
