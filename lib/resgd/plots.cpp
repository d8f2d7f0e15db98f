// Plots of runs and sweeps by gnuplot: DESIGN.md, "What a run leaves behind" (plots/).
#include "resgd/plots.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "resgd/config.h"
#include "resgd/diagnostics.h"
#include "resgd/io.h"
#include "resgd/model.h"

extern char** environ;

namespace resgd {
namespace fs = std::filesystem;
namespace {

// One colour per swept setting (matplotlib's tab10): the seeds of a setting share it.
const char* const kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string colour(size_t group) { return kPalette[group % std::size(kPalette)]; }

// Legend entries up to this many characters fit right of a 960-pixel-wide plot and leave
// it most of the width ("heads=64, attention=false" is 25).
constexpr size_t kLongestLabelBesideThePlot = 28;

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

/// Where the legend goes: right of the plot, unless its entries are so long that it would
/// take half the width (a zip or three swept keys); then below it, in columns.
std::string key_placement(size_t longest_label) {
  return longest_label > kLongestLabelBesideThePlot ? "set key outside below center\n" : "set key outside right top\n";
}

/// A whole script: `body` sets labels and plots; drawn to PNG, then replotted to SVG.
std::string script(const std::string& name, const std::string& title, const std::string& key,
                   const std::string& body) {
  const std::string png = quoted("plots/" + name + ".png"), svg = quoted("plots/" + name + ".svg");
  return fmt::format(
      "# {0}: written by `resgd report`; redraw from the report directory with gnuplot plots/{1}.gp\n"
      "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {{\n"
      "  set terminal pngcairo size 960,600 noenhanced\n"
      "}} else {{\n"
      "  set terminal png size 960,600 noenhanced\n"
      "}}\n"
      "set output {2}\n"
      "set datafile separator ','\n"
      "set datafile columnheaders\n"
      "set title {3}\n"
      "{4}"
      "set grid\n"
      "{5}"
      "set terminal svg size 960,600 noenhanced\n"
      "set output {6}\n"
      "replot\n"
      "unset output\n",
      title, name, png, quoted(title), key, body, svg);
}

/// Starts gnuplot on plots/<name>.gp from `dir`, its output appended to plots/gnuplot.log;
/// its process id, or nothing when it cannot start.
std::optional<pid_t> start_gnuplot(const fs::path& gnuplot, const fs::path& dir, const std::string& name) {
  const fs::path root = fs::absolute(dir);
  const std::string log = (root / "plots" / "gnuplot.log").string();
  std::string program = gnuplot.string(), argument = "plots/" + name + ".gp";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addchdir_np(&actions, root.c_str());
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  char* argv[] = {program.data(), argument.data(), nullptr};
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, program.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) return std::nullopt;
  return pid;
}

/// Waits for a started gnuplot; whether it exited with status 0.
bool exited_cleanly(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
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
  const size_t end = content.rfind("</svg>");
  return end != std::string::npos && content.find_first_not_of(" \t\r\n", end + 6) == std::string::npos;
}

/// The gnuplot processes of one draw_plots, in drawing order, at most `at_once` running:
/// each is a process of its own, so a sweep's tens of plots are drawn on every core.
class GnuplotQueue {
 public:
  GnuplotQueue(fs::path gnuplot, fs::path dir)
      : gnuplot_(std::move(gnuplot)), dir_(std::move(dir)), at_once_(std::max(1u, std::thread::hardware_concurrency())) {}
  GnuplotQueue(const GnuplotQueue&) = delete;
  GnuplotQueue& operator=(const GnuplotQueue&) = delete;
  ~GnuplotQueue() { finish_all(); }  // no process is left unreaped, even after an exception

  void start(const std::string& name) {
    while (drawings_.size() - finished_ >= at_once_) finish_next();
    drawings_.push_back({name, start_gnuplot(gnuplot_, dir_, name), false});
  }
  /// Waits for every drawing; each name with whether its PNG was drawn.
  std::vector<std::pair<std::string, bool>> results() {
    finish_all();
    std::vector<std::pair<std::string, bool>> out;
    for (const auto& d : drawings_) out.emplace_back(d.name, d.ok);
    return out;
  }

 private:
  struct Drawing {
    std::string name;
    std::optional<pid_t> pid;
    bool ok;
  };
  void finish_next() {
    Drawing& d = drawings_[finished_++];
    const fs::path png = dir_ / "plots" / (d.name + ".png"), svg = dir_ / "plots" / (d.name + ".svg");
    d.ok = d.pid && exited_cleanly(*d.pid) && image_complete(png) && image_complete(svg);
    if (d.ok) {
      try {  // on disk before report.md names them
        sync_path(png);
        sync_path(svg);
      } catch (const IoError&) {
        d.ok = false;
      }
    }
  }
  void finish_all() {
    while (finished_ < drawings_.size()) finish_next();
  }
  fs::path gnuplot_, dir_;
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
/// values times its lr, and a clause drawn besides the runs' lines (a reference line).
struct CurveOptions {
  std::optional<double> y_top;
  bool times_lr = false;
  std::string extra_clause;
};

/// `column` of every run's metrics.csv against iteration, log y, drawn as `options` says;
/// empty if no run has a value. Settings whose runs have nothing to show are named in
/// `notes`, so no line goes missing unseen.
std::string metrics_body(const std::vector<PlotRun>& runs, const std::vector<CsvTable>& tables,
                         const std::string& column, const std::string& y_label, std::vector<std::string>& notes,
                         const CurveOptions& options = {}) {
  std::vector<std::string> clauses;
  std::set<size_t> titled;
  std::set<std::string> left_out;
  for (size_t r = 0; r < runs.size(); ++r) {
    if (!has_positive_value(tables[r], column)) {
      if (left_out.insert(runs[r].label).second)
        notes.push_back(fmt::format("{}: no finite positive value for {} (not drawn)", column, runs[r].label));
      continue;
    }
    // Columns by number: metrics.csv's header differs between runs of different depth.
    const size_t y = tables[r].column(column) + 1;
    clauses.push_back(fmt::format("{} using {}:{} with lines lw 1.5 lc rgb {} {}",
                                  quoted((runs[r].dir / "metrics.csv").string()), tables[r].column("iter") + 1,
                                  options.times_lr ? fmt::format("(${}*{})", y, format_number(runs[r].lr))
                                                   : std::to_string(y),
                                  quoted(colour(runs[r].group)), title_once(runs[r], titled)));
  }
  if (clauses.empty()) return "";
  if (!options.extra_clause.empty()) clauses.push_back(options.extra_clause);
  const std::string range = options.y_top ? fmt::format("set yrange [*:{:.3g}]\n", *options.y_top) : "";
  return fmt::format("set logscale y\nset format y '%.0e'\n{}set xlabel 'iteration'\nset ylabel {}\nplot {}\n", range,
                     quoted(y_label), join_clauses(clauses));
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
    // Values under the zero tolerance (DESIGN.md, "Diagnostics") are rounding noise, down to
    // 1e-80 for a rank-one G: they are drawn at the tolerance, so the axis stays readable.
    const double floor = zero_tolerance(spectra[r][block].scalar_type());
    const torch::Tensor s = spectra[r][block].to(torch::kCPU, torch::kFloat64).contiguous();  // (N, k)
    k_max = std::max(k_max, s.size(1));
    std::vector<std::vector<double>> rows;
    for (int64_t i = 0; i < s.size(0); ++i) {
      if (!torch::isfinite(s[i]).all().item<bool>()) continue;  // a non-finite G: nothing to draw
      if (!rows.empty()) rows.emplace_back();  // blank line: one line per sample
      for (int64_t k = 0; k < s.size(1); ++k)
        rows.push_back({double(k + 1), std::max(s[i][k].item<double>(), floor * s[i][0].item<double>())});
    }
    if (rows.empty()) continue;
    blocks += datablock(fmt::format("run{}", r), "k,sigma", rows);
    clauses.push_back(fmt::format("$run{} using 1:2 with linespoints lw 1 pt 7 ps 0.5 lc rgb {} {}", r,
                                  quoted(colour(runs[r].group)), title_once(runs[r], titled)));
  }
  if (clauses.empty()) return "";
  return blocks + fmt::format(
                      "{}set logscale y\nset format y '%.0e'\nset xlabel 'k (singular values in descending order)'\n"
                      "set ylabel 'sigma_k(G{}) at initialization'\nplot {}\n",
                      k_max <= 16 ? "set xtics 1\n" : "", block + 1, join_clauses(clauses));
}

/// A metric against a swept value: mean with min..max error bars, one line per series.
std::string metric_body(const MetricPlot& plot) {
  std::string blocks;
  std::vector<std::string> clauses;
  bool log_y = plot.log_y, log_x = true;
  double x_min = INFINITY, x_max = -INFINITY;
  for (size_t i = 0; i < plot.series.size(); ++i) {
    std::vector<std::vector<double>> rows;
    for (const auto& p : plot.series[i].points) {
      if (!std::all_of(p.begin(), p.end(), [](double v) { return std::isfinite(v); })) continue;  // e.g. cond inf
      rows.push_back({p[0], p[1], p[2], p[3]});
      log_y = log_y && p[2] > 0;
      log_x = log_x && p[0] > 0;
      x_min = std::min(x_min, p[0]);
      x_max = std::max(x_max, p[0]);
    }
    if (rows.empty()) continue;
    blocks += datablock(fmt::format("series{}", i), "x,mean,min,max", rows);
    clauses.push_back(fmt::format("$series{} using 1:2{} lc rgb {} title {}", i,
                                  plot.power_law ? " with points pt 7 ps 1.2" : ":3:4 with yerrorlines lw 1.5 pt 7",
                                  quoted(colour(i)), quoted(plot.series[i].label)));
  }
  if (clauses.empty()) return "";
  // A log x axis for values spread over two decades or more (step sizes, init scales).
  log_x = log_x && (plot.power_law || x_max >= 100 * x_min);
  return blocks + fmt::format("{}{}set offsets graph 0.05, graph 0.05, 0, 0\nset xlabel {}\nset ylabel {}\nplot {}\n",
                              log_x ? "set logscale x\n" : "", log_y ? "set logscale y\nset format y '%.0e'\n" : "",
                              quoted(plot.x_label), quoted(plot.y_label), join_clauses(clauses));
}

}  // namespace

std::optional<fs::path> find_gnuplot() {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "");
  for (std::string d; std::getline(dirs, d, ':');) {
    const fs::path candidate = fs::path(d.empty() ? "." : d) / "gnuplot";
    if (access(candidate.c_str(), X_OK) == 0 && !fs::is_directory(candidate)) return candidate;
  }
  return std::nullopt;
}

std::vector<torch::Tensor> init_singular_values(const fs::path& run_dir) {
  const ExperimentConfig config = load_config_file((run_dir / "config.yaml").string());
  const fs::path file = run_dir / "tensors" / "init.pt";
  const auto tensors = load_tensors(file);
  auto get = [&](const std::string& name) {
    const auto it = tensors.find(name);
    if (it == tensors.end()) throw IoError(fmt::format("{}: no tensor '{}'", file.string(), name));
    return it->second;
  };
  const torch::Tensor X = get("X");  // (N, n, d)
  torch::NoGradGuard no_grad;
  ResidualTransformer model(model_options(config));
  model->to(X.scalar_type());
  for (auto& item : model->named_parameters()) {
    const torch::Tensor saved = get(item.key());
    if (saved.sizes() != item.value().sizes())
      throw IoError(fmt::format("{}: {} has shape {}, but config.yaml's model needs {}", file.string(), item.key(),
                                c10::str(saved.sizes()), c10::str(item.value().sizes())));
    item.value().copy_(saved);
  }
  std::vector<torch::Tensor> out;
  // singular_values: a non-finite G (a run diverged at iteration 0) gives NaN rows, not an error
  for (const auto& block : model->trace(X).blocks) out.push_back(singular_values(block.G));  // (N, min(n, d))
  return out;
}

PlotResult draw_plots(const fs::path& gnuplot, const fs::path& dir, const std::vector<PlotRun>& runs,
                      const std::vector<MetricPlot>& metric_plots) {
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
  const std::string run_key = key_placement(longest_run_label);  // the plots with a line per run

  PlotResult result;
  GnuplotQueue gnuplots(gnuplot, dir);
  auto draw = [&](const std::string& name, const std::string& title, const std::string& body,
                  const std::string& key) {
    if (body.empty()) {
      result.notes.push_back(fmt::format("{}: nothing to draw (no finite positive value in any run)", name));
      return;
    }
    write_file_atomic(dir / "plots" / (name + ".gp"), script(name, title, key, body));
    gnuplots.start(name);
  };
  const auto loss_top = loss_axis_top(runs, tables);
  if (loss_top)
    result.notes.push_back(fmt::format("loss: the axis ends at {:.3g}, ten times the largest loss of a run that did "
                                       "not diverge; the diverged runs leave it at the top",
                                       *loss_top));
  draw("loss", "training loss (one line per run)",
       metrics_body(runs, tables, "loss", "loss", result.notes, CurveOptions{loss_top, false, ""}), run_key);
  for (size_t l = 1; l <= blocks; ++l) {
    const std::string cond = fmt::format("cond_g{}", l), sigma = fmt::format("sigma_min_g{}", l);
    draw(cond, fmt::format("condition number of G{} (inf values not drawn)", l),
         metrics_body(runs, tables, cond, cond, result.notes), run_key);
    draw(sigma, fmt::format("smallest singular value of G{}", l), metrics_body(runs, tables, sigma, sigma, result.notes),
         run_key);
    draw(fmt::format("svals_g{}", l), fmt::format("singular values of G{} at init, one line per sample (zeros drawn at the zero tolerance)", l),
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
    const bool capped = largest > kTop;
    if (capped) result.notes.push_back(fmt::format("sharpness: the axis ends at lr x sharpness = {:g}", kTop));
    draw("sharpness", "lr x sharpness (largest eigenvalue of the loss's Hessian)",
         metrics_body(runs, tables, "sharpness", "lr x sharpness", result.notes,
                      CurveOptions{capped ? std::optional<double>(kTop) : std::nullopt, true,
                                   "2 with lines dt 2 lw 1.5 lc rgb 'black' title 'edge of stability, 2'"}),
         run_key);
  }
  for (const auto& plot : metric_plots) {
    size_t longest_label = 0;
    for (const auto& series : plot.series) longest_label = std::max(longest_label, series.label.size());
    draw(plot.name,
         plot.title.empty() ? fmt::format("{} against {} (mean, bars min to max over seeds)", plot.y_label, plot.x_label)
                            : plot.title,
         metric_body(plot), key_placement(longest_label));
  }
  for (const auto& [name, drawn] : gnuplots.results()) {
    if (drawn)
      result.drawn.push_back(name);
    else
      result.failed.push_back(
          fmt::format("{}: gnuplot failed or left an incomplete image (a full disk?); see plots/gnuplot.log", name));
  }
  std::error_code ec;
  if (fs::exists(dir / "plots" / "gnuplot.log", ec) && fs::is_empty(dir / "plots" / "gnuplot.log", ec))
    fs::remove(dir / "plots" / "gnuplot.log", ec);  // kept only when gnuplot had something to say
  return result;
}

}  // namespace resgd
