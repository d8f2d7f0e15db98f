// Plots of a run or a sweep, drawn by gnuplot: docs/design.md, "The run directory" (plots/).
//
// Each plot is a gnuplot script saved as DIR/plots/<name>.gp, run from DIR (so
// `cd DIR && gnuplot plots/<name>.gp` redraws it after an edit), writing <name>.png, .svg
// and, when asked for, .pdf. Scripts read the runs' metrics.csv directly, each column by
// its name; data computed here (singular values, aggregates) travel inside the script as
// datablocks. Every plot has the same plot area, whatever its legend. Colour tells the
// swept settings apart, the dash the seeds; a run that diverged is marked where it left
// the axis. gnuplot is a runtime dependency: without it nothing is drawn and the caller
// says so.
#pragma once

#include <torch/torch.h>

#include <array>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace resgd {

/// One run to draw: where it lives, its legend label, its colour and its dash.
struct PlotRun {
  std::filesystem::path dir;  // holds metrics.csv; relative to the plot's directory
  std::string label;          // the swept setting, e.g. "residual.attention=off"; one legend entry per group
  size_t group = 0;           // colour: runs of one swept setting share it
  std::string seed;           // e.g. "0"
  size_t seed_index = 0;      // dash type: the seeds of a setting are told apart by it
  bool diverged = false;      // marked where it left the axis, and kept out of the axis's range
  double lr = 0;              // train.lr: the sharpness plot draws lr x sharpness
};

/// One curve of a metric against a numeric swept value: points (x, mean, min, max) over
/// the runs that did not diverge, and the values at which one did.
struct MetricSeries {
  std::string label;
  std::vector<std::array<double, 4>> points;
  std::vector<double> diverged_at;
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

/// The image formats each plot is written in: png, svg (the default pair), pdf.
using PlotFormats = std::vector<std::string>;
/// "png,svg,pdf" read, or a ConfigError naming what is not a format.
PlotFormats parse_plot_formats(const std::string& list);

/// What was drawn: image stems (plots/<name>.<format> exist), notes on what was left
/// out, and the plots gnuplot failed on (its messages are in plots/gnuplot.log).
struct PlotResult {
  std::vector<std::string> drawn;
  std::vector<std::string> notes;
  std::vector<std::string> failed;
};

/// The gnuplot executable on PATH, if any.
std::optional<std::filesystem::path> find_gnuplot();

/// Singular values of G^l = gamma_a H^{l-1} + S^l H^{l-1} W_V^l at initialization, per block
/// l: (N, min(n, d)) each, descending, as the run recorded them (tensors/init_spectra.pt);
/// none for a run that has no such file.
std::vector<torch::Tensor> init_singular_values(const std::filesystem::path& run_dir);

/// Draws, into dir/plots with `gnuplot`: loss, cond_g<l> and sigma_min_g<l> against
/// iteration (one line per run), the singular values of G^l at initialization, lr x
/// sharpness against iteration with the edge of stability at 2 (where runs measured it),
/// and each metric plot. Run directories are taken relative to `dir`.
/// `linearized`: runs (a few) whose loss is drawn beside their loss_lin, the loss of GD on
/// the model linearized at initialization (plot `linearized`).
PlotResult draw_plots(const std::filesystem::path& gnuplot, const std::filesystem::path& dir,
                      const std::vector<PlotRun>& runs, const std::vector<MetricPlot>& metric_plots,
                      const PlotFormats& formats = {"png", "svg"}, const std::vector<PlotRun>& linearized = {});

/// One metrics.csv column of every run against another (`resgd plot`).
struct ColumnPlot {
  std::string y, x = "iter";
  bool log_y = false;
  std::string title;
};

/// Draws `plot` for `runs` (directories relative to `dir`) into dir/`image` (a file name
/// ending .png, .svg or .pdf), its script beside it (dir/<stem>.gp); IoError naming what
/// failed.
void draw_column_plot(const std::filesystem::path& gnuplot, const std::filesystem::path& dir,
                      const std::vector<PlotRun>& runs, const ColumnPlot& plot, const std::filesystem::path& image);

/// Points of a figure over runs that share a colour and a marker (`resgd plot --x` of a
/// summary column): one point per run, in data coordinates.
struct ScatterSeries {
  size_t colour = 0, marker = 0;  // indices: the --by group, the --shape group
  std::vector<std::pair<double, double>> points;
  bool crossed = false;  // runs that diverged or stalled: drawn as crosses, never fitted
};

/// A fitted line, drawn from (x0, y0) to (x1, y1): straight on the figure's axes.
struct ScatterLine {
  std::string label;
  size_t colour = 0;
  std::array<double, 4> ends{};  // x0, y0, x1, y1
};

/// A figure over runs: colour by one key, marker by another, lines fitted per colour.
struct ScatterPlot {
  std::string title, x_label, y_label;
  bool log_x = false, log_y = false;
  std::vector<std::string> colour_legend, marker_legend;  // label of each colour and marker
  std::vector<ScatterSeries> series;
  std::vector<ScatterLine> lines;
};

/// Draws `plot` into dir/`image` (.png, .svg or .pdf), its script beside it; IoError
/// naming what failed.
void draw_scatter_plot(const std::filesystem::path& gnuplot, const std::filesystem::path& dir, const ScatterPlot& plot,
                       const std::filesystem::path& image);

}  // namespace resgd
