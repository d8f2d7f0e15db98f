// Figures over runs (`resgd plot DIR --x COL --y EXPR`): one point per run of a sweep or a
// folder of runs, x a summary column, a derived metric or a configuration key, y an
// arithmetic expression of them (expression.h); colour by one key, marker by another, and a
// least-squares line per colour on the figure's own axes (a power law on log-log axes).
// Runs that diverged or stalled are drawn as crosses and never fitted.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace resgd {

struct SummaryPlotRequest {
  std::string x, y;       // x: a name; y: an expression of names
  std::string by, shape;  // keys: the colour and the marker of each run's point
  bool log_x = false, log_y = false, fit = false;
  std::filesystem::path out;  // the image; default DIR/plots/<y>_vs_<x>[_by_<by>].png
};

/// Whether `resgd plot` draws one point per run rather than one curve per run: unless x and
/// y are both metrics.csv columns (iter, loss, cond_g1, ...) and neither a marker, a log x
/// axis nor a fit is asked for.
bool draws_over_runs(const std::string& x, const std::string& y, bool shape, bool log_x, bool fit);

/// A least-squares line through the points of one colour, on the figure's axes (ln of a
/// log axis): v = intercept + slope u.
struct FittedLine {
  std::string group;  // "data.seq_len=4", or "all runs"
  double slope = 0, intercept = 0, correlation = 0;
  size_t runs = 0, distinct_x = 0;
};

struct SummaryPlotResult {
  std::filesystem::path image;
  std::vector<FittedLine> fits;
  std::vector<std::string> notes;  // runs left out, and why
};

/// Draws the figure; ConfigError for a name that is no column, metric or key, IoError where
/// there is nothing to draw or gnuplot failed.
SummaryPlotResult plot_summary(const std::filesystem::path& dir, const SummaryPlotRequest& request);

}  // namespace resgd
