// Plots of runs and sweeps by gnuplot: docs/design.md, "The run directory" (plots/).
#include "resgd/report/plots.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "resgd/core/config.h"
#include "resgd/core/csv.h"
#include "resgd/core/files.h"
#include "resgd/core/subprocess.h"
#include "resgd/report/collection.h"
#include "resgd/science/diagnostics.h"
#include "resgd/science/tensor_io.h"

namespace resgd {
namespace fs = std::filesystem;
namespace {

// One colour per swept setting, the seeds of a setting sharing it: matplotlib's tab10, then
// tab20's light partners and four of tab20b's darks, so that 24 settings have 24 colours.
const char* const kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                "#bcbd22", "#17becf", "#aec7e8", "#ff9896", "#98df8a", "#ffbb78", "#c5b0d5", "#c49c94",
                                "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5", "#393b79", "#637939", "#8c6d31", "#843c39"};

std::string colour(size_t group) { return kPalette[group % std::size(kPalette)]; }

// Legend entries up to this many characters fit right of the plot area ("heads=64,
// residual.attention=off" is 34).
constexpr size_t kLongestLabelBesideThePlot = 34;

/// A gnuplot single-quoted string (a quote inside is doubled).
std::string quoted(const std::string& text) {
  std::string out = "'";
  for (char ch : text) out += ch == '\'' ? std::string("''") : std::string(1, ch);
  return out + "'";
}

/// The legend part of a plot clause: the first run of a group names it, the rest stay out.
std::string title_once(const PlotRun& run, std::set<size_t>& titled) {
  return titled.insert(run.group).second ? "title " + quoted(run.label) : "notitle";
}

/// The legend right of the plot, or below it where its entries are long (a zip or three
/// swept keys); either way the plot area is fixed, so plots side by side line up.
std::string key_placement(size_t longest_label, size_t entries = 0) {
  // Past a dozen entries a legend below would run into the axes: it goes beside them in a
  // smaller font, the axes narrower as its labels are longer (about 6.5 px a character).
  if (entries > 12) {
    const double right = std::clamp(1 - (6.5 * double(longest_label) + 70) / 960, 0.45, 0.75);
    return fmt::format(
        "set lmargin at screen 0.10\nset rmargin at screen {:.3f}\nset tmargin at screen 0.92\n"
        "set bmargin at screen 0.12\nset key outside right top font ',8' spacing 0.9\n",
        right);
  }
  if (longest_label > kLongestLabelBesideThePlot)
    return "set lmargin at screen 0.10\nset rmargin at screen 0.95\nset tmargin at screen 0.92\n"
           "set bmargin at screen 0.34\nset key outside below center\n";
  return "set lmargin at screen 0.10\nset rmargin at screen 0.70\nset tmargin at screen 0.92\n"
         "set bmargin at screen 0.12\nset key outside right top\n";
}

/// The gnuplot terminal of an image format, 960 x 600 pixels or 6 x 3.75 inches.
std::string terminal(const std::string& format) {
  if (format == "png")
    return "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n  set terminal pngcairo size 960,600 noenhanced\n"
           "} else {\n  set terminal png size 960,600 noenhanced\n}\n";
  if (format == "svg") return "set terminal svg size 960,600 noenhanced\n";
  return "set terminal pdfcairo size 6in,3.75in noenhanced\n";
}

/// A whole script: `body` sets labels and plots; drawn in the first format, then replotted
/// in the others, to `stem`.<format>.
std::string script(const std::string& stem, const std::string& title, const std::string& placement,
                   const std::string& body, const PlotFormats& formats) {
  std::string out = fmt::format(
      "# {0}: written by resgd; redraw it from the report's directory with gnuplot {1}.gp\n"
      "{2}set output {3}\nset datafile separator ','\nset datafile columnheaders\nset title {4}\n{5}set grid\n{6}",
      title, stem, terminal(formats.front()), quoted(stem + "." + formats.front()), quoted(title), placement, body);
  for (size_t f = 1; f < formats.size(); ++f)
    out += terminal(formats[f]) + "set output " + quoted(stem + "." + formats[f]) + "\nreplot\n";
  return out + "unset output\n";
}

/// The longest one gnuplot script may draw: a sweep's plot of hundreds of runs takes seconds.
constexpr double kGnuplotLimitS = 300;

/// gnuplot on `script` (relative to `dir`, or absolute) from `dir`, its output appended to
/// `log`. A drawing that takes longer than kGnuplotLimitS, or a stop of resgd, kills it.
std::unique_ptr<Program> start_gnuplot(const fs::path& gnuplot, const fs::path& dir, const fs::path& script,
                                       const fs::path& log) {
  ProgramOptions options;
  options.argv = {gnuplot.string(), script.string()};
  options.dir = fs::absolute(dir);
  options.log = fs::absolute(log);
  options.time_limit_s = kGnuplotLimitS;
  return std::make_unique<Program>(std::move(options));
}

/// Whether gnuplot finished writing `image`: a PNG ends with its IEND chunk and an SVG
/// with its closing tag. gnuplot exits 0 even where a full disk cut its output short.
bool image_complete(const fs::path& image) {
  std::string content;
  try {
    content = read_file(image);
  } catch (const IoError&) {
    return false;
  }
  if (image.extension() == ".png") {
    static const std::string iend("\0\0\0\0IEND\xae\x42\x60\x82", 12);
    return content.size() >= iend.size() && content.compare(content.size() - iend.size(), iend.size(), iend) == 0;
  }
  const std::string last = image.extension() == ".pdf" ? "%%EOF" : "</svg>";
  const size_t end = content.rfind(last);
  return end != std::string::npos && content.find_first_not_of(" \t\r\n", end + last.size()) == std::string::npos;
}

/// The gnuplot processes of one draw_plots, in drawing order, at most `at_once` running:
/// each is a process of its own, so a sweep's tens of plots are drawn on every core.
class GnuplotQueue {
 public:
  GnuplotQueue(fs::path gnuplot, fs::path dir, fs::path log)
      : gnuplot_(std::move(gnuplot)),
        dir_(std::move(dir)),
        log_(std::move(log)),
        at_once_(std::max(1u, std::thread::hardware_concurrency())) {}
  GnuplotQueue(const GnuplotQueue&) = delete;
  GnuplotQueue& operator=(const GnuplotQueue&) = delete;
  ~GnuplotQueue() { finish_all(); }  // no process is left unreaped, even after an exception

  /// Runs `script` (relative to the directory), which writes `images` (the same).
  void start(const std::string& name, const fs::path& script, std::vector<fs::path> images) {
    while (drawings_.size() - finished_ >= at_once_) finish_next();
    // Once resgd is asked to stop, nothing more is drawn: the report says which plots are missing.
    drawings_.push_back(
        {name, stop_flag().load() ? nullptr : start_gnuplot(gnuplot_, dir_, script, log_), std::move(images), ""});
  }
  /// Waits for every drawing; each name with why it is missing ("" where every image of it
  /// was drawn whole).
  std::vector<std::pair<std::string, std::string>> results() {
    finish_all();
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& d : drawings_) out.emplace_back(d.name, d.why);
    return out;
  }

 private:
  struct Drawing {
    std::string name;
    std::unique_ptr<Program> gnuplot;
    std::vector<fs::path> images;
    std::string why;  // why it is missing; "" once drawn whole
  };
  void finish_next() {
    Drawing& d = drawings_[finished_++];
    const ProgramResult drawn = d.gnuplot ? d.gnuplot->wait() : ProgramResult{};
    if (!d.gnuplot || drawn.stopped) {
      d.why = "not drawn: resgd was stopped (resgd report draws it again)";
      return;
    }
    if (drawn.timed_out) {
      d.why =
          fmt::format("not drawn: gnuplot took more than {:g} s and was killed; see plots/gnuplot.log", kGnuplotLimitS);
      return;
    }
    bool ok = drawn.succeeded();
    for (const auto& image : d.images) ok = ok && image_complete(dir_ / image);
    try {  // on disk before report.md names them
      for (const auto& image : d.images)
        if (ok) sync_path(dir_ / image);
    } catch (const IoError&) {
      ok = false;
    }
    if (!ok) d.why = "gnuplot failed or left an incomplete image (a full disk?); see plots/gnuplot.log";
  }
  void finish_all() {
    while (finished_ < drawings_.size()) finish_next();
  }
  fs::path gnuplot_, dir_, log_;
  size_t at_once_;
  std::vector<Drawing> drawings_;
  size_t finished_ = 0;  // drawings_[0, finished_) have been waited for
};

/// Plot clauses, one per line of the script.
std::string join_clauses(const std::vector<std::string>& clauses) {
  std::string out;
  for (size_t i = 0; i < clauses.size(); ++i) out += (i ? ", \\\n     " : "") + clauses[i];
  return out;
}

/// The finite values of a metrics column, in row order (empty cells, inf and NaN left
/// out); none if the table has no such column.
std::vector<double> finite_values(const CsvTable& table, const std::string& column) {
  std::vector<double> values;
  const auto it = std::find(table.columns.begin(), table.columns.end(), column);
  if (it == table.columns.end()) return values;
  const auto c = static_cast<size_t>(it - table.columns.begin());
  for (const auto& row : table.rows) {
    if (c >= row.size() || row[c].empty()) continue;
    const double v = std::strtod(row[c].c_str(), nullptr);
    if (std::isfinite(v)) values.push_back(v);
  }
  return values;
}

/// Whether a metrics column has a value a log axis can show (gnuplot fails on a plot
/// where no point at all is defined).
bool has_positive_value(const CsvTable& table, const std::string& column) {
  const auto values = finite_values(table, column);
  return std::any_of(values.begin(), values.end(), [](double v) { return v > 0; });
}

/// The top of the loss plot's axis: ten times the largest loss of a run that did not
/// diverge, where a diverged run goes above that. A diverged run reaches
/// divergence_factor (1e6) times its start and beyond (1e62 in experiments/depth.yaml),
/// which on a log axis squeezes the others into its bottom decades. nullopt where all fit,
/// or no run converged or stalled (then the blow-up is what there is to see).
std::optional<double> loss_axis_top(const std::vector<PlotRun>& runs, const std::vector<CsvTable>& tables) {
  double kept = 0, diverged = 0;  // the largest finite losses of each kind of run
  for (size_t r = 0; r < runs.size(); ++r) {
    double& largest = runs[r].diverged ? diverged : kept;
    for (double loss : finite_values(tables[r], "loss")) largest = std::max(largest, loss);
  }
  const double top = 10 * kept;
  if (!(kept > 0) || diverged <= top) return std::nullopt;
  return top;
}

/// How metrics_body draws a column: the top of the y axis (none: gnuplot's own), each run's
/// values times its lr, a log or a linear y axis, and a clause drawn besides the runs' lines
/// (a reference line).
struct CurveOptions {
  std::optional<double> y_top;
  bool times_lr = false;
  bool log_y = true;
  std::string extra_clause;
  std::string x = "iter";
};

/// The legend's entries for the dashes, where runs differ in seed: "seed 0" solid, ...
std::vector<std::string> seed_legend(const std::vector<PlotRun>& runs) {
  std::map<size_t, std::string> seeds;
  for (const auto& run : runs) seeds.emplace(run.seed_index, run.seed);
  std::vector<std::string> clauses;
  if (seeds.size() < 2) return clauses;
  for (const auto& [index, seed] : seeds)
    clauses.push_back(
        fmt::format("NaN with lines lw 1.5 dt {} lc rgb 'black' title {}", index % 5 + 1, quoted("seed " + seed)));
  return clauses;
}

/// Where a diverged run left the y axis: the first row whose `column` is not finite or
/// above `top` (drawn at the top), else its last finite value.
std::optional<std::pair<double, double>> where_it_left(const CsvTable& table, const std::string& x,
                                                       const std::string& column, std::optional<double> top) {
  if (!table.has_column(x) || !table.has_column(column)) return std::nullopt;
  const size_t cx = table.column(x), cy = table.column(column);
  std::optional<std::pair<double, double>> last;
  for (const auto& row : table.rows) {
    if (cy >= row.size() || row[cy].empty()) continue;
    const double vx = std::strtod(row[cx].c_str(), nullptr), vy = std::strtod(row[cy].c_str(), nullptr);
    if (!std::isfinite(vy) || (top && vy > *top)) return std::pair{vx, top.value_or(last ? last->second : vy)};
    last = std::pair{vx, vy};
  }
  return last;
}

/// Fewer measurements than this in a run, at under half its logged rows, are drawn as points
/// on their line.
constexpr size_t kSparseValues = 30;

/// `column` of every run's metrics.csv against `options.x`, drawn as `options` says; empty
/// if no run has a value. Settings whose runs have nothing to show are named in `notes`,
/// so no line goes missing unseen; a diverged run is marked where it left the axis.
std::string metrics_body(const std::vector<PlotRun>& runs, const std::vector<CsvTable>& tables,
                         const std::string& column, const std::string& y_label, std::vector<std::string>& notes,
                         const CurveOptions& options = {}) {
  std::vector<std::string> clauses;
  std::string blocks;
  std::set<size_t> titled;
  std::set<std::string> left_out;
  bool any_diverged = false;
  for (size_t r = 0; r < runs.size(); ++r) {
    const auto values = finite_values(tables[r], column);
    const bool drawable = options.log_y ? has_positive_value(tables[r], column) : !values.empty();
    if (!drawable || !tables[r].has_column(options.x)) {
      if (left_out.insert(runs[r].label).second)
        notes.push_back(fmt::format("{}: no finite{} value for {} (not drawn)", column,
                                    options.log_y ? " positive" : "", runs[r].label));
      continue;
    }
    // Columns by name: metrics.csv's columns differ with depth and with the diagnostics on.
    const std::string y =
        options.times_lr ? fmt::format("(column({})*{})", quoted(column), format_number(runs[r].lr)) : quoted(column);
    // A quantity measured at a sparse cadence (a diagnostic every k steps, the NTK at the first
    // and last step) shows its measurements as points: a line alone would look measured between.
    const bool sparse = values.size() < kSparseValues && 2 * values.size() <= tables[r].rows.size();
    const std::string style = sparse ? "linespoints pt 7 ps 0.6" : "lines";
    clauses.push_back(fmt::format("{} using {}:{} with {} lw 1.5 dt {} lc rgb {} {}",
                                  quoted((runs[r].dir / "metrics.csv").string()), quoted(options.x), y, style,
                                  runs[r].seed_index % 5 + 1, quoted(colour(runs[r].group)),
                                  title_once(runs[r], titled)));
    if (!runs[r].diverged || options.times_lr) continue;
    if (const auto left = where_it_left(tables[r], options.x, column, options.y_top)) {
      blocks +=
          fmt::format("$left{} << EOD\nx,y\n{},{}\nEOD\n", r, format_number(left->first), format_number(left->second));
      clauses.push_back(fmt::format("$left{} using 1:2 with points pt 2 ps 2 lw 2 lc rgb {} notitle", r,
                                    quoted(colour(runs[r].group))));
      any_diverged = true;
    }
  }
  if (clauses.empty()) return "";
  for (const auto& entry : seed_legend(runs)) clauses.push_back(entry);
  if (any_diverged) clauses.push_back("NaN with points pt 2 ps 2 lw 2 lc rgb 'black' title 'diverged: where it left'");
  if (!options.extra_clause.empty()) clauses.push_back(options.extra_clause);
  const std::string range = options.y_top ? fmt::format("set yrange [*:{:.3g}]\n", *options.y_top) : "";
  return blocks + fmt::format("{}{}set xlabel {}\nset ylabel {}\nplot {}\n",
                              options.log_y ? "set logscale y\nset format y '%.0e'\n" : "", range,
                              quoted(options.x == "iter" ? "iteration" : options.x), quoted(y_label),
                              join_clauses(clauses));
}

/// Each run's loss (solid) beside its loss_lin (dashed), in the run's colour.
std::string linearized_body(const std::vector<PlotRun>& runs, const std::vector<CsvTable>& tables) {
  std::vector<std::string> clauses;
  for (size_t r = 0; r < runs.size(); ++r) {
    if (!tables[r].has_column("loss_lin") || !has_positive_value(tables[r], "loss")) continue;
    const std::string file = quoted((runs[r].dir / "metrics.csv").string()), lc = quoted(colour(r));
    clauses.push_back(fmt::format("{} using 'iter':'loss' with lines lw 1.5 dt 1 lc rgb {} title {}", file, lc,
                                  quoted(runs[r].label + ", observed")));
    clauses.push_back(fmt::format("{} using 'iter':'loss_lin' with lines lw 2 dt 2 lc rgb {} title {}", file, lc,
                                  quoted(runs[r].label + ", linearized")));
  }
  if (clauses.empty()) return "";
  return fmt::format("set logscale y\nset format y '%.0e'\nset xlabel 'iteration'\nset ylabel 'loss'\nplot {}\n",
                     join_clauses(clauses));
}

/// A datablock: a header line (skipped under `columnheaders`), then rows; an empty row
/// becomes a blank line, which breaks the line between samples.
std::string datablock(const std::string& name, const std::string& header,
                      const std::vector<std::vector<double>>& rows) {
  std::string out = "$" + name + " << EOD\n" + header + "\n";
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) out += (i ? "," : "") + format_number(row[i]);
    out += "\n";
  }
  return out + "EOD\n";
}

/// Sorted singular values of G^l of every sample of every run at initialization.
std::string singular_values_body(const std::vector<PlotRun>& runs,
                                 const std::vector<std::vector<torch::Tensor>>& spectra, size_t block) {
  std::string blocks;
  std::vector<std::string> clauses;
  std::set<size_t> titled;
  int64_t k_max = 0;
  for (size_t r = 0; r < runs.size(); ++r) {
    if (block >= spectra[r].size()) continue;
    // Values under the zero tolerance (docs/design.md, "Diagnostics") are rounding noise, down to
    // 1e-80 for a rank-one G: they are drawn at the tolerance, so the axis stays readable.
    const double floor = zero_tolerance(spectra[r][block].scalar_type());
    const torch::Tensor s = spectra[r][block].to(torch::kCPU, torch::kFloat64).contiguous();  // (N, k)
    k_max = std::max(k_max, s.size(1));
    std::vector<std::vector<double>> rows;
    for (int64_t i = 0; i < s.size(0); ++i) {
      if (!torch::isfinite(s[i]).all().item<bool>()) continue;  // a non-finite G: nothing to draw
      if (!rows.empty()) rows.emplace_back();                   // blank line: one line per sample
      for (int64_t k = 0; k < s.size(1); ++k)
        rows.push_back({double(k + 1), std::max(s[i][k].item<double>(), floor * s[i][0].item<double>())});
    }
    if (rows.empty()) continue;
    blocks += datablock(fmt::format("run{}", r), "k,sigma", rows);
    clauses.push_back(fmt::format("$run{} using 1:2 with linespoints lw 1 dt {} pt 7 ps 0.5 lc rgb {} {}", r,
                                  runs[r].seed_index % 5 + 1, quoted(colour(runs[r].group)),
                                  title_once(runs[r], titled)));
  }
  if (clauses.empty()) return "";
  for (const auto& entry : seed_legend(runs)) clauses.push_back(entry);
  return blocks + fmt::format(
                      "{}set logscale y\nset format y '%.0e'\nset xlabel 'k (singular values in descending order)'\n"
                      "set ylabel 'sigma_k(G{}) at initialization'\nplot {}\n",
                      k_max <= 16 ? "set xtics 1\n" : "", block + 1, join_clauses(clauses));
}

/// A metric against a swept value: mean with min..max error bars over the runs that did
/// not diverge, one line per series; a value at which a run diverged is marked at the top.
std::string metric_body(const MetricPlot& plot) {
  std::string blocks, labels;
  std::vector<std::string> clauses;
  bool log_y = plot.log_y, log_x = true, any_diverged = false;
  std::set<double> xs;
  for (size_t i = 0; i < plot.series.size(); ++i) {
    std::vector<std::vector<double>> rows;
    for (const auto& p : plot.series[i].points) {
      if (!std::all_of(p.begin(), p.end(), [](double v) { return std::isfinite(v); })) continue;  // e.g. cond inf
      rows.push_back({p[0], p[1], p[2], p[3]});
      log_y = log_y && p[2] > 0;
      log_x = log_x && p[0] > 0;
      xs.insert(p[0]);
    }
    for (double x : plot.series[i].diverged_at) {
      labels += fmt::format("set label 'x' at first {}, graph 0.97 center front textcolor rgb {}\n", format_number(x),
                            quoted(colour(i)));
      any_diverged = true;
      log_x = log_x && x > 0;
      xs.insert(x);
    }
    if (rows.empty()) continue;
    blocks += datablock(fmt::format("series{}", i), "x,mean,min,max", rows);
    clauses.push_back(fmt::format("$series{} using 1:2{} lc rgb {} title {}", i,
                                  plot.power_law ? " with points pt 7 ps 1.2" : ":3:4 with yerrorlines lw 1.5 pt 7",
                                  quoted(colour(i)), quoted(plot.series[i].label)));
  }
  if (clauses.empty()) return "";
  if (any_diverged) clauses.push_back("NaN with points pt 2 lc rgb 'black' title 'x: a run diverged there'");
  // A log x axis where the values span more than a decade (step sizes, init scales), with
  // a tick at each swept value where there are few enough to read.
  log_x = log_x && !xs.empty() && (plot.power_law || *xs.rbegin() > 10 * *xs.begin());
  std::string ticks;
  if (!plot.power_law && !xs.empty() && xs.size() <= 12) {
    std::vector<std::string> values;
    for (double x : xs) values.push_back(format_number(x));
    ticks = fmt::format("set xtics ({})\nset format x '%g'\n", fmt::join(values, ", "));
  }
  return blocks + labels +
         fmt::format("{}{}{}set offsets graph 0.05, graph 0.05, graph 0.08, 0\nset xlabel {}\nset ylabel {}\nplot {}\n",
                     log_x ? "set logscale x\n" : "", ticks, log_y ? "set logscale y\nset format y '%.0e'\n" : "",
                     quoted(plot.x_label), quoted(plot.y_label), join_clauses(clauses));
}

/// The runs' ntk_spectrum/<iter>.csv (diagnostics.ntk_spectrum): each eigenvalue of K
/// against the loss's share along it, at the first measurement (filled) and the last (open),
/// for the first kMaxSpectra runs that have them. "" where none has.
std::string ntk_spectrum_body(const fs::path& dir, const std::vector<PlotRun>& runs, std::vector<std::string>& notes) {
  constexpr size_t kMaxSpectra = 8;
  std::string blocks;
  std::vector<std::string> clauses;
  size_t drawn = 0, skipped = 0;
  for (const auto& run : runs) {
    std::vector<std::pair<int64_t, fs::path>> files;  // iteration, file
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir / run.dir / "ntk_spectrum", ec))
      if (entry.path().extension() == ".csv")
        if (const auto iter = parse_number(entry.path().stem().string()))
          files.emplace_back(static_cast<int64_t>(*iter), entry.path());
    if (files.empty()) continue;
    if (drawn == kMaxSpectra) {
      ++skipped;
      continue;
    }
    std::sort(files.begin(), files.end());
    for (const bool first : {true, false}) {
      const auto& [iter, file] = first ? files.front() : files.back();
      const CsvTable table = read_csv(file);
      double total = 0;
      for (const auto& row : table.rows) total += std::stod(row.at(2));
      std::vector<std::vector<double>> rows;
      for (const auto& row : table.rows) {
        const double lambda = std::stod(row.at(1)), share = std::stod(row.at(2)) / total;
        if (lambda > 0 && share > 0 && std::isfinite(share)) rows.push_back({lambda, share});
      }
      if (rows.empty()) continue;
      const std::string name = fmt::format("spectrum{}_{}", drawn, first ? "first" : "last");
      blocks += datablock(name, "eigenvalue,share", rows);
      clauses.push_back(fmt::format("${} using 1:2 with points pt {} ps 1.1 lc rgb {} title {}", name, first ? 7 : 6,
                                    quoted(colour(run.group)), quoted(fmt::format("{}, t = {}", run.label, iter))));
      if (files.size() == 1) break;
    }
    ++drawn;
  }
  if (clauses.empty()) return "";
  if (skipped)
    notes.push_back(fmt::format("ntk_spectrum: the first {} runs drawn, {} more left out", kMaxSpectra, skipped));
  return blocks +
         "set logscale x\nset logscale y\nset format x '%.0e'\nset format y '%.0e'\nset xlabel 'eigenvalue of K = J "
         "J^T'\n"
         "set ylabel \"the loss's share along its eigenvector\"\nplot " +
         join_clauses(clauses) + "\n";
}

/// The image paths of a drawing, relative to the report directory.
std::vector<fs::path> images_of(const std::string& stem, const PlotFormats& formats) {
  std::vector<fs::path> images;
  for (const auto& format : formats) images.emplace_back(stem + "." + format);
  return images;
}

}  // namespace

std::optional<fs::path> find_gnuplot() { return find_program("gnuplot"); }

std::vector<torch::Tensor> init_singular_values(const fs::path& run_dir) {
  const fs::path file = run_dir / "tensors" / "init_spectra.pt";
  if (!fs::exists(file)) return {};
  const auto tensors = load_tensors(file);
  std::vector<torch::Tensor> out;
  for (size_t l = 1; tensors.count(fmt::format("G{}", l)); ++l) out.push_back(tensors.at(fmt::format("G{}", l)));
  return out;
}

PlotFormats parse_plot_formats(const std::string& list) {
  PlotFormats formats;
  std::stringstream items(list);
  for (std::string format; std::getline(items, format, ',');) {
    if (format != "png" && format != "svg" && format != "pdf")
      throw ConfigError(
          fmt::format("--format: unknown image format '{}'; expected png, svg or pdf, comma-separated", format));
    if (std::find(formats.begin(), formats.end(), format) == formats.end()) formats.push_back(format);
  }
  if (formats.empty()) throw ConfigError("--format: no image format; expected png, svg or pdf, comma-separated");
  return formats;
}

PlotResult draw_plots(const fs::path& gnuplot, const fs::path& dir, const std::vector<PlotRun>& runs,
                      const std::vector<MetricPlot>& metric_plots, const PlotFormats& formats,
                      const std::vector<PlotRun>& linearized) {
  fs::create_directories(dir / "plots");
  std::vector<CsvTable> tables;
  std::vector<std::vector<torch::Tensor>> spectra;
  size_t blocks = 0;
  for (const auto& run : runs) {
    tables.push_back(read_csv(dir / run.dir / "metrics.csv"));
    spectra.push_back(init_singular_values(dir / run.dir));
    blocks = std::max(blocks, spectra.back().size());
  }

  size_t longest_run_label = 0;
  for (const auto& run : runs) longest_run_label = std::max(longest_run_label, run.label.size());
  std::set<size_t> groups, seeds;
  for (const auto& run : runs) groups.insert(run.group), seeds.insert(run.seed_index);
  const std::string run_key =  // the plots with a line per run: an entry per setting, and per seed where several
      key_placement(longest_run_label, groups.size() + (seeds.size() > 1 ? seeds.size() : 0));

  PlotResult result;
  GnuplotQueue gnuplots(gnuplot, dir, dir / "plots" / "gnuplot.log");
  auto draw = [&](const std::string& name, const std::string& title, const std::string& body, const std::string& key) {
    if (body.empty()) {
      result.notes.push_back(fmt::format("{}: nothing to draw (no finite positive value in any run)", name));
      return;
    }
    const std::string stem = "plots/" + name;
    write_file_atomic(dir / (stem + ".gp"), script(stem, title, key, body, formats));
    gnuplots.start(name, stem + ".gp", images_of(stem, formats));
  };
  const auto loss_top = loss_axis_top(runs, tables);
  if (loss_top)
    result.notes.push_back(
        fmt::format("loss: the axis ends at {:.3g}, ten times the largest loss of a run that did "
                    "not diverge; the diverged runs are marked where they leave it",
                    *loss_top));
  CurveOptions loss_options;
  loss_options.y_top = loss_top;
  draw("loss", "training loss (one line per run)",
       metrics_body(runs, tables, "loss", "loss", result.notes, loss_options), run_key);
  for (size_t l = 1; l <= blocks; ++l) {
    const std::string cond = fmt::format("cond_g{}", l), sigma = fmt::format("sigma_min_g{}", l);
    draw(cond, fmt::format("condition number of G{} (inf values not drawn)", l),
         metrics_body(runs, tables, cond, cond, result.notes), run_key);
    draw(sigma, fmt::format("smallest singular value of G{}", l),
         metrics_body(runs, tables, sigma, sigma, result.notes), run_key);
    draw(fmt::format("svals_g{}", l),
         fmt::format("singular values of G{} at init, one line per sample (zeros drawn at the zero tolerance)", l),
         singular_values_body(runs, spectra, l - 1), run_key);
  }
  // GD is stable on a quadratic of curvature lambda while lr lambda < 2 (the edge of
  // stability): lr x sharpness puts every run's edge on one line. Only where some run
  // measured it (diagnostics.sharpness).
  if (std::any_of(tables.begin(), tables.end(), [](const CsvTable& t) { return t.has_column("sharpness"); })) {
    // A diverging run's curvature grows without bound (lr x sharpness 1e9 at the step-size
    // sweep's largest step); past 100 times the edge the axis would only hide the others.
    constexpr double kTop = 200;
    double largest = 0;
    for (size_t r = 0; r < runs.size(); ++r)
      for (double v : finite_values(tables[r], "sharpness")) largest = std::max(largest, v * runs[r].lr);
    CurveOptions options;
    if (largest > kTop) {
      options.y_top = kTop;
      result.notes.push_back(fmt::format("sharpness: the axis ends at lr x sharpness = {:g}", kTop));
    }
    options.times_lr = true;
    options.extra_clause = "2 with lines dt 2 lw 1.5 lc rgb 'black' title 'edge of stability, 2'";
    draw("sharpness", "lr x sharpness (largest eigenvalue of the loss's Hessian)",
         metrics_body(runs, tables, "sharpness", "lr x sharpness", result.notes, options), run_key);
  }
  if (!linearized.empty()) {
    std::vector<CsvTable> lin_tables;
    size_t longest_label = 0;
    for (const auto& run : linearized) {
      lin_tables.push_back(read_csv(dir / run.dir / "metrics.csv"));
      longest_label = std::max(longest_label, run.label.size() + 12);  // ", linearized"
    }
    draw("linearized", "the loss beside that of GD on the model linearized at initialization (dashed)",
         linearized_body(linearized, lin_tables), key_placement(longest_label));
  }
  std::vector<std::string> spectrum_notes;
  const std::string spectrum = ntk_spectrum_body(dir, runs, spectrum_notes);
  if (!spectrum.empty()) {
    result.notes.insert(result.notes.end(), spectrum_notes.begin(), spectrum_notes.end());
    size_t longest_label = 0;
    for (const auto& run : runs) longest_label = std::max(longest_label, run.label.size() + 12);  // ", t = 1000"
    draw("ntk_spectrum", "the loss's share along each eigenvector of the NTK, first and last measurement", spectrum,
         key_placement(longest_label));
  }
  for (const auto& plot : metric_plots) {
    size_t longest_label = 0;
    for (const auto& series : plot.series) longest_label = std::max(longest_label, series.label.size());
    draw(plot.name,
         plot.title.empty()
             ? fmt::format("{} against {} (mean, bars min to max over seeds)", plot.y_label, plot.x_label)
             : plot.title,
         metric_body(plot), key_placement(longest_label));
  }
  for (const auto& [name, why] : gnuplots.results()) {
    if (why.empty())
      result.drawn.push_back(name);
    else
      result.failed.push_back(fmt::format("{}: {}", name, why));
  }
  std::error_code ec;
  if (fs::exists(dir / "plots" / "gnuplot.log", ec) && fs::is_empty(dir / "plots" / "gnuplot.log", ec))
    fs::remove(dir / "plots" / "gnuplot.log", ec);  // kept only when gnuplot had something to say
  return result;
}

namespace {

/// The image format of a file name, or a ConfigError.
std::string image_format(const fs::path& image) {
  const std::string format = image.extension().string().empty() ? "" : image.extension().string().substr(1);
  if (format != "png" && format != "svg" && format != "pdf")
    throw ConfigError(fmt::format("{}: the image's name must end in .png, .svg or .pdf", image.string()));
  return format;
}

/// Writes `text` as dir/<stem>.gp and draws `image` with it; IoError where gnuplot failed.
void draw_one(const fs::path& gnuplot, const fs::path& dir, const fs::path& image, const std::string& name,
              const std::string& text) {
  const std::string stem = image.stem().string();
  const fs::path script_path = dir / (stem + ".gp"), log = dir / (stem + ".gnuplot.log");
  write_file_atomic(script_path, text);
  GnuplotQueue queue(gnuplot, dir, log);
  queue.start(name, script_path.filename(), {image});
  const std::string why = queue.results().front().second;
  if (!why.empty()) throw IoError(fmt::format("{}: {} (log: {})", (dir / image).string(), why, log.string()));
  std::error_code ec;
  fs::remove(log, ec);
}

// Marker shapes for --shape (gnuplot point types): filled circle, square, triangle up and
// down, diamond, then their open forms.
const int kMarkers[] = {7, 5, 9, 11, 13, 6, 4, 8, 10, 12, 1, 3};

int marker(size_t index) { return kMarkers[index % std::size(kMarkers)]; }

}  // namespace

void draw_scatter_plot(const fs::path& gnuplot, const fs::path& dir, const ScatterPlot& plot, const fs::path& image) {
  const std::string format = image_format(image);
  std::string body = fmt::format("set xlabel {}\nset ylabel {}\n", quoted(plot.x_label), quoted(plot.y_label));
  if (plot.log_x) body += "set logscale x\n";
  if (plot.log_y) body += "set logscale y\n";
  std::vector<std::string> clauses;
  for (size_t i = 0; i < plot.series.size(); ++i) {
    const ScatterSeries& series = plot.series[i];
    std::vector<std::vector<double>> rows;
    for (const auto& [x, y] : series.points) rows.push_back({x, y});
    body += datablock(fmt::format("points{}", i), "x,y", rows);
    clauses.push_back(fmt::format("$points{} using 1:2 with points pt {} ps 1.3 lc rgb '{}' notitle", i,
                                  series.crossed ? 2 : marker(series.marker), colour(series.colour)));
  }
  for (size_t i = 0; i < plot.lines.size(); ++i) {
    const ScatterLine& line = plot.lines[i];
    body += datablock(fmt::format("line{}", i), "x,y", {{line.ends[0], line.ends[1]}, {line.ends[2], line.ends[3]}});
    clauses.push_back(fmt::format("$line{} using 1:2 with lines dt 2 lw 1.5 lc rgb '{}' title {}", i,
                                  colour(line.colour), quoted(line.label)));
  }
  // The legend: one entry per colour, one per marker (in black), then the fitted lines.
  std::vector<std::string> legend;
  for (size_t c = 0; c < plot.colour_legend.size(); ++c)
    legend.push_back(
        fmt::format("keyentry with points pt 7 lc rgb '{}' title {}", colour(c), quoted(plot.colour_legend[c])));
  for (size_t m = 0; m < plot.marker_legend.size(); ++m)
    legend.push_back(
        fmt::format("keyentry with points pt {} lc rgb 'black' title {}", marker(m), quoted(plot.marker_legend[m])));
  if (std::any_of(plot.series.begin(), plot.series.end(), [](const ScatterSeries& s) { return s.crossed; }))
    legend.push_back("keyentry with points pt 2 lc rgb 'black' title 'diverged or stalled (not fitted)'");
  clauses.insert(clauses.begin(), legend.begin(), legend.end());
  body += "plot " + join_clauses(clauses) + "\n";
  // The legend right of the axes whatever its length (below them it would run into the x
  // label), the axes narrower for a long one.
  size_t longest = 0;
  for (const auto& label : plot.colour_legend) longest = std::max(longest, label.size());
  for (const auto& label : plot.marker_legend) longest = std::max(longest, label.size());
  for (const auto& line : plot.lines) longest = std::max(longest, line.label.size());
  const double right = std::clamp(1 - (9.0 * double(longest) + 80) / 960, 0.40, 0.75);  // ~9 px a character
  const std::string placement = fmt::format(
      "set lmargin at screen 0.10\nset rmargin at screen {:.3f}\nset tmargin at screen 0.92\n"
      "set bmargin at screen 0.12\nset key outside right top\n",
      right);
  const std::string stem = image.stem().string();
  draw_one(gnuplot, dir, image, stem, script(stem, plot.title, placement, body, {format}));
}

void draw_column_plot(const fs::path& gnuplot, const fs::path& dir, const std::vector<PlotRun>& runs,
                      const ColumnPlot& plot, const fs::path& image) {
  const std::string format = image_format(image);
  std::vector<CsvTable> tables;
  for (const auto& run : runs) tables.push_back(read_csv(dir / run.dir / "metrics.csv"));
  for (const auto& [flag, column] : {std::pair{"--y", plot.y}, {"--x", plot.x}})
    if (std::none_of(tables.begin(), tables.end(), [&](const CsvTable& t) { return t.has_column(column); }))
      throw ConfigError(fmt::format("{}: no run has a metrics.csv column '{}'; the columns are: {}", flag, column,
                                    fmt::join(tables.front().columns, ", ")));
  std::vector<std::string> notes;
  CurveOptions options;
  options.log_y = plot.log_y;
  options.x = plot.x;
  const std::string body = metrics_body(runs, tables, plot.y, plot.y, notes, options);
  if (body.empty())
    throw IoError(fmt::format("{}: nothing to draw: {}", plot.y, notes.empty() ? "no value" : notes.front()));
  size_t longest_label = 0;
  for (const auto& run : runs) longest_label = std::max(longest_label, run.label.size());
  const std::string stem = image.stem().string();
  std::set<size_t> groups, seeds;
  for (const auto& run : runs) groups.insert(run.group), seeds.insert(run.seed_index);
  draw_one(gnuplot, dir, image, plot.y,
           script(stem, plot.title, key_placement(longest_label, groups.size() + (seeds.size() > 1 ? seeds.size() : 0)),
                  body, {format}));
}

}  // namespace resgd
