// Reports: the table printed at the end of a run, and report.md with its plots
// (docs/design.md, "The run directory"; the plots are in plots.h), from the run files.
#pragma once

#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "resgd/core/config.h"
#include "resgd/report/plots.h"
#include "resgd/run/run_record.h"

namespace resgd {

/// A fixed-width text table of the runs: swept values, seed, status, iterations, final
/// loss, linear rate, cond_g1 at initialization and the median PL ratio.
std::string format_summary_table(const ExperimentConfig& config, const std::vector<RunRecord>& records);

/// Writes dir/report.md and dir/plots/ for a run directory, a sweep directory (an
/// interrupted sweep reports the runs that finished and names the others), or a folder
/// holding such directories (collection.h), from their files alone. Per setting, over its
/// seeds: the share of runs converged and diverged, and over those that finished without
/// diverging the mean and [min, max] of iterations to tolerance, final loss, 1 - rate and
/// cond_g per block at init and end. Without gnuplot on PATH the tables are still
/// written, and report.md and `log` say the plots were skipped. Returns report.md's path.
std::filesystem::path write_report(const std::filesystem::path& dir, std::ostream& log = std::cerr,
                                   const PlotFormats& formats = {"png", "svg"});

/// `resgd compare`: the runs of several run and sweep directories that differ only in
/// swept keys (merge_collections) as one sweep in `out`: compare.json, sweep.csv,
/// report.md, plots/. `out` must be new, empty, or an earlier comparison's output.
std::filesystem::path write_comparison(const std::vector<std::filesystem::path>& dirs, const std::filesystem::path& out,
                                       const PlotFormats& formats = {"png", "svg"}, std::ostream& log = std::cerr);

/// `resgd plot`: a metrics.csv column of every run under a directory.
struct ColumnRequest {
  std::string y, x = "iter";
  std::string by;  // colour by this key's value; empty: by setting
  bool log_y = false;
  std::filesystem::path out;  // .png, .svg or .pdf; empty: DIR/plots/<y>[_vs_<x>][_by_<key>].png
};
/// Draws it; the image's path.
std::filesystem::path plot_column(const std::filesystem::path& dir, const ColumnRequest& request);

}  // namespace resgd
