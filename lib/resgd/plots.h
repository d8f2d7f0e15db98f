// Plots of a run or a sweep, drawn by gnuplot: DESIGN.md, "What a run leaves behind" (plots/).
//
// Each plot is a gnuplot script saved as DIR/plots/<name>.gp, run from DIR (so
// `cd DIR && gnuplot plots/<name>.gp` redraws it after an edit), writing <name>.png and
// <name>.svg. Scripts read the runs' metrics.csv directly; data computed here (singular
// values, aggregates) travel inside the script as datablocks. gnuplot is a runtime
// dependency: without it nothing is drawn and the caller says so.
#pragma once

#include <torch/torch.h>

#include <array>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace resgd {

/// One run to draw: where it lives, its legend label and its colour.
struct PlotRun {
  std::filesystem::path dir;  // holds metrics.csv, config.yaml, tensors/init.pt
  std::string label;          // the swept setting, e.g. "attention=true"; one legend entry per group
  size_t group = 0;           // colour index: runs of one swept setting share a colour
  bool diverged = false;      // its status: the loss axis need not reach its last values
  double lr = 0;              // train.lr: the sharpness plot draws lr x sharpness
};

/// One curve of a metric against a numeric swept value: points (x, mean, min, max).
struct MetricSeries {
  std::string label;
  std::vector<std::array<double, 4>> points;
};

/// A metric against a swept value, with error bars from min to max over seeds; or, with
/// `power_law`, one point per run on log-log axes, where a power law is a straight line.
struct MetricPlot {
  std::string name;  // file stem under plots/
  std::string x_label, y_label;
  bool log_y = false;
  std::vector<MetricSeries> series;
  bool power_law = false;
  std::string title;  // empty: "<y> against <x> (mean, bars min to max over seeds)"
};

/// What was drawn: image stems (plots/<name>.png and .svg exist), notes on what was left
/// out, and the plots gnuplot failed on (its messages are in plots/gnuplot.log).
struct PlotResult {
  std::vector<std::string> drawn;
  std::vector<std::string> notes;
  std::vector<std::string> failed;
};

/// The gnuplot executable on PATH, if any.
std::optional<std::filesystem::path> find_gnuplot();

/// Singular values of G^l = gamma_a H^{l-1} + S^l H^{l-1} W_V^l at initialization, per block
/// l: (N, min(n, d)) each, descending. Rebuilt from the run's config.yaml and tensors/init.pt
/// by the model code, so the plot shows exactly the matrices the run trained.
std::vector<torch::Tensor> init_singular_values(const std::filesystem::path& run_dir);

/// Draws, into dir/plots with `gnuplot`: loss, cond_g<l> and sigma_min_g<l> against
/// iteration (one line per run), the singular values of G^l at initialization, lr x
/// sharpness against iteration with the edge of stability at 2 (where runs measured it),
/// and each metric plot. Run directories are taken relative to `dir`.
PlotResult draw_plots(const std::filesystem::path& gnuplot, const std::filesystem::path& dir,
                      const std::vector<PlotRun>& runs, const std::vector<MetricPlot>& metric_plots);

}  // namespace resgd
